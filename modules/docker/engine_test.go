package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	_ "github.com/orch-dev/orch/modules/file"
	"github.com/orch-dev/orch/plan"
)

// TestRoleRerunIsOneExchange runs a role of two containers and a file
// through the engine, on this machine's engine over the local connection:
// the first run costs the probe exchange and one apply exchange, a rerun
// only the probe exchange, whatever the task mix; check mode never applies.
func TestRoleRerunIsOneExchange(t *testing.T) {
	v1, _ := testImages(t)
	net := network(t, "role")
	dir := t.TempDir()
	src := fmt.Sprintf(`
def role(h):
    docker.container(name = "%[1]s-role-a", image = "%[2]s", env = {"ROLE": "a"}, networks = ["%[3]s"])
    file(path = "%[4]s/marker", content = "x\n")
    docker.container(name = "%[1]s-role-b", image = "%[2]s", labels = {"role": "b"}, state = "stopped")

def main(ctx):
    ctx.apply("all", role)
`, prefix, v1, net, dir)
	planFile := filepath.Join(dir, "plan.star")
	if err := os.WriteFile(planFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: "local", Address: "localhost", Connection: "local"}); err != nil {
		t.Fatal(err)
	}
	run := func(check bool) engine.Summary {
		t.Helper()
		p, err := plan.Load(planFile)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		rep, err := engine.Run(context.Background(), p, inv, engine.Options{Check: check, StateDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Summary
	}
	if s := run(true); s.TasksChanged != 3 || s.Exchanges != 1 {
		t.Fatalf("check run: %+v; want 3 tasks that would change, in 1 exchange", s)
	}
	if inspect(t, prefix+"-role-a") != nil {
		t.Fatal("check mode created a container")
	}
	if s := run(false); s.TasksChanged != 3 || s.Exchanges != 2 {
		t.Fatalf("first run: %+v; want 3 changed tasks in 2 exchanges", s)
	}
	if a, b := inspect(t, prefix+"-role-a"), inspect(t, prefix+"-role-b"); a == nil || !a.Running || b == nil || b.Running {
		t.Fatalf("want a running and b created but stopped: %+v %+v", a, b)
	}
	if s := run(false); s.TasksChanged != 0 || s.Exchanges != 1 || s.OK != 1 {
		t.Fatalf("rerun: %+v; want nothing changed, in 1 exchange", s)
	}
}
