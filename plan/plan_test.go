package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/plans"
)

// fakeRunner evaluates roles for in-memory hosts and records what plans ask.
type fakeRunner struct {
	hosts  []*inventory.Host
	mu     sync.Mutex
	tasks  map[string][]Task
	out    []string
	steps  []string
	done   map[string]json.RawMessage
	guards []GuardReport
}

func newRunner(names ...string) *fakeRunner {
	r := &fakeRunner{tasks: map[string][]Task{}, done: map[string]json.RawMessage{}}
	for _, n := range names {
		r.hosts = append(r.hosts, &inventory.Host{Name: n, Address: "10.0.0." + n[len(n)-1:], Groups: []string{"web"}, Vars: map[string]any{"port": int64(80)}})
	}
	return r
}

func (r *fakeRunner) Hosts(pattern string) ([]*inventory.Host, error) {
	var out []*inventory.Host
	for _, h := range r.hosts {
		if pattern == "all" || pattern == "web" || pattern == h.Name {
			out = append(out, h)
		}
	}
	return out, nil
}

func (r *fakeRunner) Apply(ctx context.Context, req ApplyRequest) (ApplyResult, error) {
	var res ApplyResult
	for _, h := range req.Hosts {
		ts, err := req.Eval(ctx, h)
		if err != nil {
			return res, err
		}
		r.mu.Lock()
		r.tasks[h.Name] = append(r.tasks[h.Name], ts...)
		r.mu.Unlock()
		res.OK = append(res.OK, h)
	}
	return res, nil
}

func (r *fakeRunner) Guard(g GuardReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.guards = append(r.guards, g)
}

func (r *fakeRunner) WaitHost(ctx context.Context, h *inventory.Host, timeout time.Duration, rebooted bool) (WaitResult, error) {
	return WaitResult{BootID: "b2", Rebooted: rebooted}, nil
}

func (r *fakeRunner) Fact(ctx context.Context, h *inventory.Host, name, key string) (any, error) {
	if name == "os" {
		return "linux", nil
	}
	return nil, errors.New("unknown fact")
}

func (r *fakeRunner) Print(host, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out = append(r.out, strings.TrimSpace(host+" "+msg))
}

func (r *fakeRunner) AddHost(h *inventory.Host, line string) error {
	r.hosts = append(r.hosts, h)
	return nil
}

func (r *fakeRunner) RemoveHost(name string)      {}
func (r *fakeRunner) CheckTry(t modules.CheckTry) {}
func (r *fakeRunner) Touch()                      {}

func (r *fakeRunner) StepDone(name string) (json.RawMessage, bool) {
	raw, ok := r.done[name]
	return raw, ok
}

func (r *fakeRunner) Step(e StepEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, e.Name+":"+string(e.Status))
	if e.Status == StepDone {
		r.done[e.Name] = e.Result
	}
	return nil
}

// writePlan writes files into a temp plan folder and returns the main path.
func writePlan(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "plan.star")
}

func run(t *testing.T, src string, r *fakeRunner) error {
	t.Helper()
	p, err := Load(writePlan(t, map[string]string{"plan.star": src}))
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Run(context.Background(), r, RunOptions{Args: map[string]string{"color": "blue"}})
}

func TestRolesRecordTasks(t *testing.T) {
	r := newRunner("web1", "web2")
	err := run(t, `
def web(h):
    file(path = "/etc/motd", content = "hello from %s on %s\n" % (h.name, h.fact("os")), mode = "0644")
    command("systemctl daemon-reload", creates = "/run/done")

def main(ctx):
    res = ctx.apply("web", web)
    print(sorted([h.name for h in res.ok]), ctx.args["color"], ctx.check)
`, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.tasks["web1"]) != 2 || len(r.tasks["web2"]) != 2 {
		t.Fatalf("tasks = %v", r.tasks)
	}
	task := r.tasks["web2"][0]
	if task.Module != "file" || task.Name() != "file /etc/motd" || task.Pos.Line != 3 {
		t.Errorf("task = %s at %s", task.Name(), task.Pos)
	}
	if r.tasks["web2"][1].Name() != "command systemctl daemon-reload" {
		t.Errorf("positional cmd: %s", r.tasks["web2"][1].Name())
	}
	if strings.Join(r.out, "|") != `["web1", "web2"] blue False` {
		t.Errorf("print = %q", r.out)
	}
}

func TestPlanErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"syntax", "def main(ctx)\n    pass\n", "plan.star:2:1: got newline, want ':'"},
		{"unknown argument", "def r(h):\n    file(path = \"/x\", contnet = \"y\")\n", `plan.star:2:23: file: unknown argument "contnet" (did you mean "content"?); it takes path, content, src`},
		{"unknown module member", "def main(ctx):\n    linode.nothing(1)\n", "plan.star:2:5: linode.nothing is not a module; run `orch modules` for the list"},
		{"too many positional", "def r(h):\n    command(\"a\", \"b\", \"c\", {}, [], False, 7)\n", "plan.star:2:5: command: got 7 positional arguments, want at most 6"},
		{"undefined name", "def main(ctx):\n    fiel(path = \"/x\")\n", "plan.star:2:5: undefined: fiel"},
		{"no main", "x = 1\n", "the plan has no main(ctx) function"},
		{"wrong type", "def r(h):\n    file(path = \"/x\", mode = 644)\ndef main(ctx):\n    ctx.apply(\"all\", r)\n", `plan.star:2:9: file: argument "mode": want string, got int`},
		{"missing argument", "def r(h):\n    file(content = \"x\")\ndef main(ctx):\n    ctx.apply(\"all\", r)\n", `file: missing argument "path"`},
		{"task in main", "def main(ctx):\n    file(path = \"/x\")\n", "file: records a host task; call it inside a role run by ctx.apply"},
		{"validate", "def r(h):\n    file(path = \"rel\", content = \"\")\ndef main(ctx):\n    ctx.apply(\"all\", r)\n", `file: path "rel" must be absolute`},
		{"fail", "def main(ctx):\n    fail(\"bad input\")\n", "plan.star:2:9: fail: bad input"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := run(t, c.src, newRunner("web1"))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, c.want)
			}
			if !strings.Contains(err.Error(), "plan.star") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func TestStaticCheckReportsAllErrors(t *testing.T) {
	_, err := Load(writePlan(t, map[string]string{"plan.star": `
def r(h):
    file(path = "/a", modee = "0644")
    command(cmd = "x", unles = "y")
`}))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("err = %v, want two errors", err)
	}
	if errs[0].Pos.Line != 3 || errs[1].Pos.Line != 4 {
		t.Errorf("positions %s, %s", errs[0].Pos, errs[1].Pos)
	}
}

func TestShadowedModuleNameIsNotChecked(t *testing.T) {
	r := newRunner("web1")
	err := run(t, `
def file(**kw):
    return kw

def main(ctx):
    print(file(anything = 1))
`, r)
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	path := writePlan(t, map[string]string{
		"plan.star":           "load(\"roles/web.star\", \"web\")\ndef main(ctx):\n    ctx.apply(\"all\", web)\n",
		"roles/web.star":      "load(\"common.star\", \"motd\")\ndef web(h):\n    motd(h)\n",
		"roles/common.star":   "def motd(h):\n    file(path = \"/etc/motd\", template = \"templates/motd.tmpl\")\n",
		"templates/motd.tmpl": "hi {{.host.name}}\n",
	})
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := newRunner("web1")
	if err := p.Run(context.Background(), r, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := r.tasks["web1"]; len(got) != 1 || !strings.HasSuffix(got[0].Pos.Filename(), "roles/common.star") {
		t.Fatalf("tasks = %v", got)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"cycle", map[string]string{"plan.star": "load(\"a.star\", \"x\")\n", "a.star": "load(\"b.star\", \"x\")\n", "b.star": "load(\"a.star\", \"x\")\n"}, "load cycle: plan.star -> a.star -> b.star -> a.star"},
		{"outside", map[string]string{"plan.star": "load(\"../secret.star\", \"x\")\n"}, "outside the plan's folder"},
		{"missing", map[string]string{"plan.star": "load(\"nope.star\", \"x\")\n"}, `plan.star:1:6: cannot load "nope.star"`},
		{"error in loaded file", map[string]string{"plan.star": "load(\"a.star\", \"x\")\n", "a.star": "def x(h):\n    file(pth = \"/\")\n"}, "a.star:2:10: file: unknown argument \"pth\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writePlan(t, c.files))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestFileReadsConfinedToPlanFolder(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret"), []byte("s3cret"), 0o600)
	planDir := filepath.Join(dir, "plan")
	os.MkdirAll(planDir, 0o755)
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(planDir, "link"))
	for _, src := range []string{"../secret", "link", "/etc/passwd"} {
		os.WriteFile(filepath.Join(planDir, "plan.star"), []byte(fmt.Sprintf(
			"def r(h):\n    file(path = \"/x\", src = %q)\ndef main(ctx):\n    ctx.apply(\"all\", r)\n", src)), 0o644)
		p, err := Load(filepath.Join(planDir, "plan.star"))
		if err != nil {
			t.Fatal(err)
		}
		err = p.Run(context.Background(), newRunner("web1"), RunOptions{})
		p.Close()
		if err == nil {
			t.Errorf("src=%q: read outside the plan's folder", src)
		}
	}
}

func TestStepLimit(t *testing.T) {
	err := run(t, "def main(ctx):\n    n = 0\n    while True:\n        n += 1\n", newRunner())
	if err == nil || !strings.Contains(err.Error(), "execution steps") {
		t.Fatalf("err = %v", err)
	}
}

func TestCancellation(t *testing.T) {
	p, err := Load(writePlan(t, map[string]string{"plan.star": "def main(ctx):\n    while True:\n        pass\n"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, newRunner(), RunOptions{}) }()
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "context canceled") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("plan did not stop after cancellation")
	}
}

const stepsPlan = `
def main(ctx):
    made = ctx.step("create", lambda: ["ns1-next", "ns2-next"], undo = lambda names: print("delete", names))
    ctx.step("switch", lambda: print("switch"), undo = lambda: print("restore"))
    ctx.step("check", lambda: fail("no answer") if ctx.args.get("broken") else "fine")
    print("finished with", made)
`

func TestStepsUndoInReverse(t *testing.T) {
	p, err := Load(writePlan(t, map[string]string{"plan.star": stepsPlan}))
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner()
	err = p.Run(context.Background(), r, RunOptions{Args: map[string]string{"broken": "1"}})
	if err == nil || !strings.Contains(err.Error(), `step "check" failed`) || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Join(r.out, "|"); got != `switch|restore|delete ["ns1-next", "ns2-next"]` {
		t.Errorf("output = %q", got)
	}
	want := "create:start create:done switch:start switch:done check:start check:failed switch:undone create:undone"
	if got := strings.Join(r.steps, " "); got != want {
		t.Errorf("steps = %s\nwant    %s", got, want)
	}
}

func TestResumeSkipsCompletedSteps(t *testing.T) {
	p, err := Load(writePlan(t, map[string]string{"plan.star": stepsPlan}))
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner()
	r.done["create"] = json.RawMessage(`["ns1-next","ns2-next"]`)
	r.done["switch"] = json.RawMessage(`null`)
	if err := p.Run(context.Background(), r, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.out, "|"); got != `finished with ["ns1-next", "ns2-next"]` {
		t.Errorf("output = %q", got)
	}
	if got := strings.Join(r.steps, " "); got != "create:skipped switch:skipped check:start check:done" {
		t.Errorf("steps = %s", got)
	}
}

func TestStepResultsKeepHosts(t *testing.T) {
	h := &inventory.Host{Name: "ns9", Address: "10.9.9.9", Port: 2222, User: "root", Groups: []string{"dns"},
		Vars: map[string]any{"linode_id": 7, "ansible_become_password": "s3cret"}}
	raw, err := encodeResult((&runState{}).hostList([]*inventory.Host{h}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "s3cret") || !strings.Contains(string(raw), `"linode_id":7`) {
		t.Errorf("journaled %s", raw)
	}
	r := newRunner()
	rs := &runState{runner: r}
	v, err := rs.decodeResult(raw)
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != `[host("ns9")]` || len(r.hosts) != 1 || r.hosts[0].Port != 2222 || r.hosts[0].Address != "10.9.9.9" {
		t.Fatalf("decoded %s, hosts %+v", v, r.hosts)
	}
}

func TestShippedPlansLoad(t *testing.T) {
	for _, name := range plans.Names() {
		p, err := Load(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		p.Close()
	}
}

func TestCtxAndControllerCallsRefusedInRoles(t *testing.T) {
	for src, want := range map[string]string{
		"def main(ctx):\n    def role(h):\n        ctx.apply(\"all\", lambda x: None)\n    ctx.apply(\"all\", role)\n": "ctx.apply: cannot be called inside a role",
		"def main(ctx):\n    def role(h):\n        ctx.step(\"s\", lambda: None)\n    ctx.apply(\"all\", role)\n":      "ctx.step: cannot be called inside a role",
		"def role(h):\n    linode.instances()\ndef main(ctx):\n    ctx.apply(\"all\", role)\n":                         "linode.instances: acts from the controller",
	} {
		err := run(t, src, newRunner("web1"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

// cancellingRunner cancels the run during its second apply, as Ctrl-C would.
type cancellingRunner struct {
	*fakeRunner
	cancel  context.CancelFunc
	applies int
}

func (r *cancellingRunner) Apply(ctx context.Context, req ApplyRequest) (ApplyResult, error) {
	r.applies++
	if r.applies == 2 {
		r.cancel()
		return ApplyResult{}, ctx.Err()
	}
	return r.fakeRunner.Apply(ctx, req)
}

func TestUndoRunsAfterCancellation(t *testing.T) {
	p, err := Load(writePlan(t, map[string]string{"plan.star": `
def main(ctx):
    ctx.step("switch", lambda: ctx.apply("all", lambda h: None), undo = lambda: [print("restoring"), ctx.apply("all", lambda h: None)])
    ctx.step("check", lambda: ctx.apply("all", lambda h: None))
`}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancellingRunner{fakeRunner: newRunner("web1"), cancel: cancel}
	if err := p.Run(ctx, r, RunOptions{}); err == nil {
		t.Fatal("a cancelled run succeeded")
	}
	if got := strings.Join(r.steps, " "); got != "switch:start switch:done check:start check:failed switch:undone" {
		t.Errorf("steps = %s", got)
	}
	if r.applies != 3 || strings.Join(r.out, "|") != "restoring" {
		t.Errorf("the undo did not run its apply: %d applies, output %q", r.applies, r.out)
	}
}
