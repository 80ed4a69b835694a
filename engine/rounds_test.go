package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A task is decided on the state its predecessors leave: a file task after
// the command that creates the file sees the file.
const roundsPlan = `
def role(h):
    root = h.vars["root"]
    file(path = root, state = "directory")
    command(cmd = "echo made > %s/made" % root, creates = root + "/made")
    file(path = root + "/made", mode = "0600")
    file(path = root + "/other", content = "x\n")

def main(ctx):
    ctx.apply("all", role)
`

func TestLaterTasksSeeEarlierChanges(t *testing.T) {
	inv, dir := localInventory(t, 1)
	plan := writeFile(t, "plan.star", roundsPlan)

	rep, rec, err := runPlan(t, plan, inv, Options{Check: true})
	if err != nil || rep.Summary.Failed != 0 {
		t.Fatalf("check: %v %+v", err, rep.Summary)
	}
	var undecided string
	for _, e := range rec.of("task") {
		if strings.HasSuffix(e.Task, "/made") && e.Module == "file" {
			undecided = string(e.Status) + ": " + e.Msg
		}
	}
	if !strings.HasPrefix(undecided, "changed: decided only once the tasks before it have run") {
		t.Errorf("check mode reported the dependent task as %q", undecided)
	}

	rep, _, err = runPlan(t, plan, inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Check; apply the directory and the command, where the recheck finds
	// the made file stale and reads it afresh in the same exchange; apply the
	// mode and the other file.
	if s := rep.Summary; s.TasksChanged != 4 || s.Exchanges != 3 {
		t.Errorf("first run: %+v", s)
	}
	if fi, err := os.Stat(filepath.Join(dir, "h1", "made")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("made: %v %v", fi, err)
	}
	rep, _, err = runPlan(t, plan, inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.TasksChanged != 0 || s.Exchanges != 1 {
		t.Errorf("rerun: %+v", s)
	}
}

func TestRemovedTreeIsRechecked(t *testing.T) {
	inv, dir := localInventory(t, 1)
	root := filepath.Join(dir, "h1")
	os.MkdirAll(filepath.Join(root, "old"), 0o755)
	os.WriteFile(filepath.Join(root, "old", "keep"), []byte("x\n"), 0o644)
	plan := writeFile(t, "plan.star", `
def role(h):
    file(path = "`+root+`/old", state = "absent")
    file(path = "`+root+`/old", state = "directory")
    file(path = "`+root+`/old/keep", content = "x\n")

def main(ctx):
    ctx.apply("all", role)
`)
	rep, _, err := runPlan(t, plan, inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Without a second check, keep would count as up to date and be lost.
	if got, _ := os.ReadFile(filepath.Join(root, "old", "keep")); string(got) != "x\n" {
		t.Fatalf("keep = %q after %+v", got, rep.Summary)
	}
	if rep.Summary.TasksChanged != 3 {
		t.Errorf("summary: %+v", rep.Summary)
	}
}
