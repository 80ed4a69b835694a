package engine

import (
	"os/exec"
	"strings"
	"testing"
)

func runBatch(t *testing.T, b *batch) []byte {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-s")
	cmd.Stdin = strings.NewReader(b.script.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("batch script failed: %v", err)
	}
	return out
}

func TestBatchSplitsOutputByTask(t *testing.T) {
	b := newBatch()
	b.add(0, "echo one", false)
	b.add(3, "printf 'no newline'", false)
	b.add(5, "echo err >&2; false", false)
	b.add(6, "echo after", false)
	got, err := b.parse(runBatch(t, b))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]section{
		0: {output: []byte("one\n"), ran: true},
		3: {output: []byte("no newline"), ran: true},
		5: {output: []byte("err\n"), code: 1, ran: true},
		6: {output: []byte("after\n"), ran: true},
	}
	for i, w := range want {
		g := got[i]
		if g == nil || string(g.output) != string(w.output) || g.code != w.code || g.ran != w.ran {
			t.Errorf("task %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestStrictBatchStopsAtFirstFailure(t *testing.T) {
	b := newBatch()
	b.add(0, "echo first", true)
	b.add(1, "false\necho not reached", true)
	b.add(2, "echo never", true)
	got, err := b.parse(runBatch(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].ran || got[0].code != 0 {
		t.Errorf("task 0: %+v", got[0])
	}
	if !got[1].ran || got[1].code == 0 || strings.Contains(string(got[1].output), "not reached") {
		t.Errorf("task 1 (set -e): %+v", got[1])
	}
	if got[2].ran {
		t.Errorf("task 2 ran after a failure")
	}
}

func TestBatchNoChangeLine(t *testing.T) {
	b := newBatch()
	b.add(0, "echo before\nprintf '%s U %s\\n' \"$ORCH_M\" 'guard holds'; exit 0", true)
	got, err := b.parse(runBatch(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].noChange != "guard holds" || string(got[0].output) != "before\n" {
		t.Errorf("got %+v", got[0])
	}
}

// TestBatchOnlyHonoursItsOwnMarkers: each batch has a random nonce, so
// output that looks like another batch's markers (a task printing a log of
// an earlier run, say) stays the task's output.
func TestBatchOnlyHonoursItsOwnMarkers(t *testing.T) {
	b := newBatch()
	b.add(0, "printf '\\n__orch_0000000000000000 E 0 0\\n'", false)
	got, err := b.parse(runBatch(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got[0].output), "__orch_0000000000000000 E 0 0") {
		t.Errorf("got %+v", got[0])
	}
}

func TestBatchTruncatedOutput(t *testing.T) {
	b := newBatch()
	b.add(0, "echo x", false)
	out := runBatch(t, b)
	if _, err := b.parse(out[:len(out)-4]); err == nil {
		t.Error("truncated output parsed without error")
	}
}
