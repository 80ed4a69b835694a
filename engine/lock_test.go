package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
	"github.com/orch-dev/orch/testkit/proctest"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// holdHost starts a run of its own plan that keeps the fleet's first host
// busy until release exists, and returns once that run is working on it.
func holdHost(t *testing.T, fleet *sshdtest.Fleet, state string) (runID string, release string, done <-chan error) {
	t.Helper()
	dir := t.TempDir()
	release = filepath.Join(dir, "release")
	started := filepath.Join(dir, "started")
	inv := inventory.New()
	h := fleet.Hosts[0]
	if err := inv.Add(&inventory.Host{Name: "db1", Address: h.IP, Port: h.Port, User: fleet.User, Key: fleet.ClientKey}); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Load(writeFile(t, "hold.star", fmt.Sprintf(`
def main(ctx):
    ctx.apply("all", lambda h: command("touch %s; while [ ! -e %s ]; do sleep 0.05; done"))
`, started, release)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ids := make(chan string, 1)
	errs := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), p, inv, Options{StateDir: state, Inventories: []string{"hold.ini"}, SSH: strictSSH(fleet.KnownHosts),
			OnEvent: func(e Event) {
				if e.Event == "run_start" {
					ids <- e.RunID
				}
			}})
		errs <- err
	}()
	runID = <-ids
	proctest.WaitFile(t, started)
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) })
	return runID, release, errs
}

// TestHostLockRefusesAnotherPlanOnTheSameHost: the lock is the host's, not
// the plan's or the inventory's. A second run of another plan, whose
// inventory calls the same sshd by another name, is refused before it
// touches anything (no exchange, no host started), naming the holder;
// hosts the first run does not hold stay free; once it ends, the host is
// free again.
func TestHostLockRefusesAnotherPlanOnTheSameHost(t *testing.T) {
	fleet := sshdtest.Start(t, 2, sshdtest.Options{})
	state := t.TempDir()
	holder, release, held := holdHost(t, fleet, state)

	inv, dir := sshInventory(t, fleet) // h1 is db1's sshd, by its own name
	deploy := writeFile(t, "deploy.star", `
def main(ctx):
    ctx.step("deploy", lambda: ctx.apply("web", lambda h: file(path = h.vars["root"], state = "directory")))
`)
	rep, rec, err := runPlan(t, deploy, inv, Options{StateDir: state, Inventories: []string{"web.ini"}, SSH: strictSSH(fleet.KnownHosts)})
	var locked *LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("err = %v, want a *LockedError", err)
	}
	for _, want := range []string{"host h1 (ssh " + fleet.Hosts[0].Addr() + ")", "run " + holder, fmt.Sprintf("pid %d", os.Getpid()), "by " + currentUser(), "on " + hostname(t), "since "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q: %v", want, err)
		}
	}
	if rep.Touched || rep.Summary.Exchanges != 0 || len(rec.of("host_start")) != 0 {
		t.Errorf("the refused run touched something: touched=%v %+v, %d hosts started", rep.Touched, rep.Summary, len(rec.of("host_start")))
	}
	for _, h := range []string{"h1", "h2"} {
		if _, err := os.Stat(filepath.Join(dir, h)); !os.IsNotExist(err) {
			t.Errorf("%s was changed by the refused run", h)
		}
	}

	// h2 is not held: a run on it alone goes ahead meanwhile.
	if _, _, err := runPlan(t, deploy, inv, Options{StateDir: state, Inventories: []string{"web.ini"}, Limit: "h2", SSH: strictSSH(fleet.KnownHosts)}); err != nil {
		t.Fatalf("a run on a host nobody holds: %v", err)
	}

	os.WriteFile(release, nil, 0o644)
	if err := <-held; err != nil {
		t.Fatalf("holding run: %v", err)
	}
	rep, rec, err = runPlan(t, deploy, inv, Options{StateDir: state, Inventories: []string{"web.ini"}, SSH: strictSSH(fleet.KnownHosts)})
	if err != nil || rep.Summary.OK != 2 {
		t.Fatalf("after the holder ended: %v %+v", err, rep.Summary)
	}
	for _, e := range rec.of("warning") {
		if strings.Contains(e.Msg, "took over") {
			t.Errorf("a lock released cleanly was taken over: %s", e.Msg)
		}
	}
}

// TestFirstContactOutsideApplyLocks: a fact read in main contacts the host
// too, so it takes the host's lock first.
func TestFirstContactOutsideApplyLocks(t *testing.T) {
	fleet := sshdtest.Start(t, 1, sshdtest.Options{})
	state := t.TempDir()
	holder, _, _ := holdHost(t, fleet, state)
	inv, _ := sshInventory(t, fleet)
	p := writeFile(t, "facts.star", `
def main(ctx):
    print(ctx.hosts("h1")[0].fact("os"))
`)
	_, _, err := runPlan(t, p, inv, Options{StateDir: state, SSH: strictSSH(fleet.KnownHosts)})
	var locked *LockedError
	if !errors.As(err, &locked) || locked.Holder.RunID != holder {
		t.Fatalf("err = %v, want the lock of run %s", err, holder)
	}
}
