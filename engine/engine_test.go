package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/inventory"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/plan"
)

// localInventory makes n hosts that run on this machine, each converging
// its own directory.
func localInventory(t *testing.T, n int) (*inventory.Inventory, string) {
	t.Helper()
	dir := t.TempDir()
	inv := inventory.New()
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("h%d", i)
		h := &inventory.Host{Name: name, Address: "localhost", Connection: "local", Groups: []string{"web"},
			Vars: map[string]any{"root": filepath.Join(dir, name)}}
		if err := inv.Add(h); err != nil {
			t.Fatal(err)
		}
	}
	return inv, dir
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) on(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) of(kind string) []Event {
	var out []Event
	for _, e := range r.events {
		if e.Event == kind {
			out = append(out, e)
		}
	}
	return out
}

// steps lists the step events as "name:status" ("name:start" for
// step_start).
func (r *recorder) steps() []string {
	var out []string
	for _, e := range r.events {
		switch e.Event {
		case "step_start":
			out = append(out, e.Step+":start")
		case "step_end":
			out = append(out, e.Step+":"+string(e.Status))
		}
	}
	return out
}

func runPlan(t *testing.T, planFile string, inv *inventory.Inventory, opts Options) (*Report, *recorder, error) {
	t.Helper()
	p, err := plan.Load(planFile)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rec := &recorder{}
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	opts.OnEvent = rec.on
	rep, err := Run(context.Background(), p, inv, opts)
	return rep, rec, err
}

func TestCheckApplyRerun(t *testing.T) {
	inv, dir := localInventory(t, 3)
	rep, _, err := runPlan(t, "testdata/site.star", inv, Options{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.TasksChanged != 63 || rep.Summary.Changed != 3 {
		t.Errorf("check: %+v", rep.Summary)
	}
	if _, err := os.Stat(filepath.Join(dir, "h1")); !os.IsNotExist(err) {
		t.Fatal("check mode created files")
	}

	rep, _, err = runPlan(t, "testdata/site.star", inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.TasksChanged != 63 || s.Changed != 3 || s.OK != 3 || s.Exchanges != 6 {
		t.Errorf("apply: %+v", s)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "h2", "f7.txt"))
	if string(got) != "file 7 on h2\n" {
		t.Errorf("f7 on h2 = %q", got)
	}

	rep, rec, err := runPlan(t, "testdata/site.star", inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.TasksChanged != 0 || s.Changed != 0 || s.OK != 3 || s.Hosts != 3 {
		t.Errorf("rerun: %+v", s)
	}
	for _, h := range rep.Hosts {
		if h.Exchanges > 2 {
			t.Errorf("rerun of %s took %d exchanges, want at most 2", h.Name, h.Exchanges)
		}
	}
	if first, last := rec.events[0], rec.events[len(rec.events)-1]; first.Event != "run_start" || first.RunID != rep.RunID || last.Event != "summary" {
		t.Errorf("events run from %q to %q", first.Event, last.Event)
	}
}

func TestTamperedFileIsOneChange(t *testing.T) {
	inv, dir := localInventory(t, 2)
	if _, _, err := runPlan(t, "testdata/site.star", inv, Options{}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "h2", "f3.txt"), []byte("tampered\n"), 0o644)
	rep, rec, err := runPlan(t, "testdata/site.star", inv, Options{Diff: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.TasksChanged != 1 || rep.Summary.Changed != 1 {
		t.Fatalf("summary: %+v", rep.Summary)
	}
	var changed []Event
	for _, e := range rec.of("task") {
		if e.Status == "changed" {
			changed = append(changed, e)
		}
	}
	if len(changed) != 1 || changed[0].Host != "h2" || !strings.Contains(changed[0].Diff, "-tampered") || !strings.Contains(changed[0].Diff, "+file 3 on h2") {
		t.Fatalf("changed tasks: %+v", changed)
	}
}

const failingPlan = `
def role(h):
    file(path = h.vars["root"], state = "directory")
    command(cmd = "echo boom >&2; exit 4" if h.name == "h2" else "true")
    file(path = h.vars["root"] + "/after", content = "x")

def main(ctx):
    ctx.apply("all", role, serial = int(ctx.args.get("serial", "0")), max_fail = int(ctx.args.get("max_fail", "0")))
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFailedTaskStopsHostAndNamesIt(t *testing.T) {
	inv, dir := localInventory(t, 3)
	planFile := writeFile(t, "plan.star", failingPlan)
	rep, rec, err := runPlan(t, planFile, inv, Options{})
	if err == nil || !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("err = %v", err)
	}
	if s := rep.Summary; s.Failed != 1 || s.OK != 2 {
		t.Errorf("summary: %+v", s)
	}
	var failed, skipped []Event
	for _, e := range rec.of("task") {
		switch e.Status {
		case "failed":
			failed = append(failed, e)
		case "skipped":
			skipped = append(skipped, e)
		}
	}
	if len(failed) != 1 || failed[0].Host != "h2" || !strings.Contains(failed[0].Msg, "plan.star:4") ||
		!strings.Contains(failed[0].Msg, "on h2: exit status 4") || strings.TrimSpace(failed[0].Output) != "boom" {
		t.Fatalf("failed: %+v", failed)
	}
	if len(skipped) != 1 || skipped[0].Task != "file "+filepath.Join(dir, "h2", "after") {
		t.Errorf("skipped: %+v", skipped)
	}
	if _, err := os.Stat(filepath.Join(dir, "h2", "after")); !os.IsNotExist(err) {
		t.Error("a task after the failure ran")
	}
	if _, err := os.Stat(filepath.Join(dir, "h3", "after")); err != nil {
		t.Error("another host did not finish")
	}
}

func TestSerialStopsAfterMaxFail(t *testing.T) {
	inv, dir := localInventory(t, 4)
	planFile := writeFile(t, "plan.star", failingPlan)
	_, _, err := runPlan(t, planFile, inv, Options{Args: map[string]string{"serial": "1"}})
	if !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "h1", "after")); err != nil {
		t.Error("the first batch did not run")
	}
	for _, h := range []string{"h3", "h4"} {
		if _, err := os.Stat(filepath.Join(dir, h)); !os.IsNotExist(err) {
			t.Errorf("batch of %s started after the failure", h)
		}
	}
	// With max_fail=1 every batch runs and the apply succeeds.
	_, _, err = runPlan(t, planFile, inv, Options{Args: map[string]string{"serial": "1", "max_fail": "1"}})
	if err != nil {
		t.Fatalf("max_fail=1: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "h4", "after")); err != nil {
		t.Error("the last batch did not run")
	}
}

func TestUnreachableHostIsCounted(t *testing.T) {
	inv, _ := localInventory(t, 3)
	dial := func(ctx context.Context, h *inventory.Host) (conn.Conn, error) {
		if h.Name == "h3" {
			return nil, &conn.UnreachableError{Host: h.Name, Address: "192.0.2.1:22", Err: errors.New("connection refused")}
		}
		return &conn.Local{Name: h.Name}, nil
	}
	rep, rec, err := runPlan(t, "testdata/site.star", inv, Options{Dial: dial})
	if !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("err = %v", err)
	}
	if s := rep.Summary; s.Unreachable != 1 || s.OK != 2 || s.Failed != 0 || s.Hosts != 3 {
		t.Errorf("summary: %+v", s)
	}
	var msg string
	for _, e := range rec.of("host_done") {
		if e.Host == "h3" {
			msg = string(e.Status) + ": " + e.Msg
		}
	}
	if !strings.Contains(msg, "unreachable: h3 unreachable (192.0.2.1:22): connection refused") {
		t.Errorf("h3: %q", msg)
	}
}

func TestPlanErrorTouchesNothing(t *testing.T) {
	inv, _ := localInventory(t, 2)
	dialled := false
	dial := func(ctx context.Context, h *inventory.Host) (conn.Conn, error) {
		dialled = true
		return &conn.Local{}, nil
	}
	planFile := writeFile(t, "plan.star", `
def role(h):
    file(path = h.vars["root"], state = "directory")
    if h.name == "h2":
        file(path = "/x", mode = 644)

def main(ctx):
    ctx.apply("all", role)
`)
	rep, _, err := runPlan(t, planFile, inv, Options{Dial: dial})
	if err == nil || !strings.Contains(err.Error(), `plan.star:5:13: file: argument "mode": want string, got int`) {
		t.Fatalf("err = %v", err)
	}
	if rep.Touched || dialled {
		t.Error("a host was touched before the plan error was found")
	}
}

func TestLockRefusesSecondRun(t *testing.T) {
	inv, _ := localInventory(t, 1)
	state := t.TempDir()
	planFile := writeFile(t, "plan.star", "def main(ctx):\n    ctx.step(\"wait\", lambda: ctx.apply(\"all\", lambda h: command(\"sleep 1\")))\n")
	p, err := plan.Load(planFile)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	started := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), p, inv, Options{StateDir: state, Inventories: []string{"inv"}, OnEvent: func(e Event) {
			if e.Event == "run_start" {
				started <- e.RunID
			}
		}})
		done <- err
	}()
	first := <-started
	_, err = Run(context.Background(), p, inv, Options{StateDir: state, Inventories: []string{"inv"}})
	var locked *LockedError
	if !errors.As(err, &locked) || !strings.Contains(err.Error(), "run "+first) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second run: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Once the first run ended, the lock is free again.
	if _, err := Run(context.Background(), p, inv, Options{StateDir: state, Inventories: []string{"inv"}}); err != nil {
		t.Fatalf("after the first run: %v", err)
	}
}

func TestResumeSkipsCompletedSteps(t *testing.T) {
	inv, dir := localInventory(t, 1)
	state := t.TempDir()
	marker := filepath.Join(dir, "fail")
	os.WriteFile(marker, nil, 0o644)
	planFile := writeFile(t, "plan.star", fmt.Sprintf(`
def main(ctx):
    ctx.step("one", lambda: ctx.apply("all", lambda h: command("echo x >> %[1]s/one")))
    ctx.step("two", lambda: ctx.apply("all", lambda h: command("test ! -e %[2]s")))
`, dir, marker))
	rep, _, err := runPlan(t, planFile, inv, Options{StateDir: state})
	if err == nil {
		t.Fatal("first run should fail in step two")
	}
	os.Remove(marker)
	_, rec, err := runPlan(t, planFile, inv, Options{StateDir: state, Resume: rep.RunID})
	if err != nil {
		t.Fatal(err)
	}
	steps := rec.steps()
	if strings.Join(steps, " ") != "one:skipped two:start two:done" {
		t.Errorf("steps = %v", steps)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "one")); string(got) != "x\n" {
		t.Errorf("step one ran %q times", got)
	}
}

func TestFacts(t *testing.T) {
	inv, _ := localInventory(t, 1)
	planFile := writeFile(t, "plan.star", `
def role(h):
    print(h.fact("os"), h.fact("user") != "")

def main(ctx):
    ctx.apply("all", role)
`)
	_, rec, err := runPlan(t, planFile, inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p := rec.of("print"); len(p) != 1 || p[0].Msg != "linux True" || p[0].Host != "h1" {
		t.Errorf("print: %+v", p)
	}
}

// TestKilledRunLeavesNoStuckLock: a killed run cannot clean up, but the
// kernel drops its flock, so the next run goes ahead although the lock file
// still names the dead run, and says that it took the lock over.
func TestKilledRunLeavesNoStuckLock(t *testing.T) {
	inv, _ := localInventory(t, 1)
	state := t.TempDir()
	planFile := writeFile(t, "plan.star", "def main(ctx):\n    ctx.apply(\"all\", lambda h: file(path = h.vars[\"root\"], state = \"directory\"))\n")
	sess, err := FileLocks{Dir: filepath.Join(state, "locks")}.Session(LockHolder{RunID: "killed", PID: 1, User: "u", Host: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Lock([]string{planLockKey(planFile, []string{"inv"}), "host local " + hostname(t)}); err != nil {
		t.Fatal(err)
	}
	for _, f := range sess.(*fileLockSession).held {
		f.Close() // what the kernel does for a killed process; the file keeps its content
	}
	_, rec, err := runPlan(t, planFile, inv, Options{StateDir: state, Inventories: []string{"inv"}})
	if err != nil {
		t.Fatalf("run after a killed run: %v", err)
	}
	var took []string
	for _, e := range rec.of("warning") {
		if strings.Contains(e.Msg, "took over the lock") && strings.Contains(e.Msg, "from run killed (pid 1, by u on c") {
			took = append(took, e.Msg)
		}
	}
	if len(took) != 2 {
		t.Errorf("want two takeover notices (plan and host), got %q", took)
	}
	// The run released what it took: the files name no holder.
	locks, _ := filepath.Glob(filepath.Join(state, "locks", "*.lock"))
	for _, l := range locks {
		if b, _ := os.ReadFile(l); len(b) != 0 {
			t.Errorf("%s still holds %s", l, b)
		}
	}
	if len(locks) != 2 {
		t.Errorf("%d lock files, want 2", len(locks))
	}
}

func hostname(t *testing.T) string {
	name, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func TestCancelEndsRemoteWork(t *testing.T) {
	inv, dir := localInventory(t, 1)
	started := filepath.Join(dir, "started")
	// A sleep whose argument is unique to this test, to find it in /proc.
	nap := fmt.Sprintf("30.%d", os.Getpid())
	planFile := writeFile(t, "plan.star", `
def main(ctx):
    ctx.apply("all", lambda h: command("touch `+started+`; sleep `+nap+`"))
`)
	p, err := plan.Load(planFile)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // cancel once the remote command is running
		for range 1000 {
			if _, err := os.Stat(started); err == nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, err = Run(ctx, p, inv, Options{StateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v", err)
	}
	// Nothing the task started may outlive the cancelled run.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		if b, _ := os.ReadFile(f); string(b) == "sleep\x00"+nap+"\x00" {
			t.Errorf("still running after cancel: %s", f)
		}
	}
}

// TestJournalKeepsWhatResumeNeeds: a resumed run must check host keys as the
// first did, so SSH trust is journaled with the other flags.
func TestJournalKeepsWhatResumeNeeds(t *testing.T) {
	inv, _ := localInventory(t, 1)
	state := t.TempDir()
	opts := Options{StateDir: state, Diff: true, Forks: 7, Limit: "h1", Args: map[string]string{"a": "b"},
		Inventories: []string{"/inv.ini"},
		SSH:         SSHOptions{KnownHosts: []string{"/kh"}, HostKeyCheck: "strict", ConnectTimeout: 3 * time.Second}}
	rep, _, err := runPlan(t, "testdata/site.star", inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ReadRunRecord(state, rep.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Diff || rec.Forks != 7 || rec.Limit != "h1" || rec.Args["a"] != "b" || rec.Inventories[0] != "/inv.ini" ||
		rec.KnownHosts[0] != "/kh" || rec.HostKeyCheck != "strict" || rec.ConnectTimeout != 3*time.Second {
		t.Errorf("run.json: %+v", rec)
	}
}
