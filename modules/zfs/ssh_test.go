package zfs

import (
	"fmt"
	"testing"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/testkit/localrun"
	"github.com/orch-dev/orch/testkit/sshdtest"
	"github.com/orch-dev/orch/testkit/zfstest"
)

// TestOverSSH runs a dataset, its snapshot and a clone over a real sshd
// on loopback (as this test's user, root, as zfs needs): two exchanges
// for the run that creates them, one for the rerun, counted by the engine.
func TestOverSSH(t *testing.T) {
	p := zfstest.New(t)
	fleet := sshdtest.Start(t, 1, sshdtest.Options{})
	h := fleet.Hosts[0]
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: h.Name, Address: h.IP, Port: h.Port, User: fleet.User, Key: fleet.ClientKey}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // one state dir for both runs, as for an operator's
	ds := p.Name + "/ssh"
	src := role(
		fmt.Sprintf(`zfs.dataset(name = %q, properties = {"quota": "512M"})`, ds),
		fmt.Sprintf(`zfs.snapshot(name = %q)`, ds+"@a"),
		fmt.Sprintf(`zfs.clone(snapshot = %q, name = %q)`, ds+"@a", ds+"-a"),
	)
	runOnce := func(what string, changed int, exchanges int64) {
		t.Helper()
		rep, events, err := localrun.RunPlan(t, src, inv, engine.Options{StateDir: dir,
			SSH: engine.SSHOptions{KnownHosts: []string{fleet.KnownHosts}, HostKeyCheck: "strict", NoSSHConfig: true}})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		expect(t, what, rep.Summary, events, changed, exchanges)
	}
	runOnce("first run over ssh", 3, 2)
	runOnce("rerun over ssh", 0, 1)
	if !exists(ds+"-a") || local(t, p, ds, "quota") != "536870912" {
		t.Fatal("the clone or the quota is missing")
	}
}
