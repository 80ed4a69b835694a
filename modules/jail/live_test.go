package jail_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/internal/freebsd"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab/standin/standintest"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/jail"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/testkit/localrun"
)

// runPlan runs src against the stand-in host over SSH and returns the
// summary and the task events.
func runPlan(t *testing.T, h *standintest.Host, src string, check bool) (engine.Summary, []engine.Event) {
	t.Helper()
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: "bsd1", Address: h.Address, User: "root", Key: h.KeyFile, Groups: []string{"freebsd"},
		Vars: map[string]any{"jail_ip": standintest.Addr(h.Subnet, 60)}}); err != nil {
		t.Fatal(err)
	}
	rep, all, err := localrun.RunPlan(t, src, inv, engine.Options{Check: check, Diff: true,
		SSH: engine.SSHOptions{KnownHosts: []string{h.KnownHosts}, HostKeyCheck: "strict", NoSSHConfig: true}})
	var events []engine.Event
	for _, e := range all {
		if e.Event == "task" {
			events = append(events, e)
		}
	}
	if err != nil {
		t.Fatalf("run: %v%s", err, tasks(events))
	}
	return rep.Summary, events
}

func tasks(events []engine.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\n  %s %s: %s %s %s", e.Task, e.Status, e.Msg, strings.TrimSpace(e.Output), e.Diff)
	}
	return b.String()
}

const twoJails = `
def role(h):
    for name in ["db", "cache"]:
        jail(name = name, path = "/jails/" + name, params = {"persist": True, "mount.devfs": True})

def main(ctx):
    ctx.apply("freebsd", role)
`

func rolePlan(state, hostname string) string {
	return fmt.Sprintf(`
def role(h):
    jail(name = "www", path = "/jails/www", ip = h.vars["jail_ip"], state = %q,
         params = {"host.hostname": %q, "persist": True, "exec.poststart": "echo started > /tmp/www-started"})

def main(ctx):
    ctx.apply("freebsd", role)
`, state, hostname)
}

// jls lists the host's jails with the parser the module uses.
func jls(t *testing.T, h *standintest.Host) map[string]freebsd.Jail {
	t.Helper()
	js, err := freebsd.ParseJLS([]byte(h.Must("jls -v --libxo json")))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]freebsd.Jail{}
	for _, j := range js {
		out[j.Name] = j
	}
	return out
}

// TestLiveStates drives one jail through every state on a stand-in host
// over SSH: each change is one changed task, each rerun changes nothing in
// one exchange, check mode changes nothing, and the host's own tools (jls,
// sysrc, the file) show the outcome. A running jail comes back after a
// reboot (rc starts it from jail_list), and two jails of one role still
// cost one exchange on a rerun.
func TestLiveStates(t *testing.T) {
	h := standintest.Start(t, "orch-jail-mod")
	h.Jail("www", h.Template())
	converge := func(step, src string, wantChanged int) {
		t.Helper()
		s, ev := runPlan(t, h, src, false)
		if s.Failed+s.Unreachable != 0 || s.TasksChanged != wantChanged {
			t.Fatalf("%s: %+v, want %d task changed%s", step, s, wantChanged, tasks(ev))
		}
		s, ev = runPlan(t, h, src, false)
		if s.TasksChanged != 0 || s.Exchanges != 1 || s.Failed != 0 {
			t.Fatalf("%s, rerun: %+v, want no change in 1 exchange%s", step, s, tasks(ev))
		}
	}

	// Check mode first: nothing is written or started.
	s, ev := runPlan(t, h, rolePlan("running", "www.example.test"), true)
	if s.TasksChanged != 1 || len(ev) != 1 || !strings.Contains(ev[0].Msg, "start www") {
		t.Fatalf("check mode: %+v%s", s, tasks(ev))
	}
	if _, ok := jls(t, h)["www"]; ok || h.Must("test -e /etc/jail.conf.d/www.conf && echo exists || true") != "" {
		t.Fatal("check mode started the jail or wrote its config")
	}

	converge("running", rolePlan("running", "www.example.test"), 1)
	j, ok := jls(t, h)["www"]
	if !ok || j.Hostname != "www.example.test" || j.Path != "/jails/www" {
		t.Fatalf("after running: jls %+v", jls(t, h))
	}
	if got := h.Must("sysrc -n jail_enable jail_list"); got != "YES\nwww\n" {
		t.Errorf("rc.conf: %q", got)
	}
	if got := h.Must("jexec www hostname"); got != "www.example.test\n" {
		t.Errorf("hostname inside: %q", got)
	}
	if os.Getenv("ORCH_RECORD_STANDIN") != "" { // a recording tool: the stand-in fact fixture
		record(t, h)
	}

	// A changed config restarts the jail: a new JID and the new hostname.
	s, ev = runPlan(t, h, rolePlan("running", "www2.example.test"), false)
	if s.TasksChanged != 1 || !strings.Contains(ev[0].Msg, "restart www (its config changed)") || !strings.Contains(ev[0].Diff, `+	host.hostname = "www2.example.test";`) {
		t.Fatalf("config change: %+v%s", s, tasks(ev))
	}
	if j2 := jls(t, h)["www"]; j2.JID == j.JID || j2.Hostname != "www2.example.test" {
		t.Errorf("after the restart: %+v, before %+v", j2, j)
	}
	converge("running again", rolePlan("running", "www2.example.test"), 0)

	// Check mode for stopped changes nothing.
	if s, ev := runPlan(t, h, rolePlan("stopped", "www2.example.test"), true); s.TasksChanged != 1 {
		t.Fatalf("check stopped: %+v%s", s, tasks(ev))
	}
	if _, ok := jls(t, h)["www"]; !ok {
		t.Fatal("check mode stopped the jail")
	}
	converge("stopped", rolePlan("stopped", "www2.example.test"), 1)
	if _, ok := jls(t, h)["www"]; ok {
		t.Error("still running after stopped")
	}
	if got := h.Must("sysrc -n jail_list; test -f /etc/jail.conf.d/www.conf && echo conf"); got != "\nconf\n" {
		t.Errorf("after stopped: %q", got)
	}

	converge("running from stopped", rolePlan("running", "www2.example.test"), 1)

	// Started at boot: after a reboot, rc starts it from jail_list.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	boot, err := h.BootID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.Exec(ctx, "shutdown -r now") // the container goes down with it
	if _, err := h.WaitBoot(ctx, boot); err != nil {
		t.Fatal(err)
	}
	if j, ok := jls(t, h)["www"]; !ok || j.Hostname != "www2.example.test" {
		t.Fatalf("after a reboot: jls %+v", jls(t, h))
	}
	converge("running after the reboot", rolePlan("running", "www2.example.test"), 0)
	converge("absent", rolePlan("absent", "www2.example.test"), 1)
	if _, ok := jls(t, h)["www"]; ok {
		t.Error("still running after absent")
	}
	if got := h.Must("sysrc -n jail_list; test -e /etc/jail.conf.d/www.conf && echo conf; test -d /jails/www/usr && echo root"); got != "\nroot\n" {
		t.Errorf("after absent (config and list gone, root kept): %q", got)
	}

	// Two jails in one role: both facts come from one jls and one sysrc,
	// so the rerun is still one exchange.
	h.Jail("db", "zroot/jails/templates/base@v1")
	h.Jail("cache", "zroot/jails/templates/base@v1")
	converge("two jails", twoJails, 2)
	if got := h.Must("sysrc -n jail_list; jls name | sort"); got != "db cache\ncache\ndb\n" {
		t.Errorf("two jails: %q", got)
	}
}

// record writes testdata/facts/jail/standin-running.json from the running
// host: the fact's script, its output, and what the parser makes of it.
func record(t *testing.T, h *standintest.Host) {
	f, _ := modules.LookupFact(jail.FactName)
	keys := []string{"www", "db"}
	script := f.Script(keys)
	out := h.Must(script)
	vals, err := f.Parse([]byte(out), keys)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := json.Marshal(vals)
	b, _ := json.MarshalIndent(map[string]any{"keys": keys, "command": script, "output": out, "fact": json.RawMessage(parsed),
		"source": "Captured from the lab's stand-in FreeBSD host (lab/standin) by TestLiveStates with ORCH_RECORD_STANDIN=1, www running from /etc/jail.conf.d/www.conf."}, "", "  ")
	if err := os.WriteFile(filepath.Join("testdata", "facts", "jail", "standin-running.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
