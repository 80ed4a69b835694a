package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
)

// testService is a test module shaped like service(watch=…): it changes
// nothing itself and restarts (appends a line to its log) when a watched
// key changed.
type testService struct {
	Watch []string `arg:"watch,required"`
	Log   string   `arg:"log,required"`
}

func (s *testService) Watches() []string                 { return s.Watch }
func (s *testService) Effects() []string                 { return []string{"service:" + s.Log} }
func (s *testService) Probe(modules.ProbeRequest) string { return "" }
func (s *testService) Check(_ modules.CheckRequest, resp *modules.CheckResponse) {
	resp.Reason = "running"
	resp.OnWatch = &modules.Handler{ID: "service:" + s.Log, Level: 2, Action: "restart " + filepath.Base(s.Log),
		Script: "echo restarted >> " + modules.Quote(s.Log)}
}

// testReload is a test module that rewrites a file and, like
// nginx.upstream, queues a reload of the same service (a lower level).
type testReload struct {
	Path string `arg:"path,required"`
	Body string `arg:"body,required"`
	Log  string `arg:"log,required"`
}

func (r *testReload) Effects() []string { return []string{modules.PathKey(r.Path)} }
func (r *testReload) Probe(modules.ProbeRequest) string {
	return "cat " + modules.Quote(r.Path) + " 2>/dev/null"
}
func (r *testReload) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	if string(req.Output) == r.Body {
		resp.Reason = "up to date"
		return
	}
	resp.Changed, resp.Reason = true, "rewrite"
	resp.Apply = fmt.Sprintf("printf %%s %s > %s", modules.Quote(r.Body), modules.Quote(r.Path))
	resp.Notify = []modules.Handler{{ID: "service:" + r.Log, Level: 1, Action: "reload " + filepath.Base(r.Log),
		Script: "echo reloaded >> " + modules.Quote(r.Log)}}
}

func init() {
	modules.Register(modules.Info{ID: "testservice", Doc: "test only", New: func() any { return new(testService) }})
	modules.Register(modules.Info{ID: "testreload", Doc: "test only", New: func() any { return new(testReload) }})
}

func logLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func TestWatchedDirectoryFiresOnceForTwoChanges(t *testing.T) {
	inv, dir := localInventory(t, 1)
	conf := filepath.Join(dir, "conf.d")
	log := filepath.Join(dir, "restarts")
	os.MkdirAll(conf, 0o755)
	planFile := writeFile(t, "plan.star", fmt.Sprintf(`
def role(h):
    file(path = "%[1]s/a.conf", content = h.vars.get("a", "a1\n"))
    file(path = "%[1]s/b.conf", content = h.vars.get("b", "b1\n"))
    file(path = "%[2]s/unwatched", content = h.vars.get("u", "u1\n"))
    testservice(watch = ["%[1]s/"], log = "%[3]s")

def main(ctx):
    ctx.apply("all", role)
`, conf, dir, log))
	rep, rec, err := runPlan(t, planFile, inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := logLines(t, log); len(got) != 1 {
		t.Fatalf("two watched files changed: %v, want one restart", got)
	}
	// check, then one apply with the restart at its end
	if rep.Summary.Exchanges != 2 {
		t.Errorf("first run: %d exchanges, want 2", rep.Summary.Exchanges)
	}
	if !hasTask(rec, "handler: restart restarts", Changed) {
		t.Errorf("no handler event: %v", rec.of("task"))
	}
	rep, _, err = runPlan(t, planFile, inv, Options{})
	if err != nil || rep.Summary.Exchanges != 1 || len(logLines(t, log)) != 1 {
		t.Fatalf("rerun: err %v, %d exchanges, log %v; want no restart in 1 exchange", err, rep.Summary.Exchanges, logLines(t, log))
	}
	h, _ := inv.Host("h1")
	h.Vars["u"] = "u2\n"
	if _, _, err := runPlan(t, planFile, inv, Options{}); err != nil || len(logLines(t, log)) != 1 {
		t.Fatalf("an unwatched change restarted: %v %v", err, logLines(t, log))
	}
	h.Vars["b"] = "b2\n"
	if _, _, err := runPlan(t, planFile, inv, Options{}); err != nil || len(logLines(t, log)) != 2 {
		t.Fatalf("a watched change: %v %v, want a second restart", err, logLines(t, log))
	}
}

// TestRecheckedUnchangedDoesNotFire: the file task is decided "create" in
// the check, but the command before it writes the same content first; the
// recheck finds the file changed, the fresh check finds it up to date, and
// the watcher does not fire.
func TestRecheckedUnchangedDoesNotFire(t *testing.T) {
	inv, dir := localInventory(t, 1)
	conf := filepath.Join(dir, "app.conf")
	log := filepath.Join(dir, "restarts")
	planFile := writeFile(t, "plan.star", fmt.Sprintf(`
def role(h):
    command(cmd = "printf 'v1\\n' > %[1]s", creates = "%[1]s")
    file(path = "%[1]s", content = "v1\n")
    testservice(watch = ["%[1]s"], log = "%[2]s")

def main(ctx):
    ctx.apply("all", role)
`, conf, log))
	rep, rec, err := runPlan(t, planFile, inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := logLines(t, log); len(got) != 0 {
		t.Errorf("restarts: %v, want none", got)
	}
	if !hasTask(rec, "file "+conf, OK) {
		t.Errorf("the file task should end ok after its recheck: %v", rec.of("task"))
	}
	// check; apply the command, find the file stale and read it afresh (same
	// exchange); the file task is then up to date: nothing more to send.
	if rep.Summary.Exchanges != 2 || rep.Summary.TasksChanged != 1 {
		t.Errorf("summary %+v, want 2 exchanges and 1 task changed", rep.Summary)
	}
}

// TestHandlerLevelsAndPending: a reload and a restart of the same service
// run once, as the restart. When a task after the change fails, the restart
// is journaled and the next run performs it with nothing else to change.
func TestHandlerLevelsAndPending(t *testing.T) {
	inv, dir := localInventory(t, 1)
	state := t.TempDir()
	conf := filepath.Join(dir, "app.conf")
	log := filepath.Join(dir, "svc")
	fail := filepath.Join(dir, "fail")
	planFile := writeFile(t, "plan.star", fmt.Sprintf(`
def role(h):
    testreload(path = "%[1]s", body = h.vars.get("body", "one"), log = "%[2]s")
    testservice(watch = ["%[1]s"], log = "%[2]s")
    command(cmd = "test ! -e %[3]s")

def main(ctx):
    ctx.apply("all", role)
`, conf, log, fail))
	if _, _, err := runPlan(t, planFile, inv, Options{StateDir: state}); err != nil {
		t.Fatal(err)
	}
	if got := logLines(t, log); strings.Join(got, " ") != "restarted" {
		t.Fatalf("log %v, want one restart (it covers the reload)", got)
	}

	os.WriteFile(fail, nil, 0o644)
	h, _ := inv.Host("h1")
	h.Vars["body"] = "two"
	_, rec, err := runPlan(t, planFile, inv, Options{StateDir: state})
	if err == nil {
		t.Fatal("the failing command should fail the run")
	}
	if got := logLines(t, log); len(got) != 1 {
		t.Fatalf("log %v: a failed host must not run its handlers", got)
	}
	if !hasEvent(rec, "warning", "the next run on this host runs them") {
		t.Errorf("no warning about the pending restart: %v", rec.of("warning"))
	}
	if _, err := os.Stat(filepath.Join(state, "handlers", "h1.json")); err != nil {
		t.Fatalf("pending restart not journaled: %v", err)
	}

	os.Remove(fail)
	rep, _, err := runPlan(t, planFile, inv, Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if got := logLines(t, log); strings.Join(got, " ") != "restarted restarted" {
		t.Fatalf("log %v, want the pending restart carried out", got)
	}
	// check, then the command and the pending restart in one apply
	if rep.Summary.Exchanges != 2 {
		t.Errorf("%d exchanges, want 2", rep.Summary.Exchanges)
	}
	if _, err := os.Stat(filepath.Join(state, "handlers", "h1.json")); !os.IsNotExist(err) {
		t.Errorf("pending handlers kept after they ran: %v", err)
	}
	if _, _, err := runPlan(t, planFile, inv, Options{StateDir: state}); err != nil || len(logLines(t, log)) != 2 {
		t.Errorf("a rerun restarted again: %v %v", err, logLines(t, log))
	}
}

func hasTask(rec *recorder, task string, status Status) bool {
	for _, e := range rec.of("task") {
		if e.Task == task && e.Status == status {
			return true
		}
	}
	return false
}

func hasEvent(rec *recorder, kind, msg string) bool {
	for _, e := range rec.of(kind) {
		if strings.Contains(e.Msg, msg) {
			return true
		}
	}
	return false
}
