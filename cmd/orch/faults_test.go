package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orch-dev/orch/testkit/proctest"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// These tests run the orch binary (the test binary, as testscript.Main
// installs it in $PATH) against real sshd hosts, and kill or interrupt it
// the way an operator or a crash would.

// faultFleet starts n sshd hosts and writes an inventory for them; each
// host converges its own directory under work/hosts.
type faultFleet struct {
	*sshdtest.Fleet
	work string
}

func startFaultFleet(t *testing.T, n int) *faultFleet {
	t.Helper()
	f := &faultFleet{Fleet: sshdtest.Start(t, n, sshdtest.Options{}), work: t.TempDir()}
	var inv strings.Builder
	inv.WriteString("[web]\n")
	for _, h := range f.Hosts {
		root := filepath.Join(f.work, "hosts", h.Name)
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&inv, "%s ansible_host=%s ansible_port=%d ansible_user=%s ansible_ssh_private_key_file=%s root=%s\n",
			h.Name, h.IP, h.Port, f.User, f.ClientKey, root)
	}
	if err := os.WriteFile(filepath.Join(f.work, "inventory.ini"), []byte(inv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *faultFleet) root(host string) string { return filepath.Join(f.work, "hosts", host) }

func (f *faultFleet) path(host, name string) string { return filepath.Join(f.root(host), name) }

// orchProc is a running orch.
type orchProc struct {
	cmd   *exec.Cmd
	runID string
	out   chan string // stdout lines after run_start
	err   *strings.Builder
}

// start runs orch with args in the fleet's work directory, and returns once
// it printed its run_start event (args must include --json for run).
func (f *faultFleet) start(t *testing.T, args ...string) *orchProc {
	t.Helper()
	cmd := exec.Command("orch", args...)
	cmd.Dir = f.work
	cmd.Env = append(os.Environ(), "ORCH_STATE="+filepath.Join(f.work, "state"), "HOME="+f.work)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &orchProc{cmd: cmd, out: make(chan string, 1000), err: &strings.Builder{}}
	cmd.Stderr = p.err
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("orch %s printed nothing: %s", strings.Join(args, " "), p.err)
	}
	var first struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal(lines.Bytes(), &first); err != nil || first.RunID == "" {
		t.Fatalf("first line %q: %v", lines.Text(), err)
	}
	p.runID = first.RunID
	go func() {
		defer close(p.out)
		for lines.Scan() {
			p.out <- lines.Text()
		}
		io.Copy(io.Discard, stdout)
	}()
	return p
}

// wait waits for orch to exit and returns its stdout after run_start.
func (p *orchProc) wait() (string, *os.ProcessState) {
	var out []string
	for l := range p.out {
		out = append(out, l)
	}
	p.cmd.Wait()
	return strings.Join(out, "\n"), p.cmd.ProcessState
}

func (f *faultFleet) orch(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("orch", args...)
	cmd.Dir = f.work
	cmd.Env = append(os.Environ(), "ORCH_STATE="+filepath.Join(f.work, "state"), "HOME="+f.work)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// waitAll waits until every host of the fleet has the file name.
func (f *faultFleet) waitAll(t *testing.T, name string) {
	t.Helper()
	for _, h := range f.Hosts {
		proctest.WaitFile(t, f.path(h.Name, name))
	}
}

// waitLine waits until the file at path has the line want.
func waitLine(t *testing.T, path, want string) {
	t.Helper()
	for range 3000 {
		for _, l := range lines(t, path) {
			if l == want {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never had the line %q", path, want)
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func (f *faultFleet) runArgs(plan string, extra ...string) []string {
	args := []string{"run", plan, "-i", "inventory.ini", "--known-hosts", f.KnownHosts, "--host-key-check", "strict", "--json"}
	return append(args, extra...)
}

// TestKill9ThenResume: orch is killed with SIGKILL during step two of two,
// on three sshd hosts. The journal kept step one (synced when it
// completed), the killed run's remote commands ended with its connections,
// and orch resume skips step one on every host and completes step two.
func TestKill9ThenResume(t *testing.T) {
	f := startFaultFleet(t, 3)
	nap := fmt.Sprintf("35.%d", os.Getpid())
	os.WriteFile(filepath.Join(f.work, "plan.star"), []byte(fmt.Sprintf(`
def one(h):
    command("echo one >> %%s/one.log" %% h.vars["root"])

def two(h):
    command("touch {r}/two-started; [ -e {r}/release ] || sleep %s; echo two >> {r}/two.log".format(r = h.vars["root"]))

def main(ctx):
    ctx.step("one", lambda: ctx.apply("all", one))
    ctx.step("two", lambda: ctx.apply("all", two))
`, nap)), 0o644)
	p := f.start(t, f.runArgs("plan.star")...)
	f.waitAll(t, "two-started")
	proctest.WaitRunning(t, 3, "sleep", nap)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, st := p.wait()
	if ws := st.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("orch ended with %v, not by SIGKILL", st)
	}
	// The connections died with orch, and with them the sessions' work.
	proctest.WaitGone(t, "sleep", nap)
	for _, h := range f.Hosts {
		if got := lines(t, f.path(h.Name, "two.log")); len(got) != 0 {
			t.Fatalf("%s: the killed run's step two completed: %v", h.Name, got)
		}
		os.WriteFile(f.path(h.Name, "release"), nil, 0o644)
	}
	steps, _ := os.ReadFile(filepath.Join(f.work, "state", "runs", p.runID, "steps.jsonl"))
	if !strings.Contains(string(steps), `{"step":"one","status":"done"`) {
		t.Fatalf("the journal lost step one:\n%s", steps)
	}

	out, code := f.orch(t, "resume", p.runID, "--json")
	if code != 0 {
		t.Fatalf("resume exited %d:\n%s", code, out)
	}
	for _, want := range []string{`"event":"step_end","step":"one","status":"skipped"`, `"event":"step_end","step":"two","status":"done"`,
		`"event":"warning","msg":"took over the lock`} {
		if !strings.Contains(out, want) {
			t.Errorf("resume output lacks %s:\n%s", want, out)
		}
	}
	for _, h := range f.Hosts {
		if got := lines(t, f.path(h.Name, "one.log")); len(got) != 1 {
			t.Errorf("%s: step one ran %d times: %v", h.Name, len(got), got)
		}
		if got := lines(t, f.path(h.Name, "two.log")); len(got) != 1 {
			t.Errorf("%s: step two ran %d times: %v", h.Name, len(got), got)
		}
	}
}

// interruptPlan: step prepare (with an undo) then step work, which sleeps
// on every host; the sleeps' arguments are unique to the test process, to
// find them in /proc. With slowUndo, the undo sleeps too.
func interruptPlan(work, undo string) string {
	return fmt.Sprintf(`
def prepare(h):
    command("echo prepared >> %%s/log" %% h.vars["root"])

def undo(h):
    command("echo undoing >> {r}/log; %s; echo undone >> {r}/log".format(r = h.vars["root"]))

def work(h):
    command("touch {r}/working; sleep %s".format(r = h.vars["root"]))

def main(ctx):
    ctx.step("prepare", lambda: ctx.apply("all", prepare), undo = lambda: ctx.apply("all", undo))
    ctx.step("work", lambda: ctx.apply("all", work))
`, undo, work)
}

// TestSIGINTEndsRemoteWorkAndUndoes: the first Ctrl-C cancels the run: the
// remote sleeps end on every host, the journal records the interruption,
// the completed step's undo runs on every host, the locks are released,
// and orch exits 1.
func TestSIGINTEndsRemoteWorkAndUndoes(t *testing.T) {
	f := startFaultFleet(t, 2)
	nap := fmt.Sprintf("31.%d", os.Getpid())
	os.WriteFile(filepath.Join(f.work, "plan.star"), []byte(interruptPlan(nap, "true")), 0o644)
	p := f.start(t, f.runArgs("plan.star")...)
	f.waitAll(t, "working")
	proctest.WaitRunning(t, 2, "sleep", nap)
	p.cmd.Process.Signal(os.Interrupt)
	out, st := p.wait()
	if st.ExitCode() != 1 {
		t.Errorf("orch exited %v, want 1:\n%s\n%s", st, out, p.err)
	}
	proctest.WaitGone(t, "sleep", nap)
	for _, h := range f.Hosts {
		if got := strings.Join(lines(t, f.path(h.Name, "log")), " "); got != "prepared undoing undone" {
			t.Errorf("%s: log %q, want the undo to have run", h.Name, got)
		}
	}
	for _, want := range []string{`"event":"interrupted","msg":"interrupt signal received`, `"step":"work","status":"failed"`, `"step":"prepare","status":"undone"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	dir := filepath.Join(f.work, "state", "runs", p.runID)
	events, _ := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	result, _ := os.ReadFile(filepath.Join(dir, "result.json"))
	if !strings.Contains(string(events), `"event":"interrupted"`) || !strings.Contains(string(result), `"interrupted": "interrupt signal received"`) {
		t.Errorf("the journal does not record the interruption:\n%s\n%s", events, result)
	}
	assertLocksReleased(t, filepath.Join(f.work, "state", "locks"))
}

// TestSecondSIGINTQuitsAtOnce: a second Ctrl-C, while the undo runs, ends
// orch at once (by the signal), and what the undo ran on the hosts ends
// with the connections.
func TestSecondSIGINTQuitsAtOnce(t *testing.T) {
	f := startFaultFleet(t, 2)
	nap, undoNap := fmt.Sprintf("33.%d", os.Getpid()), fmt.Sprintf("34.%d", os.Getpid())
	os.WriteFile(filepath.Join(f.work, "plan.star"), []byte(interruptPlan(nap, "sleep "+undoNap)), 0o644)
	p := f.start(t, f.runArgs("plan.star")...)
	f.waitAll(t, "working")
	p.cmd.Process.Signal(os.Interrupt)
	for _, h := range f.Hosts {
		waitLine(t, f.path(h.Name, "log"), "undoing")
	}
	p.cmd.Process.Signal(os.Interrupt)
	_, st := p.wait()
	if ws := st.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("orch ended with %v, want killed by the second SIGINT", st)
	}
	proctest.WaitGone(t, "sleep", nap)
	proctest.WaitGone(t, "sleep", undoNap)
	for _, h := range f.Hosts {
		if got := strings.Join(lines(t, f.path(h.Name, "log")), " "); got != "prepared undoing" {
			t.Errorf("%s: log %q, want the undo cut short", h.Name, got)
		}
	}
}

// assertLocksReleased checks that every lock file is empty: released by
// its run, not just dropped by the kernel.
func assertLocksReleased(t *testing.T, dir string) {
	t.Helper()
	locks, _ := filepath.Glob(filepath.Join(dir, "*.lock"))
	if len(locks) == 0 {
		t.Errorf("no lock files in %s", dir)
	}
	for _, l := range locks {
		if b, _ := os.ReadFile(l); len(b) != 0 {
			t.Errorf("lock %s still names its holder: %s", l, b)
		}
	}
}

// TestHeldHostRefusedAtOnce: while one orch works on a host, another orch
// running another plan on it is refused before it touches anything, with
// exit 2 and the holder named; once the first ends, the second runs.
func TestHeldHostRefusedAtOnce(t *testing.T) {
	f := startFaultFleet(t, 1)
	os.WriteFile(filepath.Join(f.work, "hold.star"), []byte(`
def main(ctx):
    ctx.apply("all", lambda h: command("touch {r}/holding; while [ ! -e {r}/release ]; do sleep 0.05; done".format(r = h.vars["root"])))
`), 0o644)
	os.WriteFile(filepath.Join(f.work, "other.star"), []byte(`
def main(ctx):
    ctx.apply("all", lambda h: command("touch %s/other" % h.vars["root"]))
`), 0o644)
	holder := f.start(t, f.runArgs("hold.star")...)
	proctest.WaitFile(t, f.path("h1", "holding"))
	out, code := f.orch(t, f.runArgs("other.star")...)
	host, _ := os.Hostname()
	if code != 2 || !strings.Contains(out, fmt.Sprintf("host h1 (ssh %s) is in use by a run in progress: run %s, pid %d, by ", f.Hosts[0].Addr(), holder.runID, holder.cmd.Process.Pid)) ||
		!strings.Contains(out, " on "+host+" since ") || !strings.Contains(out, "hint: wait for that run to end") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(f.path("h1", "other")); err == nil {
		t.Error("the refused run changed the host")
	}
	os.WriteFile(f.path("h1", "release"), nil, 0o644)
	if _, st := holder.wait(); st.ExitCode() != 0 {
		t.Fatalf("holding run: %v", st)
	}
	if out, code := f.orch(t, f.runArgs("other.star")...); code != 0 {
		t.Fatalf("after the holder ended: exit %d\n%s", code, out)
	}
}
