package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// hook is a controller-side test module that calls a Go function the test
// sets, between the steps of a plan.
type hook struct {
	Name string `arg:"name,required"`
}

var hooks = map[string]func() error{}

func (h *hook) Call(context.Context, *modules.Env) (any, error) {
	f, ok := hooks[h.Name]
	if !ok {
		return nil, fmt.Errorf("no hook %q", h.Name)
	}
	return nil, f()
}

func init() {
	modules.Register(modules.Info{ID: "testhook", Doc: "test only", New: func() any { return new(hook) }})
}

// perHost returns each host's exchanges in the run's host_done events.
func perHost(rec *recorder) map[string]int64 {
	out := map[string]int64{}
	for _, e := range rec.of("host_done") {
		out[e.Host] += e.Exchanges
	}
	return out
}

func allEqual(t *testing.T, what string, got map[string]int64, want int64) {
	t.Helper()
	if len(got) == 0 {
		t.Fatalf("%s: no hosts", what)
	}
	for h, n := range got {
		if n != want {
			t.Errorf("%s: %s took %d exchanges, want %d", what, h, n, want)
		}
	}
}

// TestExchangeCounts: a role mixing modules (files, a directory, a link, a
// guarded command, a watcher) reruns in 1 exchange per host; a command then
// a file, first run, in 2 (the file's recheck rides in the apply).
func TestExchangeCounts(t *testing.T) {
	fleet := sshdtest.Start(t, 3, sshdtest.Options{})
	inv, _ := sshInventory(t, fleet)
	opts := Options{SSH: strictSSH(fleet.KnownHosts)}
	mixed := writeFile(t, "mixed.star", `
def role(h):
    root = h.vars["root"]
    file(path = root, state = "directory")
    file(path = root + "/a.conf", content = "a\n")
    file(path = root + "/link", state = "link", target = root + "/a.conf")
    command(cmd = "echo built > %s/built" % root, creates = root + "/built")
    file(path = root + "/b.conf", content = "b\n", mode = "0600")
    testservice(watch = [root + "/"], log = root + "/restarts")

def main(ctx):
    ctx.apply("all", role)
`)
	if _, _, err := runPlan(t, mixed, inv, opts); err != nil {
		t.Fatal(err)
	}
	_, rec, err := runPlan(t, mixed, inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	allEqual(t, "mixed no-change rerun", perHost(rec), 1)

	then := writeFile(t, "then.star", `
def role(h):
    command(cmd = "mkdir -p %s/c && echo ran > %s/c/ran" % (h.vars["root"], h.vars["root"]))
    file(path = h.vars["root"] + "/c/after", content = "x\n")

def main(ctx):
    ctx.apply("all", role)
`)
	rep, rec, err := runPlan(t, then, inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	allEqual(t, "command then file, first run", perHost(rec), 2)
	if rep.Summary.TasksChanged != 6 {
		t.Errorf("tasks changed %d, want 6", rep.Summary.TasksChanged)
	}
}

// TestValidateRejects: a config the validator rejects never reaches the
// live path; the run fails (exit 1 in the CLI) with the validator's words.
func TestValidateRejects(t *testing.T) {
	inv, dir := localInventory(t, 1)
	live := filepath.Join(dir, "app.conf")
	os.WriteFile(live, []byte("good\n"), 0o644)
	planFile := writeFile(t, "plan.star", fmt.Sprintf(`
def role(h):
    file(path = "%s", content = "bad\n", validate = "grep -q good %%s || { echo 'app.conf line 1: bad is not good' >&2; exit 1; }")

def main(ctx):
    ctx.apply("all", role)
`, live))
	rep, rec, err := runPlan(t, planFile, inv, Options{})
	if err == nil || rep.Summary.Failed != 1 {
		t.Fatalf("err %v, summary %+v: want a failed host", err, rep.Summary)
	}
	if b, _ := os.ReadFile(live); string(b) != "good\n" {
		t.Errorf("live file is %q", b)
	}
	if !hasEvent(rec, "task", "validate failed") || !hasEvent(rec, "task", "bad is not good") {
		t.Errorf("the failure does not show the validator's output: %+v", rec.of("task"))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left beside the config: %v", entries)
	}
}

// remoteSleeps counts processes running a sleep of this exact length.
func remoteSleeps(t *testing.T, arg string) int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "^sleep "+arg+"$").Output()
	return len(strings.Fields(string(out)))
}

func waitNoSleeps(t *testing.T, arg string) {
	t.Helper()
	for i := 0; i < 50 && remoteSleeps(t, arg) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if n := remoteSleeps(t, arg); n > 0 {
		t.Errorf("%d remote `sleep %s` still running", n, arg)
	}
}

// TestTaskTimeoutEndsRemoteProcesses: timeout="2s" on a task running a long
// sleep fails it and leaves no sleep on the host; so does --timeout for a
// whole exchange.
func TestTaskTimeoutEndsRemoteProcesses(t *testing.T) {
	fleet := sshdtest.Start(t, 1, sshdtest.Options{})
	inv, _ := sshInventory(t, fleet)
	opts := Options{SSH: strictSSH(fleet.KnownHosts)}
	planFile := writeFile(t, "plan.star", `
def role(h):
    command(cmd = "sleep 61.25 & sleep 61.25", timeout = "2s")
    file(path = h.vars["root"] + "-after", content = "x\n")

def main(ctx):
    ctx.apply("all", role)
`)
	_, rec, err := runPlan(t, planFile, inv, opts)
	if err == nil || !hasEvent(rec, "task", "timed out after 2s") {
		t.Fatalf("err %v; tasks %+v", err, rec.of("task"))
	}
	h1, _ := inv.Host("h1")
	if !hasTask(rec, "file "+h1.Vars["root"].(string)+"-after", Skipped) {
		t.Errorf("the task after the timeout was not skipped")
	}
	waitNoSleeps(t, "61.25")

	exchange := writeFile(t, "exchange.star", `
def main(ctx):
    ctx.apply("all", lambda h: command(cmd = "sleep 62.5 & sleep 62.5"))
`)
	opts.ExecTimeout = 2 * time.Second
	_, _, err = runPlan(t, exchange, inv, opts)
	if err == nil || !strings.Contains(err.Error(), "longer than --timeout 2s") {
		t.Fatalf("err %v, want the exchange timeout", err)
	}
	waitNoSleeps(t, "62.5")
}

// TestRedialAfterRestart: a host whose sshd restarts between two applies
// of a plan (a reboot, say) is reached again by the second, and
// ctx.wait_for_host sees it back.
func TestRedialAfterRestart(t *testing.T) {
	fleet := sshdtest.Start(t, 1, sshdtest.Options{})
	inv, _ := sshInventory(t, fleet)
	hooks["restart sshd"] = func() error { return fleet.Hosts[0].Restart(context.Background()) }
	planFile := writeFile(t, "plan.star", `
def main(ctx):
    ctx.apply("all", lambda h: file(path = h.vars["root"] + "-one", content = "1\n"))
    testhook(name = "restart sshd")
    h = ctx.hosts("h1")[0]
    w = ctx.wait_for_host(h, timeout = "30s")
    print("back, boot", w.boot_id != "")
    ctx.apply("all", lambda h: file(path = h.vars["root"] + "-two", content = "2\n"))
`)
	rep, rec, err := runPlan(t, planFile, inv, Options{SSH: strictSSH(fleet.KnownHosts)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Failed+rep.Summary.Unreachable != 0 || rep.Summary.TasksChanged != 2 {
		t.Errorf("summary %+v", rep.Summary)
	}
	if !hasEvent(rec, "print", "back, boot True") {
		t.Errorf("wait_for_host: %v", rec.of("print"))
	}
}

// TestIrreversibleDropsUndos: once an irreversible step starts, a failure
// undoes nothing of the steps before it; before it, a failure undoes them.
func TestIrreversibleDropsUndos(t *testing.T) {
	inv, dir := localInventory(t, 1)
	planFile := writeFile(t, "plan.star", fmt.Sprintf(`
def main(ctx):
    def run(name):
        ctx.apply("all", lambda h: command(cmd = "echo " + name + " >> %[1]s/log"))
    ctx.step("create", lambda: run("create"), undo = lambda: run("undo-create"))
    ctx.step("delete old", lambda: run("delete"), irreversible = True)
    ctx.step("rename", lambda: ctx.apply("all", lambda h: command(cmd = "false")))
`, dir))
	_, rec, err := runPlan(t, planFile, inv, Options{})
	if err == nil {
		t.Fatal("the plan should fail in rename")
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	if string(log) != "create\ndelete\n" {
		t.Errorf("log %q: nothing may be undone after an irreversible step", log)
	}
	if got := strings.Join(rec.steps(), " "); got != "create:start create:done delete old:start delete old:done rename:start rename:failed" {
		t.Errorf("steps: %s", got)
	}
	for _, e := range rec.of("step_start") {
		if e.Step == "delete old" && !e.Irreversible {
			t.Error("step_start does not say the step is irreversible")
		}
	}
}

// TestStepResultMustBeJournaled: a step that returns something the journal
// cannot hold fails, rather than resuming to None later.
func TestStepResultMustBeJournaled(t *testing.T) {
	inv, _ := localInventory(t, 1)
	planFile := writeFile(t, "plan.star", `
def main(ctx):
    ctx.step("returns a function", lambda: main)
`)
	_, _, err := runPlan(t, planFile, inv, Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot be journaled") {
		t.Fatalf("err = %v", err)
	}
}
