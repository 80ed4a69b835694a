package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
	"github.com/orch-dev/orch/testkit/netnstest"
	"github.com/orch-dev/orch/testkit/proctest"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// Faults injected for real against sshd servers: a server killed, a
// network cut, a run cancelled. Every server runs on this machine, so the
// tests can look for what the hosts still run in /proc.

// runWhen runs plan in the background and calls then once marker exists;
// it returns what Run returned.
func runWhen(t *testing.T, planFile string, inv *inventory.Inventory, opts Options, marker string, then func(cancel func())) (*Report, *recorder, error) {
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := Run(ctx, p, inv, opts)
		done <- result{rep, err}
	}()
	proctest.WaitFile(t, marker)
	then(cancel)
	r := <-done
	return r.rep, rec, r.err
}

// TestSSHDKilledMidRun: sshd of one host of three is killed (listener and
// sessions, SIGKILL) while that host validates a new config. That host is
// reported unreachable, naming it; the others finish; the run fails; the
// killed host's config is the old one, whole, and the temporary file that
// held the new one is removed on the host once the session is gone.
func TestSSHDKilledMidRun(t *testing.T) {
	fleet := sshdtest.Start(t, 3, sshdtest.Options{})
	inv, dir := sshInventory(t, fleet)
	for _, h := range fleet.Hosts {
		os.MkdirAll(filepath.Join(dir, h.Name), 0o755)
		os.WriteFile(filepath.Join(dir, h.Name, "app.conf"), []byte("old = true\n"), 0o644)
	}
	nap := fmt.Sprintf("36.%d", os.Getpid())
	validating := filepath.Join(dir, "h2", "validating")
	planFile := writeFile(t, "plan.star", fmt.Sprintf(`
def role(h):
    r = h.vars["root"]
    slow = "sh -c 'touch %s; sleep %s' -- %%s" if h.name == "h2" else "test -s %%s"
    file(path = r + "/app.conf", content = "new = true\n" * 1000, validate = slow)
    file(path = r + "/after", content = "done\n")

def main(ctx):
    ctx.apply("all", role)
`, validating, nap))
	rep, rec, err := runWhen(t, planFile, inv, Options{SSH: strictSSH(fleet.KnownHosts)}, validating, func(func()) {
		fleet.Hosts[1].KillSSHD()
	})
	if !errors.Is(err, ErrTooManyFailures) || !strings.Contains(err.Error(), "(h2)") {
		t.Fatalf("err = %v", err)
	}
	if s := rep.Summary; s.Unreachable != 1 || s.OK != 2 || s.Changed != 2 || s.Hosts != 3 {
		t.Errorf("summary: %+v", s)
	}
	if e := hostDone(rec, "h2"); e.Status != Unreachable || !strings.Contains(e.Msg, "h2") {
		t.Errorf("h2: %+v", e)
	}
	for _, h := range []string{"h1", "h3"} {
		if got, _ := os.ReadFile(filepath.Join(dir, h, "after")); string(got) != "done\n" {
			t.Errorf("%s did not finish: %q", h, got)
		}
	}
	proctest.WaitGone(t, "sleep", nap)
	if got, _ := os.ReadFile(filepath.Join(dir, "h2", "app.conf")); string(got) != "old = true\n" {
		t.Errorf("h2's config is now %d bytes: %.40q", len(got), got)
	}
	// The apply's trap removes the temporary file once TERM reaches it,
	// a moment after the sleep it waited on is gone.
	var names []string
	for range 500 {
		entries, _ := os.ReadDir(filepath.Join(dir, "h2"))
		names = names[:0]
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Join(names, " ") != "app.conf validating" {
		t.Errorf("h2 holds %v, want only the old config (and the test's marker)", names)
	}
}

// TestNetworkCutFailsWithinTimeout: the network to one host (an sshd in a
// network namespace of its own) is cut while a task runs there. Its
// exchange fails when --timeout ends it, naming the timeout; the other
// host finishes; the run returns instead of hanging.
func TestNetworkCutFailsWithinTimeout(t *testing.T) {
	ns := netnstest.New(t, 0)
	far := sshdtest.Start(t, 1, sshdtest.Options{NetNS: ns.Name, FirstAddress: ns.IP, Port: 22})
	near := sshdtest.Start(t, 1, sshdtest.Options{})
	dir := t.TempDir()
	inv := inventory.New()
	for _, h := range []*inventory.Host{
		{Name: "far", Address: ns.IP, Port: 22, User: far.User, Key: far.ClientKey, Vars: map[string]any{"root": filepath.Join(dir, "far")}},
		{Name: "near", Address: near.Hosts[0].IP, Port: near.Hosts[0].Port, User: near.User, Key: near.ClientKey, Vars: map[string]any{"root": filepath.Join(dir, "near")}},
	} {
		os.MkdirAll(h.Vars["root"].(string), 0o755)
		inv.Add(h)
	}
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte(far.Hosts[0].KnownHostsLine()+"\n"+near.Hosts[0].KnownHostsLine()+"\n"), 0o600)
	planFile := writeFile(t, "plan.star", `
def role(h):
    r = h.vars["root"]
    command("touch {r}/started; while [ ! -e {r}/go ]; do sleep 0.05; done; echo done > {r}/done".format(r = r))

def main(ctx):
    ctx.apply("all", role)
`)
	const timeout = 3 * time.Second
	opts := Options{SSH: strictSSH(known), ExecTimeout: timeout}
	rep, rec, err := runWhen(t, planFile, inv, opts, filepath.Join(dir, "far", "started"), func(func()) {
		proctest.WaitFile(t, filepath.Join(dir, "near", "started"))
		ns.Cut(t)
		os.WriteFile(filepath.Join(dir, "near", "go"), nil, 0o644)
		os.WriteFile(filepath.Join(dir, "far", "go"), nil, 0o644)
	})
	if !errors.Is(err, ErrTooManyFailures) || !strings.Contains(err.Error(), "(far)") {
		t.Fatalf("err = %v", err)
	}
	e := hostDone(rec, "far")
	if !e.Status.Bad() || !strings.Contains(e.Msg, "far took longer than --timeout 3s; its processes were ended") {
		t.Errorf("far: %s %s", e.Status, e.Msg)
	}
	if e := hostDone(rec, "near"); e.Status != Changed {
		t.Errorf("near: %+v", e)
	}
	if s := rep.Summary; s.Hosts != 2 || s.Changed != 1 {
		t.Errorf("summary: %+v", s)
	}
}

// TestCancelEndsRemoteWorkOverSSH: cancelling a run ends what its tasks
// started on the host, through the GroupScript watchdog (and, with
// become, the privileged one under sudo).
func TestCancelEndsRemoteWorkOverSSH(t *testing.T) {
	for _, become := range []bool{false, true} {
		t.Run(fmt.Sprintf("become=%v", become), func(t *testing.T) {
			fleet := sshdtest.Start(t, 1, sshdtest.Options{})
			inv, dir := sshInventory(t, fleet)
			os.MkdirAll(filepath.Join(dir, "h1"), 0o755)
			started := filepath.Join(dir, "h1", "started")
			nap := fmt.Sprintf("37.%d%d", os.Getpid(), map[bool]int{false: 0, true: 1}[become])
			planFile := writeFile(t, "plan.star", fmt.Sprintf(`
def main(ctx):
    ctx.apply("all", lambda h: command("touch %s; sleep %s"), become = %s)
`, started, nap, map[bool]string{false: "False", true: "True"}[become]))
			_, _, err := runWhen(t, planFile, inv, Options{SSH: strictSSH(fleet.KnownHosts)}, started, func(cancel func()) {
				proctest.WaitRunning(t, 1, "sleep", nap)
				cancel()
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v", err)
			}
			proctest.WaitGone(t, "sleep", nap)
		})
	}
}
