package plans_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/plan"
	"github.com/orch-dev/orch/testkit/require"
	"github.com/orch-dev/orch/testkit/traffic"
)

// prefix names every docker object of this test process.
var prefix = fmt.Sprintf("orch-labtest-%d", os.Getpid())

func TestMain(m *testing.M) {
	code := m.Run()
	if ids, err := exec.Command("docker", "ps", "-aq", "--filter", "name=^"+prefix).Output(); err == nil && len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, strings.Fields(string(ids))...)...).Run()
	}
	if refs, err := exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference="+prefix+"-*").Output(); err == nil && len(refs) > 0 {
		exec.Command("docker", append([]string{"rmi", "-f"}, strings.Fields(string(refs))...)...).Run()
	}
	os.Exit(code)
}

func need(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"docker", "haproxy", "socat", "busybox", "ldd"} {
		if _, err := exec.LookPath(tool); err != nil {
			require.Missingf(t, "%s is not installed", tool)
		}
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		require.Missingf(t, "no Docker engine answers: %v", err)
	}
}

// importImage makes an image of a root file system with docker import (no
// registry): files maps paths in the image to their content or, with a
// leading "@", to a host file to copy.
func importImage(t *testing.T, ref string, files map[string]string, changes ...string) {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		dst := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		var data []byte
		mode := os.FileMode(0o644)
		if src, ok := strings.CutPrefix(content, "@"); ok {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			data, mode = b, 0o755
		} else if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, dst); err != nil {
				t.Fatal(err)
			}
			continue
		} else {
			data = []byte(content)
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "-c", c)
	}
	tar := exec.Command("tar", "-C", root, "-c", ".")
	imp := exec.Command("docker", append(args, "-", ref)...)
	pipe, _ := tar.StdoutPipe()
	imp.Stdin = pipe
	var errb bytes.Buffer
	imp.Stderr = &errb
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := imp.Run(); err != nil {
		t.Fatalf("docker import %s: %v: %s", ref, err, errb.String())
	}
	tar.Wait()
}

// haproxyImage is this machine's haproxy with the libraries ldd names.
func haproxyImage(t *testing.T) string {
	t.Helper()
	ref := prefix + "-haproxy:test"
	bin, _ := exec.LookPath("haproxy")
	bin, _ = filepath.EvalSymlinks(bin)
	files := map[string]string{"/usr/sbin/haproxy": "@" + bin, "/etc/passwd": "root:x:0:0::/:/bin/false\n", "/etc/group": "root:x:0:\n"}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				real, err := filepath.EvalSymlinks(f)
				if err != nil {
					t.Fatal(err)
				}
				files[f] = "@" + real
			}
		}
	}
	importImage(t, ref, files, "ENV PATH=/usr/sbin:/bin")
	return ref
}

// appImages are busybox httpd images whose page is their version.
func appImages(t *testing.T, versions ...string) string {
	t.Helper()
	repo := prefix + "-app"
	bb, _ := exec.LookPath("busybox")
	for _, v := range versions {
		importImage(t, repo+":"+v, map[string]string{"/bin/busybox": "@" + bb, "/bin/httpd": "->busybox", "/bin/sh": "->busybox", "/www/index.html": v},
			`CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]`)
	}
	return repo
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// consecutiveFree finds three consecutive free ports for the stack slots.
func consecutiveFree(t *testing.T) int {
	t.Helper()
	for base := 20000 + os.Getpid()%10000; base < 60000; base += 3 {
		ok := true
		for i := range 3 {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no three consecutive free ports")
	return 0
}

type stacksRun struct {
	t    *testing.T
	args map[string]string
	inv  *inventory.Inventory
	dir  string
}

type outcome struct {
	rep     *engine.Report
	err     error
	printed []string
}

func (s *stacksRun) run(action, version string, check bool) outcome {
	s.t.Helper()
	args := map[string]string{"action": action, "version": version}
	for k, v := range s.args {
		args[k] = v
	}
	p, err := plan.Load("stacks.star")
	if err != nil {
		s.t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	var o outcome
	var tasks []string
	rep, err := engine.Run(context.Background(), p, s.inv, engine.Options{Args: args, Check: check, StateDir: s.dir, OnEvent: func(e engine.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Event {
		case "print":
			o.printed = append(o.printed, e.Msg)
		case "task":
			tasks = append(tasks, fmt.Sprintf("%s %s: %s %s", e.Task, e.Status, e.Msg, strings.TrimSpace(e.Output)))
		}
	}})
	o.rep, o.err = rep, err
	if err != nil && rep.Touched {
		s.t.Logf("%s %s: tasks:\n  %s", action, version, strings.Join(tasks, "\n  "))
	}
	return o
}

// ok runs an action that must succeed and returns what the plan printed.
func (s *stacksRun) ok(action, version string) outcome {
	s.t.Helper()
	o := s.run(action, version, false)
	if o.err != nil {
		s.t.Fatalf("%s %s: %v", action, version, o.err)
	}
	return o
}

// refused runs an action the states forbid: it fails before anything
// changes (exit 2) with a reason containing want.
func (s *stacksRun) refused(action, version, want string) {
	s.t.Helper()
	o := s.run(action, version, false)
	if o.err == nil || o.rep.Touched || !strings.Contains(o.err.Error(), want) {
		s.t.Fatalf("%s %s: err %v (touched %v); want a refusal before anything changed, saying %q", action, version, o.err, o.rep.Touched, want)
	}
}

func last(printed []string, prefix string) string {
	for i := len(printed) - 1; i >= 0; i-- {
		if strings.HasPrefix(printed[i], prefix) {
			return printed[i]
		}
	}
	return ""
}

// get asks url once and says what came back, errors included.
func get(url string) string {
	body, err := traffic.HTTPGet(url)
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(body)
}

func guardOf(rep *engine.Report) string {
	b, _ := json.Marshal(rep.Summary.Guards)
	return string(b)
}

// TestStacksLifeCycle runs the seed's life cycle on this machine's Docker
// engine: release v1, activate v1, release v2, activate v2 (v1 becomes
// inactive), deactivate v1, with production asked all along from activate
// v1 on: no request fails, by the test's count and by the plan's guard.
// Actions the states forbid are refused before anything changes, and an
// action run again changes nothing.
func TestStacksLifeCycle(t *testing.T) {
	need(t)
	if os.Geteuid() != 0 {
		require.Missing(t, "the stacks test runs as root (the admin socket of the containerized HAProxy is root's)")
	}
	hap := haproxyImage(t)
	repo := appImages(t, "v1", "v2")
	ports := freePorts(t, 2)
	prod, internal := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: "docker", Address: "localhost", Connection: "local"}); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	s := &stacksRun{t: t, inv: inv, dir: t.TempDir(), args: map[string]string{
		"app": prefix + "-stacks", "image": repo, "haproxy_image": hap, "production": prod, "internal": internal,
		"state_dir": stateDir, "slot_port": strconv.Itoa(consecutiveFree(t)),
	}}
	state := func(o outcome) string { return last(o.printed, "docker: stacks of") }

	s.refused("promote", "v1", "-e action=promote: want one of release, activate, deactivate")
	s.refused("release", "", "-e version=… is required")
	if o := s.run("release", "v1", true); o.err != nil || o.rep.Summary.TasksChanged == 0 {
		t.Fatalf("check run of the first release: %v %+v", o.err, o.rep.Summary)
	}
	if out, _ := exec.Command("docker", "ps", "-aq", "--filter", "name=^"+prefix+"-stacks").Output(); len(out) != 0 {
		t.Fatalf("check mode created containers: %s", out)
	}

	o := s.ok("release", "v1")
	if got := state(o); !strings.HasSuffix(got, "release=v1 active=- inactive=-") {
		t.Fatalf("after release v1: %q", got)
	}
	if got := get("http://" + internal + "/"); got != "v1" {
		t.Fatalf("internal frontend after release v1: %q", got)
	}
	if got := get("http://" + prod + "/"); !strings.HasPrefix(got, "status 503") {
		t.Fatalf("production before any activation: %q", got)
	}
	s.refused("activate", "v2", "cannot activate v2: it is deactivated")

	o = s.ok("activate", "v1")
	if got := state(o); !strings.HasSuffix(got, "release=- active=v1 inactive=-") {
		t.Fatalf("after activate v1: %q", got)
	}
	loop := traffic.Start(t, 3, func() (string, error) {
		body, err := traffic.HTTPGet("http://" + prod + "/")
		return strings.TrimSpace(body), err
	})
	traffic.WaitFor(t, "production answers v1", func() bool { return loop.Count("v1") > 20 })

	o = s.ok("release", "v2")
	if got := state(o); !strings.HasSuffix(got, "release=v2 active=v1 inactive=-") || get("http://"+internal+"/") != "v2" {
		t.Fatalf("after release v2: %q, internal %q", got, get("http://"+internal+"/"))
	}
	s.refused("release", "v3", "cannot release v3: v2 is the release stack already")
	s.refused("release", "v1", "cannot release v1: it is active")
	if g := guardOf(o.rep); !strings.Contains(g, `"name":"production"`) || !strings.Contains(g, `"failed":0`) {
		t.Fatalf("release v2: guard %s", g)
	}

	o = s.ok("activate", "v2")
	if got := state(o); !strings.HasSuffix(got, "release=- active=v2 inactive=v1") {
		t.Fatalf("after activate v2: %q", got)
	}
	traffic.WaitFor(t, "production answers v2", func() bool { return loop.Count("v2") > 20 })
	if g := guardOf(o.rep); !strings.Contains(g, `"failed":0`) || strings.Contains(g, `"probes":0,`) {
		t.Fatalf("activate v2: guard %s", g)
	}
	t.Logf("activate v2: %s", last(o.printed, "production answered"))
	if again := s.ok("activate", "v2"); again.rep.Summary.TasksChanged != 0 {
		t.Fatalf("activate v2 again: %+v", again.rep.Summary)
	}
	s.refused("activate", "v1", "cannot activate v1: it is inactive")

	o = s.ok("deactivate", "v1")
	if got := state(o); !strings.HasSuffix(got, "release=- active=v2 inactive=-") {
		t.Fatalf("after deactivate v1: %q", got)
	}
	if out, _ := exec.Command("docker", "ps", "-aq", "--filter", "name=^"+prefix+"-stacks-v1$").Output(); len(out) != 0 {
		t.Fatalf("v1's container is still there: %s", out)
	}
	loop.WaitSent(t, 50)
	loop.Stop()
	t.Logf("production: %d requests, %d failed, answered by %v", loop.Sent(), loop.Failed(), loop.Seen())
	if f := loop.Failed(); f != 0 {
		t.Fatalf("%d of %d production requests failed; last: %s", f, loop.Sent(), loop.LastError())
	}

	// The state is HAProxy's and its config's: a restarted HAProxy (a new
	// container from the same config) still has it.
	if out, err := exec.Command("docker", "restart", prefix+"-stacks-haproxy").CombinedOutput(); err != nil {
		t.Fatalf("docker restart: %v: %s", err, out)
	}
	// Wait for the restarted HAProxy to serve first: a plan run while it is
	// still starting finds no admin socket and rightly starts it again.
	traffic.WaitFor(t, "production answers after the restart", func() bool { return get("http://"+prod+"/") == "v2" })
	o = s.ok("deactivate", "v1")
	if got := state(o); !strings.HasSuffix(got, "release=- active=v2 inactive=-") || o.rep.Summary.TasksChanged != 0 {
		t.Fatalf("after a restart of HAProxy: %q, %+v", got, o.rep.Summary)
	}
}
