package haproxy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/testkit/moduletest"
)

func ptr[T any](v T) *T { return &v }

// TestParseRuntime reads the answer of HAProxy 2.6.12 to "show
// backend;show servers state" (testdata, captured from the real one).
func TestParseRuntime(t *testing.T) {
	answer, err := os.ReadFile("testdata/show-backend-servers-state.txt")
	if err != nil {
		t.Fatal(err)
	}
	out := "#rt /run/a.sock\n" + string(answer) + "#rc 0\n#rt /run/b.sock\n#absent\n"
	keys := []string{"rt:/run/a.sock#be/b", "rt:/run/a.sock", "rt:/run/b.sock#be/x"}
	vals, err := fact{}.Parse([]byte(out), keys)
	if err != nil {
		t.Fatal(err)
	}
	rt := vals["rt:/run/a.sock#be/b"].(*Runtime)
	if !rt.Answered || len(rt.Backends) != 2 || len(rt.Backends["st"]) != 0 {
		t.Fatalf("runtime %+v", rt)
	}
	b, c := rt.Backends["be"]["b"], rt.Backends["be"]["c"]
	if b.Address() != "127.0.0.1:18982" || b.AdminState() != "maint" || b.Weight != 5 || b.Op != 0 {
		t.Errorf("server b: %+v (%s)", b, b.AdminState())
	}
	if c.Address() != "[::1]:8080" || c.AdminState() != "drain" || rt.Backends["be"]["a"].AdminState() != "ready" {
		t.Errorf("server c: %+v (%s)", c, c.AdminState())
	}
	if whole := vals["rt:/run/a.sock"].(map[string]any); whole["running"] != true || len(whole["backends"].(map[string]any)) != 2 {
		t.Errorf("plan value of the socket: %v", whole)
	}
	if off := vals["rt:/run/b.sock#be/x"].(*Runtime); off.Answered || !strings.Contains(off.Problem, "no socket at /run/b.sock") {
		t.Errorf("absent socket: %+v", off)
	}
	v := rt.Value()["backends"].(map[string]any)["be"].(map[string]any)["c"].(map[string]any)
	if v["address"] != "[::1]:8080" || v["state"] != "drain" || v["weight"] != 2 || v["up"] != true {
		t.Errorf("plan value of c: %v", v)
	}
}

const sampleConfig = `global
    stats socket /run/haproxy/admin.sock level admin
defaults
    balance leastconn # comment
    mode http

frontend fe
    bind :80
    default_backend app

backend app
    server blue 10.0.0.1:80 weight 2 maxconn 100 # old
    server  grey   10.0.0.3:80   disabled

    # trailing comment

listen stats
    bind :8404
backend hashed
    balance source
    hash-type consistent
defaults
    balance source
backend mapped
    server x 10.0.0.9:80
`

// sh runs the helpers and a command with /bin/sh.
func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", helpers+applyHelpers+script).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return string(out)
}

func TestConfigFact(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	os.WriteFile(cfg, []byte(sampleConfig), 0o644)
	keys := []string{"cfg:" + cfg + "#app/blue", "cfg:" + cfg + "#app/green", "cfg:" + cfg + "#nope/x",
		"cfg:" + cfg + "#hashed/a", "cfg:" + cfg + "#mapped/x", "cfg:" + cfg + "#stats/a", "cfg:/nonexistent#a/b"}
	out := sh(t, fact{}.Script(keys))
	vals, err := fact{}.Parse([]byte(out), keys)
	if err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	want := map[string]ConfigLine{
		keys[0]: {Config: cfg, Exists: true, BackendExists: true, Dynamic: true, Words: "10.0.0.1:80 weight 2 maxconn 100"},
		keys[1]: {Config: cfg, Exists: true, BackendExists: true, Dynamic: true},
		keys[2]: {Config: cfg, Exists: true},
		keys[3]: {Config: cfg, Exists: true, BackendExists: true, Dynamic: true},
		keys[4]: {Config: cfg, Exists: true, BackendExists: true, Dynamic: false, Words: "10.0.0.9:80"},
		keys[5]: {Config: cfg, Exists: true, BackendExists: true, Dynamic: true},
		keys[6]: {Config: "/nonexistent"},
	}
	for k, w := range want {
		if got := vals[k]; got != w {
			t.Errorf("%s: %+v, want %+v", k, got, w)
		}
	}
	// The recheck holds while the line is as read, and not after a change.
	for _, k := range keys[:2] {
		cond := fact{}.Recheck(k, vals[k])
		if exec.Command("/bin/sh", "-c", cond).Run() != nil {
			t.Errorf("recheck of %s fails on an unchanged file: %s", k, cond)
		}
	}
	os.WriteFile(cfg, []byte(strings.Replace(sampleConfig, "weight 2", "weight 3", 1)), 0o644)
	if exec.Command("/bin/sh", "-c", fact{}.Recheck(keys[0], vals[keys[0]])).Run() == nil {
		t.Error("recheck holds after the line changed")
	}
}

func TestConfigEdit(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	os.WriteFile(cfg, []byte(sampleConfig), 0o644)
	edit := func(backend, server, line string) string {
		return sh(t, "_orch_hapedit "+modules.Quote(cfg)+" "+backend+" "+server+" "+modules.Quote(line))
	}
	replaced := edit("app", "blue", "server blue 10.0.0.2:80 weight 2 maxconn 100")
	if !strings.Contains(replaced, "\n    server blue 10.0.0.2:80 weight 2 maxconn 100\n    server  grey") || strings.Contains(replaced, "10.0.0.1") {
		t.Errorf("replace:\n%s", replaced)
	}
	added := edit("app", "green", "server green 10.0.0.4:80")
	if !strings.Contains(added, "   disabled\n    server green 10.0.0.4:80\n\n    # trailing comment\n\nlisten stats") {
		t.Errorf("add at the end of the section, before its trailing blank lines:\n%s", added)
	}
	if removed := edit("app", "grey", ""); strings.Contains(removed, "grey") || !strings.Contains(removed, "server blue 10.0.0.1:80") {
		t.Errorf("remove:\n%s", removed)
	}
	if last := edit("mapped", "y", "server y 10.0.0.10:80"); !strings.HasSuffix(last, "    server x 10.0.0.9:80\n    server y 10.0.0.10:80\n") {
		t.Errorf("add to the last section:\n%s", last)
	}
	if same := edit("nope", "x", "server x 1.2.3.4:5"); same != sampleConfig {
		t.Errorf("a missing backend changed the file:\n%s", same)
	}
}

func TestConfigWords(t *testing.T) {
	for _, c := range []struct {
		s    Server
		cur  string
		want string
	}{
		{Server{Address: ptr("10.0.0.2:80"), State: "ready"}, "10.0.0.1:80 weight 2 maxconn 100 disabled", "10.0.0.2:80 weight 2 maxconn 100"},
		{Server{State: "maint", Weight: ptr(0)}, "10.0.0.1:80 weight 2 check", "10.0.0.1:80 check weight 0 disabled"},
		{Server{Address: ptr("[::1]:80"), State: "drain", HealthCheck: true}, "", "[::1]:80 check"},
		{Server{State: "absent"}, "10.0.0.1:80", ""},
	} {
		if c.s.Address != nil {
			c.s.Backend, c.s.Name, c.s.Socket, c.s.Master, c.s.DrainTimeout = "b", "s", "/s", "/m", 1
			if err := c.s.Validate(nil); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := c.s.configWords(c.cur, nil); err != nil || got != c.want {
			t.Errorf("%+v on %q: %q, %v; want %q", c.s, c.cur, got, err, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	base := func() *Server {
		return &Server{Backend: "app", Name: "green", State: "ready", Socket: "/run/haproxy/admin.sock", Master: "/run/haproxy-master.sock", DrainTimeout: 1}
	}
	for _, c := range []struct {
		mod  func(*Server)
		want string
	}{
		{func(s *Server) { s.Name = "green;shutdown sessions server app/blue" }, `name "green;shutdown`},
		{func(s *Server) { s.Backend = "app x" }, `backend "app x"`},
		{func(s *Server) { s.State = "up" }, `state "up"`},
		{func(s *Server) { s.Address = ptr("green.example:80") }, "resolves no names"},
		{func(s *Server) { s.Address = ptr("10.0.0.1") }, "is not IP:PORT"},
		{func(s *Server) { s.Weight = ptr(300) }, "weight 300"},
		{func(s *Server) { s.Socket = "/run/a,b.sock" }, "socket"},
		{func(s *Server) { s.Config = "etc/haproxy.cfg" }, "config"},
	} {
		s := base()
		c.mod(s)
		if err := s.Validate(nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", s, err, c.want)
		}
	}
	if err := base().Validate(nil); err != nil {
		t.Errorf("valid: %v", err)
	}
}

// TestApplyTwice proves the module contract with testkit/moduletest on a
// live HAProxy: the first converge changes, the second finds nothing to
// do, for an added server and a deleted one.
func TestApplyTwice(t *testing.T) {
	blue, green := backend(t, "blue"), backend(t, "green")
	h := startLB(t, "    balance roundrobin\n    server blue "+blue+"\n")
	add := &Server{Backend: "app", Name: "green", Address: ptr(green), State: "drain", Weight: ptr(4), Socket: h.sock, Config: h.cfg, Master: h.master, DrainTimeout: time.Second}
	moduletest.Validate(t, add, nil)
	moduletest.ApplyTwice(t, add)
	del := &Server{Backend: "app", Name: "blue", State: "absent", Socket: h.sock, Config: h.cfg, Master: h.master, DrainTimeout: time.Second}
	moduletest.Validate(t, del, nil)
	moduletest.ApplyTwice(t, del)
	if got := h.servers(); got != "app/green "+green+" drain w4" {
		t.Fatalf("runtime: %s", got)
	}
	if resp := moduletest.Check(t, add, true); resp.Changed || resp.Reason != "server app/green is "+green+" weight 4 (drain), as wanted" {
		t.Fatalf("no-change check: %+v", resp)
	}
}
