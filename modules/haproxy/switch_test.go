package haproxy

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/orch-dev/orch/modules/file"
	"github.com/orch-dev/orch/testkit/localrun"
	"github.com/orch-dev/orch/testkit/traffic"
)

// switchPlan moves backend app from one server to another: the new one
// added and ready, the old one deleted (maint, wait, del), both kept in
// the config file.
func switchPlan(h *lb, add, addr, remove string) string {
	return fmt.Sprintf(`
def role(h):
    haproxy.server(backend = "app", name = %q, address = %q, socket = %q, config = %q, master = %q, check = True)
    haproxy.server(backend = "app", name = %q, state = "absent", socket = %q, config = %q, master = %q, drain_timeout = "5s")

def main(ctx):
    ctx.apply("all", role)
`, add, addr, h.sock, h.cfg, h.master, remove, h.sock, h.cfg, h.master)
}

// TestBlueGreenSwitch switches a live backend from blue to green under a
// concurrent client loop: no request fails, green answers afterwards, the
// config file says what the runtime has, a rerun changes nothing in one
// exchange, and check mode changed nothing before.
func TestBlueGreenSwitch(t *testing.T) {
	blue, green := backend(t, "blue"), backend(t, "green")
	h := startLB(t, "    balance roundrobin\n    server blue "+blue+"\n")
	clients := traffic.Start(t, 4, func() (string, error) { return traffic.HTTPGet("http://" + h.front + "/") })
	clients.WaitSent(t, 50)
	src := switchPlan(h, "green", green, "blue")

	before, _ := os.ReadFile(h.cfg)
	s, events := localrun.MustRun(t, src, true)
	if s.TasksChanged != 2 || s.Exchanges != 1 {
		t.Fatalf("check run: %+v; want 2 tasks that would change, in 1 exchange", s)
	}
	var diffs string
	for _, e := range events {
		diffs += e.Diff
	}
	for _, want := range []string{"-absent\n+" + green + " weight 1 (ready)\n", "+    server green " + green + " check\n",
		"-" + blue + " weight 1 (ready)\n+absent\n", "-    server blue " + blue + "\n"} {
		if !strings.Contains(diffs, want) {
			t.Errorf("--diff of the check run lacks %q:\n%s", want, diffs)
		}
	}
	if after, _ := os.ReadFile(h.cfg); string(after) != string(before) || h.servers() != "app/blue "+blue+" ready w1" {
		t.Fatalf("check mode changed something:\n%s\n%s", after, h.servers())
	}

	s, events = localrun.MustRun(t, src, false)
	if s.TasksChanged != 2 || s.Exchanges != 2 || s.Failed != 0 {
		t.Fatalf("switch: %+v; want 2 changed tasks in 2 exchanges%s", s, localrun.Tasks(events))
	}
	clients.WaitSent(t, 50)
	clients.Stop()
	if n := clients.Failed(); n != 0 {
		t.Fatalf("%d of %d requests failed during the switch; last: %s", n, clients.Sent(), clients.LastError())
	}
	if got := h.servers(); got != "app/green "+green+" ready w1" {
		t.Fatalf("runtime after the switch:\n%s", got)
	}
	cfg, _ := os.ReadFile(h.cfg)
	if !strings.Contains(string(cfg), "    server green "+green+" check\n") || strings.Contains(string(cfg), "server blue") {
		t.Fatalf("config after the switch:\n%s", cfg)
	}
	t.Logf("%d requests, 0 failed, answered by %v", clients.Sent(), clients.Seen())
	if clients.Count("green") == 0 || clients.Count("blue") == 0 {
		t.Fatalf("want answers from blue, then green: %v", clients.Seen())
	}

	if s, events := localrun.MustRun(t, src, false); s.TasksChanged != 0 || s.Exchanges != 1 {
		t.Fatalf("rerun: %+v; want nothing changed, in 1 exchange%s", s, localrun.Tasks(events))
	}
}

// TestDeleteWaitsForRequestsInFlight deletes a server while a slow request
// is in flight on it: the request completes, because the server goes to
// maintenance first and del server is retried until its connection ends.
func TestDeleteWaitsForRequestsInFlight(t *testing.T) {
	blue, green := backend(t, "blue"), backend(t, "green")
	h := startLB(t, "    balance first\n    server blue "+blue+"\n    server green "+green+"\n")
	slow := make(chan error, 1)
	go func() {
		resp, err := traffic.HTTPGet("http://" + h.front + "/slow")
		if err == nil && resp != "blue" {
			err = fmt.Errorf("answered by %q, want blue", resp)
		}
		slow <- err
	}()
	// Wait until HAProxy has the request on blue.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		out, _ := h.cli("show servers conn app")
		if strings.Contains(out, "app/blue") && !strings.Contains(h.sessions("blue"), " 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow request never reached blue: %s", out)
		}
	}
	src := fmt.Sprintf(`
def role(h):
    haproxy.server(backend = "app", name = "blue", state = "absent", socket = %q, drain_timeout = "10s")

def main(ctx):
    ctx.apply("all", role)
`, h.sock)
	if s, events := localrun.MustRun(t, src, false); s.TasksChanged != 1 {
		t.Fatalf("delete: %+v%s", s, localrun.Tasks(events))
	}
	if err := <-slow; err != nil {
		t.Fatalf("the request in flight on the deleted server failed: %v", err)
	}
	if got := h.servers(); got != "app/green "+green+" ready w1" {
		t.Fatalf("runtime after the delete:\n%s", got)
	}
}

// sessions is the server's "scur" (current sessions) from show stat.
func (h *lb) sessions(server string) string {
	out, _ := h.cli("show stat app 4 -1")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, ",")
		if len(f) > 4 && f[1] == server {
			return "scur " + f[4]
		}
	}
	return "scur ?"
}
