package serve

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// A run of another plan, from another inventory that names the same
// machine differently, holds the host: the delivery waits on the host's
// lock (refused before it touched anything, so it is retried), then runs.
func TestRunWaitsForAHostHeldByAnotherPlan(t *testing.T) {
	state := t.TempDir()
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	out := filepath.Join(dir, "out.log")
	hookPlan := filepath.Join(dir, "hook.star")
	os.WriteFile(hookPlan, []byte(fmt.Sprintf(`
def main(ctx):
    ctx.step("record", lambda: ctx.apply("all", lambda h: command(cmd = "echo %%s >> %s" %% ctx.event.delivery)))
`, out)), 0o644)
	holdPlan := filepath.Join(dir, "hold.star")
	os.WriteFile(holdPlan, []byte(fmt.Sprintf(`
def main(ctx):
    ctx.apply("all", lambda h: command(cmd = "while [ ! -e %s ]; do sleep 0.05; done"))
`, release)), 0o644)
	local := func(name string) *inventory.Inventory {
		inv := inventory.New()
		inv.Add(&inventory.Host{Name: name, Address: "localhost", Connection: "local"})
		return inv
	}

	held := make(chan struct{})
	manual := make(chan error, 1)
	go func() {
		p, err := plan.Load(holdPlan)
		if err != nil {
			manual <- err
			return
		}
		defer p.Close()
		_, err = engine.Run(context.Background(), p, local("this-machine"), engine.Options{StateDir: state, Inventories: []string{"ops.ini"},
			OnEvent: func(e engine.Event) {
				if e.Event == "host_start" {
					close(held)
				}
			}})
		manual <- err
	}()
	<-held

	rec := newRecorder()
	inv := func(ctx context.Context) (*inventory.Inventory, []string, error) {
		return local("localhost"), []string{"local"}, nil
	}
	_, base := start(t, Options{Run: PlanRunner(hookPlan, inv, engine.Options{StateDir: state}), Log: rec.log, LockRetry: 50 * time.Millisecond})
	if status, answer := push("d-1", "a").post(t, base); status != http.StatusAccepted {
		t.Fatalf("status %d %v", status, answer)
	}
	rec.wait(t, 1, "waiting for the run lock", "d-1")
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the delivery ran while another plan held the host")
	}
	os.WriteFile(release, nil, 0o644)
	if err := <-manual; err != nil {
		t.Fatalf("manual run: %v", err)
	}
	if e := rec.wait(t, 1, "run done", "d-1"); e.Err != "" {
		t.Errorf("run: %+v", e)
	}
	if b, _ := os.ReadFile(out); string(b) != "d-1\n" {
		t.Errorf("out.log = %q", b)
	}
}
