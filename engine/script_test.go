package engine

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/modules"
)

// runScript runs a script the way connections do: on sh's standard input,
// in GroupScript's group, with that input held open until sh exits (a
// closed input tells GroupScript's watchdog the session is gone).
func runScript(t *testing.T, s *script) map[sectionID]*section {
	t.Helper()
	res, err := (&conn.Local{}).Exec(context.Background(), s.String(), nil)
	if err != nil {
		t.Fatalf("script failed: %v", err)
	}
	got, err := s.parse(res.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestReadsSplitOutputBySection(t *testing.T) {
	s := newScript()
	s.read(kindProbe, 0, "echo one")
	s.read(kindProbe, 3, "printf 'no newline'")
	s.read(kindFact, 0, "echo err >&2; false")
	s.read(kindProbe, 6, "echo after")
	got := runScript(t, s)
	want := map[sectionID]section{
		{kindProbe, 0}: {output: []byte("one\n")},
		{kindProbe, 3}: {output: []byte("no newline")},
		{kindFact, 0}:  {output: []byte("err\n"), code: 1},
		{kindProbe, 6}: {output: []byte("after\n")},
	}
	for id, w := range want {
		g := got[id]
		if g == nil || string(g.output) != string(w.output) || g.code != w.code {
			t.Errorf("%c %d: got %+v, want %+v", id.kind, id.id, g, w)
		}
	}
}

func TestApplyStopsAtFirstFailure(t *testing.T) {
	s := newScript()
	s.apply(applyEntry{id: 0, apply: "echo first"})
	s.apply(applyEntry{id: 1, apply: "false\necho not reached"})
	s.apply(applyEntry{id: 2, apply: "echo never"})
	s.handler(0, modules.Handler{Script: "echo handled"}, true, nil)
	got := runScript(t, s)
	if g := got[sectionID{kindApply, 0}]; g == nil || g.code != 0 || string(g.output) != "first\n" {
		t.Errorf("task 0: %+v", g)
	}
	if g := got[sectionID{kindApply, 1}]; g == nil || g.code == 0 || strings.Contains(string(g.output), "not reached") {
		t.Errorf("task 1 (set -e): %+v", g)
	}
	if got[sectionID{kindApply, 2}] != nil || got[sectionID{kindHandler, 0}] != nil {
		t.Errorf("a task or handler ran after a failure: %v", got)
	}
}

func TestGuardsAndRechecks(t *testing.T) {
	s := newScript()
	s.apply(applyEntry{id: 0, unless: []modules.Guard{{Test: "false", Reason: "no"}, {Test: "true", Reason: "guard holds"}}, apply: "echo ran"})
	s.apply(applyEntry{id: 1, recheck: "true", apply: "echo one"})
	s.apply(applyEntry{id: 2, recheck: "[ 1 = 2 ]", apply: "echo stale, must not run"})
	s.apply(applyEntry{id: 3, apply: "echo after the stale task"})
	s.ifStale(func() { s.read(kindProbe, 2, "echo fresh") })
	got := runScript(t, s)
	if g := got[sectionID{kindApply, 0}]; g == nil || g.noChange != "guard holds" || len(g.output) != 0 {
		t.Errorf("guarded task: %+v", g)
	}
	if g := got[sectionID{kindApply, 1}]; g == nil || g.stale || string(g.output) != "one\n" {
		t.Errorf("rechecked task: %+v", g)
	}
	if g := got[sectionID{kindApply, 2}]; g == nil || !g.stale || len(g.output) != 0 {
		t.Errorf("stale task: %+v", g)
	}
	if got[sectionID{kindApply, 3}] != nil {
		t.Error("a task ran after a stale one")
	}
	if g := got[sectionID{kindProbe, 2}]; g == nil || string(g.output) != "fresh\n" {
		t.Errorf("fresh probe after staleness: %+v", g)
	}
}

func TestStaticStopReadsAfresh(t *testing.T) {
	s := newScript()
	s.apply(applyEntry{id: 0, apply: "echo a"})
	s.stopStatic(1)
	s.apply(applyEntry{id: 1, apply: "echo must not run"})
	s.ifStale(func() { s.read(kindProbe, 1, "echo fresh") })
	got := runScript(t, s)
	if got[sectionID{kindApply, 0}] == nil || got[sectionID{kindApply, 1}] != nil || got[sectionID{kindProbe, 1}] == nil {
		t.Errorf("got %v", got)
	}
}

func TestHandlersRunOnlyWhenATriggerChanged(t *testing.T) {
	s := newScript()
	s.apply(applyEntry{id: 0, apply: "true"})
	s.apply(applyEntry{id: 1, unless: []modules.Guard{{Test: "true", Reason: "nothing to do"}}, apply: "true"})
	s.handler(0, modules.Handler{Script: "echo by 0"}, false, []int{0})
	s.handler(1, modules.Handler{Script: "echo by 1"}, false, []int{1})
	s.handler(2, modules.Handler{Script: "echo pending"}, true, nil)
	got := runScript(t, s)
	if g := got[sectionID{kindHandler, 0}]; g == nil || string(g.output) != "by 0\n" {
		t.Errorf("handler of a changed task: %+v", g)
	}
	if got[sectionID{kindHandler, 1}] != nil {
		t.Error("the handler of a task whose guard held ran")
	}
	if got[sectionID{kindHandler, 2}] == nil {
		t.Error("a known handler did not run")
	}
}

func TestTimedOutApplyIsMarked(t *testing.T) {
	s := newScript()
	s.apply(applyEntry{id: 0, apply: "sleep 5", timeout: 0.2})
	got := runScript(t, s)
	if g := got[sectionID{kindApply, 0}]; g == nil || !g.timedOut || g.code == 0 {
		t.Errorf("got %+v", g)
	}
}

// TestOnlyItsOwnMarkersCount: each script has a random nonce, so output that
// looks like another script's markers (a task printing a log of an earlier
// run, say) stays the task's output.
func TestOnlyItsOwnMarkersCount(t *testing.T) {
	s := newScript()
	s.read(kindProbe, 0, "printf '\\n__orch_0000000000000000 E p 0 0\\n__orch_0000000000000000 R\\n'")
	got := runScript(t, s)
	if g := got[sectionID{kindProbe, 0}]; g == nil || g.stale || !strings.Contains(string(g.output), "__orch_0000000000000000 E p 0 0") {
		t.Errorf("got %+v", g)
	}
}

func TestTruncatedOutput(t *testing.T) {
	s := newScript()
	s.read(kindProbe, 0, "echo x")
	out, err := exec.Command("/bin/sh", "-c", s.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.parse(out[:len(out)-4]); err == nil {
		t.Error("truncated output parsed without error")
	}
}
