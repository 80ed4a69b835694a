package haproxy

import (
	"fmt"
	"github.com/orch-dev/orch/testkit/localrun"
	"github.com/orch-dev/orch/testkit/traffic"
	"os"
	"strings"
	"testing"
)

// TestRuntimeServerSurvivesReload adds a server at runtime with config=,
// then reloads HAProxy: the new worker has the server (from the config
// file), in the state and weight the runtime had, and a rerun after the
// reload changes nothing.
func TestRuntimeServerSurvivesReload(t *testing.T) {
	blue, green := backend(t, "blue"), backend(t, "green")
	h := startLB(t, "    balance roundrobin\n    server blue "+blue+"\n")
	src := fmt.Sprintf(`
def role(h):
    haproxy.server(backend = "app", name = "green", address = %q, weight = 3, socket = %q, config = %q)
    haproxy.server(backend = "app", name = "blue", state = "maint", socket = %q, config = %q)

def main(ctx):
    ctx.apply("all", role)
`, green, h.sock, h.cfg, h.sock, h.cfg)
	if s, events := localrun.MustRun(t, src, false); s.TasksChanged != 2 || s.Exchanges != 2 {
		t.Fatalf("first run: %+v%s", s, localrun.Tasks(events))
	}
	want := "app/blue " + blue + " maint w1\napp/green " + green + " ready w3"
	if got := h.servers(); got != want {
		t.Fatalf("runtime after the run:\n%s\nwant:\n%s", got, want)
	}
	h.reload()
	if got := h.servers(); got != want {
		t.Fatalf("runtime after a reload:\n%s\nwant:\n%s", got, want)
	}
	if s, events := localrun.MustRun(t, src, false); s.TasksChanged != 0 || s.Exchanges != 1 {
		t.Fatalf("rerun after the reload: %+v%s", s, localrun.Tasks(events))
	}
}

// TestStaticBackendAddsThroughAReload adds a server to a backend whose
// algorithm (static-rr) takes none at runtime: the config is written and
// checked, and HAProxy is reloaded once through its master CLI, with no
// request failing meanwhile.
func TestStaticBackendAddsThroughAReload(t *testing.T) {
	blue, green := backend(t, "blue"), backend(t, "green")
	h := startLB(t, "    balance static-rr\n    server blue "+blue+"\n")
	clients := traffic.Start(t, 4, func() (string, error) { return traffic.HTTPGet("http://" + h.front + "/") })
	clients.WaitSent(t, 50)
	src := fmt.Sprintf(`
def role(h):
    haproxy.server(backend = "app", name = "green", address = %q, socket = %q, config = %q, master = %q)

def main(ctx):
    ctx.apply("all", role)
`, green, h.sock, h.cfg, h.master)
	s, events := localrun.MustRun(t, src, false)
	// The task and its reload handler.
	if s.TasksChanged != 2 || s.Exchanges != 2 {
		t.Fatalf("run: %+v; want the task and the reload%s", s, localrun.Tasks(events))
	}
	if !strings.Contains(localrun.Tasks(events), "through a reload") {
		t.Errorf("events do not say the server came in through a reload:%s", localrun.Tasks(events))
	}
	clients.WaitSent(t, 100)
	clients.Stop()
	if n := clients.Failed(); n != 0 {
		t.Fatalf("%d of %d requests failed across the reload; last: %s", n, clients.Sent(), clients.LastError())
	}
	if got, want := h.servers(), "app/blue "+blue+" ready w1\napp/green "+green+" ready w1"; got != want {
		t.Fatalf("runtime after the reload:\n%s\nwant:\n%s", got, want)
	}
	if clients.Count("green") == 0 {
		t.Errorf("green never answered after the reload: %v", clients.Seen())
	}
	if s, _ := localrun.MustRun(t, src, false); s.TasksChanged != 0 || s.Exchanges != 1 {
		t.Fatalf("rerun: %+v", s)
	}
}

// TestRejectedConfigTouchesNothing runs against a config file that haproxy
// -c rejects: the task fails with HAProxy's message, the file is as it
// was, and the runtime never got the server.
func TestRejectedConfigTouchesNothing(t *testing.T) {
	blue, green := backend(t, "blue"), backend(t, "green")
	h := startLB(t, "    balance roundrobin\n    server blue "+blue+"\n")
	broken, _ := os.ReadFile(h.cfg)
	broken = append(broken, []byte("\nbackend other\n    bogus-keyword here\n")...)
	if err := os.WriteFile(h.cfg, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`
def role(h):
    haproxy.server(backend = "app", name = "green", address = %q, socket = %q, config = %q)

def main(ctx):
    ctx.apply("all", role)
`, green, h.sock, h.cfg)
	_, _, err := localrun.Run(t, src, false)
	if err == nil || !strings.Contains(err.Error(), "haproxy -c rejected the new "+h.cfg) || !strings.Contains(err.Error(), "bogus-keyword") {
		t.Fatalf("run error = %v; want haproxy -c's message", err)
	}
	if after, _ := os.ReadFile(h.cfg); string(after) != string(broken) {
		t.Fatalf("the config changed:\n%s", after)
	}
	if got := h.servers(); got != "app/blue "+blue+" ready w1" {
		t.Fatalf("runtime changed:\n%s", got)
	}
	entries, _ := os.ReadDir(h.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".orch.") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
