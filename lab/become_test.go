package lab_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/plan"
)

const sudoPassword = "orch-lab-sudo" // the deploy-pw user's, a lab fixture

// becomePlan writes a root-owned file small enough to travel in the apply
// script and one large enough to go over SFTP, as a non-root login user
// with become, then reads the owner back through a fact of the become
// user's shell.
const becomePlan = `
def role(h):
    file(path = "/etc/orch-become-" + h.vars["tag"], content = "by " + h.vars["tag"] + "\n", owner = "root", mode = "0640")
    file(path = "/etc/orch-become-big-" + h.vars["tag"], content = "x" * (1100 * 1024) + "\n")
    command(cmd = "test \"$(id -u)\" = 0 && test \"$(stat -c %U /etc/orch-become-big-" + h.vars["tag"] + ")\" = root")

def main(ctx):
    ctx.apply("all", role, become = True)
`

func becomeRun(t *testing.T, l *lab.Lab, user, tag, password string) (*engine.Report, []engine.Event, string, error) {
	t.Helper()
	addr := status(t)["lb2"].Address
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: "lb2", Address: addr, Port: 22, User: user, Key: l.KeyPath(),
		Vars: map[string]any{"tag": tag}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.star")
	os.WriteFile(planFile, []byte(becomePlan), 0o644)
	p, err := plan.Load(planFile)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	state := filepath.Join(dir, "state")
	var events []engine.Event
	rep, err := engine.Run(context.Background(), p, inv, engine.Options{
		StateDir: state, BecomePassword: password,
		SSH:     engine.SSHOptions{KnownHosts: []string{l.KnownHostsPath()}, HostKeyCheck: "strict", NoSSHConfig: true},
		OnEvent: func(e engine.Event) { events = append(events, e) },
	})
	return rep, events, state, err
}

// TestBecome runs tasks as root through sudo from the lab's non-root
// users: deploy (NOPASSWD) and deploy-pw (with its password, which must
// appear nowhere: not in events, not in the journal), and a wrong password
// fails clearly.
func TestBecome(t *testing.T) {
	l := needLab(t)
	rep, events, _, err := becomeRun(t, l, "deploy", "nopasswd", "")
	if err != nil || rep.Summary.TasksChanged != 3 {
		t.Fatalf("deploy: %v %+v %v", err, rep.Summary, events)
	}
	if got := execIn(t, testOpts.Prefix+"-lb2", "stat -c '%U %a' /etc/orch-become-nopasswd"); got != "root 640" {
		t.Errorf("owner and mode %q, want root 640", got)
	}

	rep, events, state, err := becomeRun(t, l, "deploy-pw", "passwd", sudoPassword)
	if err != nil || rep.Summary.TasksChanged != 3 {
		t.Fatalf("deploy-pw: %v %+v %v", err, rep.Summary, events)
	}
	for _, e := range events {
		if b, _ := e.MarshalJSON(); strings.Contains(string(b), sudoPassword) {
			t.Errorf("the password is in an event: %s", b)
		}
	}
	filepath.Walk(state, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), sudoPassword) {
				t.Errorf("the password is in %s", p)
			}
		}
		return nil
	})
	rep, _, _, err = becomeRun(t, l, "deploy-pw", "passwd", sudoPassword)
	if err != nil || rep.Summary.TasksChanged != 1 || rep.Summary.Exchanges != 2 {
		t.Errorf("rerun: %v %+v; want only the command to run, in 2 exchanges", err, rep.Summary)
	}

	_, events, _, err = becomeRun(t, l, "deploy-pw", "wrong", "not-the-password")
	if err == nil {
		t.Fatal("a wrong password should fail the run")
	}
	refused := false
	for _, e := range events {
		refused = refused || (e.Event == "host_done" && strings.Contains(e.Msg, "the password was refused"))
	}
	if !refused {
		t.Errorf("no clear refusal in %v", events)
	}
	_, _, _, err = becomeRun(t, l, "deploy-pw", "none", "")
	if err == nil || !strings.Contains(err.Error(), "a password is required") {
		t.Errorf("no password: %v", err)
	}
}
