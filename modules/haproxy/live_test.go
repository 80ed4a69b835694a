package haproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
	"github.com/orch-dev/orch/testkit/require"
)

// lb is a real HAProxy in master-worker mode, started by a test, with an
// admin socket and a master CLI in the test's directory and a frontend on
// a loopback port.
type lb struct {
	t            *testing.T
	dir, cfg     string
	sock, master string
	front        string // 127.0.0.1:PORT of the frontend
	cmd          *exec.Cmd
	exited       chan struct{}
	log          *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func needHAProxy(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"haproxy", "socat"} {
		if _, err := exec.LookPath(tool); err != nil {
			require.Missingf(t, "%s is not installed (apt-get install haproxy socat)", tool)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// backend is an HTTP server on loopback that answers with its name; /slow
// answers after a second.
func backend(t *testing.T, name string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(time.Second)
		}
		io.WriteString(w, name)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// startLB writes a config with the given backend section body (server
// lines and options of backend "app") and starts HAProxy on it.
func startLB(t *testing.T, backendBody string) *lb {
	t.Helper()
	needHAProxy(t)
	dir := t.TempDir()
	h := &lb{t: t, dir: dir, cfg: filepath.Join(dir, "haproxy.cfg"), sock: filepath.Join(dir, "admin.sock"),
		master: filepath.Join(dir, "master.sock"), front: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		exited: make(chan struct{}), log: new(syncBuffer)}
	conf := fmt.Sprintf(`global
    stats socket %s mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    retries 3
    option redispatch

frontend fe
    bind %s
    default_backend app

backend app
%s
`, h.sock, h.front, backendBody)
	if err := os.WriteFile(h.cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	h.cmd = exec.Command("haproxy", "-W", "-db", "-S", h.master, "-f", h.cfg)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.cmd.Wait(); close(h.exited) }()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-h.exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if out, err := h.cli("show info"); err == nil && strings.Contains(out, "Pid:") {
			return h
		}
		select {
		case <-h.exited:
			t.Fatalf("haproxy exited:\n%s", h.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not answer on %s:\n%s", h.sock, h.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cli sends one command line to a socket (the admin socket by default).
func (h *lb) cliOn(sock, cmd string) (string, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func (h *lb) cli(cmd string) (string, error) { return h.cliOn(h.sock, cmd) }

// servers lists "backend/server state" of the runtime, sorted.
func (h *lb) servers() string {
	h.t.Helper()
	out, err := h.cli("show servers state")
	if err != nil {
		h.t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 8 || strings.HasPrefix(l, "#") {
			continue
		}
		st := ServerState{}
		fmt.Sscan(f[6], &st.Admin)
		lines = append(lines, fmt.Sprintf("%s/%s %s:%s %s w%s", f[1], f[3], f[4], f[18], st.AdminState(), f[7]))
	}
	return strings.Join(lines, "\n")
}

// reload reloads through the master CLI and waits for the new worker.
func (h *lb) reload() {
	h.t.Helper()
	pid := func() string {
		out, _ := h.cli("show info")
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, "Pid: "); ok {
				return v
			}
		}
		return ""
	}
	old := pid()
	if _, err := h.cliOn(h.master, "reload"); err != nil {
		h.t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); pid() == old || pid() == ""; {
		if time.Now().After(deadline) {
			h.t.Fatalf("no new worker after reload:\n%s", h.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clientLoop sends GETs through the frontend, each on a new connection,
// until stopped, and counts failures and who answered.
type clientLoop struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	seen         map[string]int
	lastErr      string
	stop         chan struct{}
	done         chan struct{}
}

func startClients(t *testing.T, url string, workers int) *clientLoop {
	t.Helper()
	c := &clientLoop{seen: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	tr := &http.Transport{DisableKeepAlives: true}
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-c.stop:
					return
				default:
				}
				c.sent.Add(1)
				resp, err := cl.Get(url)
				if err == nil {
					var body []byte
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
					}
					if err == nil {
						c.mu.Lock()
						c.seen[string(body)]++
						c.mu.Unlock()
					}
				}
				if err != nil {
					c.failed.Add(1)
					c.mu.Lock()
					c.lastErr = err.Error()
					c.mu.Unlock()
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	go func() { wg.Wait(); close(c.done) }()
	t.Cleanup(c.halt)
	return c
}

func (c *clientLoop) halt() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// waitSent waits until the loop has sent at least n more requests: a
// progress wait (bounded), not a timed assertion.
func (c *clientLoop) waitSent(t *testing.T, n int64) {
	t.Helper()
	want := c.sent.Load() + n
	for deadline := time.Now().Add(30 * time.Second); c.sent.Load() < want; {
		if time.Now().After(deadline) {
			t.Fatalf("the client loop sent %d requests, want %d", c.sent.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runPlan runs a plan (main calling ctx.apply on the local host) through
// the engine and returns its summary.
func runPlan(t *testing.T, src string, check bool) (engine.Summary, []engine.Event) {
	t.Helper()
	s, events, err := run(t, src, check)
	if err != nil {
		t.Fatalf("run: %v\nevents: %s", err, taskEvents(events))
	}
	return s, events
}

// runPlanErr runs a plan that may fail and returns its error.
func runPlanErr(t *testing.T, src string) (engine.Summary, error) {
	t.Helper()
	s, _, err := run(t, src, false)
	return s, err
}

func run(t *testing.T, src string, check bool) (engine.Summary, []engine.Event, error) {
	t.Helper()
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.star")
	if err := os.WriteFile(planFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: "local", Address: "localhost", Connection: "local"}); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Load(planFile)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	var events []engine.Event
	rep, err := engine.Run(context.Background(), p, inv, engine.Options{Check: check, Diff: true, StateDir: dir, OnEvent: func(e engine.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}})
	return rep.Summary, events, err
}

func taskEvents(events []engine.Event) string {
	var b strings.Builder
	for _, e := range events {
		if e.Event == "task" {
			fmt.Fprintf(&b, "\n  %s %s: %s %s", e.Task, e.Status, e.Msg, strings.TrimSpace(e.Output))
		}
	}
	return b.String()
}
