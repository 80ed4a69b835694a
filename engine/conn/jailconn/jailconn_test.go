package jailconn_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/engine/conn/dockerconn"
	"github.com/orch-dev/orch/engine/conn/jailconn"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab/standin/standintest"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/testkit/localrun"
)

// startJail boots a stand-in host with one persistent jail, app, cloned
// from the base template.
func startJail(t *testing.T) *standintest.Host {
	h := standintest.Start(t, "orch-jail-conn")
	root := h.Jail("app", h.Template())
	h.Must(fmt.Sprintf("jail -c name=app path=%s host.hostname=app mount.devfs persist", root))
	return h
}

func inv(t *testing.T, h *standintest.Host) *inventory.Inventory {
	inv := inventory.New()
	for _, host := range []*inventory.Host{
		{Name: "bsd1", Address: h.Address, User: "root", Key: h.KeyFile, Groups: []string{"freebsd"}},
		{Name: "app", Connection: "jail", Groups: []string{"jails"}, Vars: map[string]any{"jail_host": "bsd1", "jail_name": "app"}},
		{Name: "ghost", Connection: "jail", Groups: []string{"ghosts"}, Vars: map[string]any{"jail_host": "bsd1", "jail_name": "nosuch"}},
	} {
		if err := inv.Add(host); err != nil {
			t.Fatal(err)
		}
	}
	return inv
}

func run(t *testing.T, h *standintest.Host, src string) (*engine.Report, []engine.Event, error) {
	t.Helper()
	return localrun.RunPlan(t, src, inv(t, h), engine.Options{
		SSH: engine.SSHOptions{KnownHosts: []string{h.KnownHosts}, HostKeyCheck: "strict", NoSSHConfig: true}})
}

const rolePlan = `
def app(h):
    file(path = "/etc/motd", content = "inside the jail\n")
    file(path = "/escape/tmp/orch-escape-test", content = "must stay in the jail\n")
    command(cmd = "hostname > /tmp/ran-in", creates = "/tmp/ran-in")

def main(ctx):
    ctx.apply("jails", app)
`

// TestRoleInsideJail runs a role (files and a command) in a jail through
// the jail connection over the parent's SSH connection: the files appear
// inside the jail, a symlink planted in the jail that points at / does not
// let a write out of it, and a no-change rerun is one exchange, counted
// once in the run's total.
func TestRoleInsideJail(t *testing.T) {
	h := startJail(t)
	h.Must("ln -s / /jails/app/escape")

	rep, ev, err := run(t, h, rolePlan)
	if err != nil || rep.Summary.TasksChanged != 3 {
		t.Fatalf("first run: %v %+v%s", err, rep.Summary, localrun.Tasks(ev))
	}
	if got := h.Must("cat /jails/app/etc/motd /jails/app/tmp/ran-in"); got != "inside the jail\napp\n" {
		t.Errorf("inside the jail: %q", got)
	}
	if got := h.Must("cat /jails/app/tmp/orch-escape-test; test -e /tmp/orch-escape-test && echo ESCAPED || true"); got != "must stay in the jail\n" {
		t.Errorf("a write through the jail's symlink to /: %q", got)
	}

	rep, ev, err = run(t, h, rolePlan)
	if err != nil || rep.Summary.TasksChanged != 0 {
		t.Fatalf("rerun: %v %+v%s", err, rep.Summary, localrun.Tasks(ev))
	}
	var app *engine.HostReport
	for i := range rep.Hosts {
		if rep.Hosts[i].Name == "app" {
			app = &rep.Hosts[i]
		}
	}
	if app == nil || app.Exchanges != 1 {
		t.Errorf("rerun: the jail host's batch took %+v exchanges, want 1", app)
	}
	if rep.Summary.Exchanges != 1 {
		t.Errorf("rerun: the run counted %d exchanges, want 1 (the jail's exec is one exec of its parent's connection)", rep.Summary.Exchanges)
	}
}

// TestUnknownJail names the jail and its host.
func TestUnknownJail(t *testing.T) {
	h := startJail(t)
	rep, ev, err := run(t, h, `
def role(h):
    file(path = "/etc/motd", content = "x\n")

def main(ctx):
    ctx.apply("ghosts", role)
`)
	if err == nil {
		t.Fatalf("a run against a jail that does not exist succeeded: %+v%s", rep.Summary, localrun.Tasks(ev))
	}
	if rep.Summary.Unreachable != 1 || len(rep.Hosts) != 1 || !strings.Contains(rep.Hosts[0].Err, `jail "nosuch" on host bsd1: no such jail is running`) {
		t.Errorf("%v\n%+v %+v", err, rep.Summary, rep.Hosts)
	}
}

// TestWriteFile writes through the connection directly (the engine does
// for large uploads), with a docker connection as the parent: the file is
// written inside the jail, atomically, with its mode; a symlink at the
// target is replaced, not followed; and a symlinked parent directory
// resolves inside the jail. Each write is one exchange on both.
func TestWriteFile(t *testing.T) {
	h := startJail(t)
	ctx := context.Background()
	parent, err := dockerconn.Dial(ctx, h.ID, dockerconn.Options{Host: os.Getenv("DOCKER_HOST")})
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	c, err := jailconn.New(parent, jailconn.Options{Host: "app", Parent: "bsd1", Jail: "app"})
	if err != nil {
		t.Fatal(err)
	}
	h.Must("ln -s / /jails/app/up; ln -s /etc/passwd /jails/app/tmp/link")
	before := parent.Exchanges()
	if err := c.WriteFile(ctx, "/up/tmp/written", []byte("data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFile(ctx, "/tmp/link", []byte("replaced\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := h.Must("stat -c '%a %s' /jails/app/tmp/written; cat /jails/app/tmp/written /jails/app/tmp/link; test -L /jails/app/tmp/link && echo link; test -e /tmp/written && echo ESCAPED; grep -c root /jails/app/etc/passwd"); got != "600 5\ndata\nreplaced\n1\n" {
		t.Errorf("after the writes: %q", got)
	}
	if c.Exchanges() != 2 || parent.Exchanges()-before != 2 {
		t.Errorf("two writes: %d jail exchanges, %d parent exchanges; want 2 and 2", c.Exchanges(), parent.Exchanges()-before)
	}

	res, err := c.Exec(ctx, "cat; echo \" in $(hostname)\"", strings.NewReader("stdin"))
	if err != nil || string(res.Stdout) != "stdin in app\n" || res.ExitCode != 0 {
		t.Errorf("exec with stdin: %q %v", res.Stdout, err)
	}
	res, err = c.Exec(ctx, "read x || echo 'no stdin'; exit 3", nil)
	if err != nil || string(res.Stdout) != "no stdin\n" || res.ExitCode != 3 {
		t.Errorf("exec without stdin: %q exit %d, %v", res.Stdout, res.ExitCode, err)
	}

	ghost, _ := jailconn.New(parent, jailconn.Options{Host: "ghost", Parent: "bsd1", Jail: "nosuch"})
	_, err = ghost.Exec(ctx, "true", nil)
	var ue *conn.UnreachableError
	if !errors.Is(err, jailconn.ErrNoJail) || !errors.As(err, &ue) || !strings.Contains(err.Error(), `jail "nosuch" on host bsd1`) {
		t.Errorf("a missing jail: %v", err)
	}
	if err := ghost.WriteFile(ctx, "/tmp/x", nil, 0o644); !errors.Is(err, jailconn.ErrNoJail) {
		t.Errorf("a write to a missing jail: %v", err)
	}
}
