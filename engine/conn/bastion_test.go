package conn_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules/file"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// TestBastionConnection: hosts of the registered "bastion" connection are
// reached only through the program's bastion client; with it closed they
// are unreachable, and the other hosts of the run are not affected.
func TestBastionConnection(t *testing.T) {
	fleet := sshdtest.Start(t, 3, sshdtest.Options{})
	b, err := dialBastion(fleet.Hosts[0], fleet)
	if err != nil {
		t.Fatal(err)
	}
	bastion.Store(b)
	t.Cleanup(func() { bastion.Store(nil) })
	tunnels.Store(0)

	dir := t.TempDir()
	behind := fleet.Hosts[1]
	direct := fleet.Hosts[2]
	hosts := []*inventory.Host{
		{Name: "behind", Address: behind.IP, Port: behind.Port, User: fleet.User, Key: fleet.ClientKey, Connection: "bastion"},
		{Name: "direct", Address: direct.IP, Port: direct.Port, User: fleet.User, Key: fleet.ClientKey},
	}
	opts := engine.ConvergeOptions{
		Options: engine.Options{StateDir: t.TempDir(),
			SSH: engine.SSHOptions{KnownHosts: []string{fleet.KnownHosts}, HostKeyCheck: "strict", NoSSHConfig: true}},
		PerHost: func(h *inventory.Host) ([]engine.Task, error) {
			return []engine.Task{{Args: &file.File{Path: filepath.Join(dir, h.Name), State: "directory"}}}, nil
		},
		MaxFail: 1,
	}
	rep, err := engine.Converge(context.Background(), hosts, nil, opts)
	if err != nil || rep.Summary.Changed != 2 {
		t.Fatalf("through the bastion: %v, %+v", err, rep.Summary)
	}
	if n := tunnels.Load(); n != 1 {
		t.Errorf("%d connections through the bastion, want 1 (behind only)", n)
	}

	b.Close()
	rep, err = engine.Converge(context.Background(), hosts, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]engine.HostReport{}
	for _, h := range rep.Hosts {
		byName[h.Name] = h
	}
	if h := byName["behind"]; h.Status != engine.Unreachable || !strings.Contains(h.Err, "behind") {
		t.Errorf("behind a closed bastion: %+v", h)
	}
	if h := byName["direct"]; h.Status != engine.OK {
		t.Errorf("direct host: %+v", h)
	}
	if n := tunnels.Load(); n != 2 {
		t.Errorf("%d tries through the bastion, want 2", n)
	}
}
