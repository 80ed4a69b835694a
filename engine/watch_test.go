package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
)

// restarter is a test module that uses the engine's watch hook the way the
// service module will: it acts only when a watched path changed earlier in
// the same run.
type restarter struct {
	Watch []string `arg:"watch,required"`
	Log   string   `arg:"log,required"`
}

func (r *restarter) Watches() []string                 { return r.Watch }
func (r *restarter) Probe(modules.ProbeRequest) string { return "" }
func (r *restarter) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	if !req.Triggered {
		resp.Reason = "nothing watched changed"
		return
	}
	resp.Changed, resp.Reason = true, "restart"
	resp.Apply = "echo restarted >> " + modules.Quote(r.Log)
}

func init() {
	modules.Register(modules.Info{ID: "testwatch", Doc: "test only", New: func() any { return new(restarter) }})
}

func TestWatchTriggersOnlyOnChange(t *testing.T) {
	inv, dir := localInventory(t, 1)
	conf := filepath.Join(dir, "app.conf")
	log := filepath.Join(dir, "restarts")
	plan := writeFile(t, "plan.star", `
def role(h):
    file(path = "`+conf+`", content = h.vars.get("conf", "v1\n"))
    file(path = "`+dir+`/other", content = "x")
    testwatch(watch = ["`+conf+`"], log = "`+log+`")

def main(ctx):
    ctx.apply("all", role)
`)
	restarts := func() int {
		b, _ := os.ReadFile(log)
		return strings.Count(string(b), "restarted")
	}
	for i, want := range []int{1, 1} {
		if _, _, err := runPlan(t, plan, inv, Options{}); err != nil {
			t.Fatal(err)
		}
		if got := restarts(); got != want {
			t.Fatalf("run %d: %d restarts, want %d", i+1, got, want)
		}
	}
	h, _ := inv.Host("h1")
	h.Vars["conf"] = "v2\n"
	if _, _, err := runPlan(t, plan, inv, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := restarts(); got != 2 {
		t.Fatalf("after a config change: %d restarts, want 2", got)
	}
}
