package nginx

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

// server is a real nginx started by a test from files in its directory.
type server struct {
	t      *testing.T
	dir    string
	conf   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
}

// startNginx writes files (relative to a fresh directory; "DIR" in their
// content stands for it) and runs nginx in the foreground on DIR/nginx.conf.
func startNginx(t *testing.T, files map[string]string) *server {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		require.Missing(t, "nginx is not installed (apt-get install nginx)")
	}
	if os.Geteuid() != 0 {
		require.Missing(t, "nginx tests run as root (nginx -t reads what the master would)")
	}
	s := &server{t: t, dir: t.TempDir(), exited: make(chan struct{}), log: new(syncBuffer)}
	os.Chmod(s.dir, 0o755)
	s.conf = filepath.Join(s.dir, "nginx.conf")
	for name, content := range files {
		p := filepath.Join(s.dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "DIR", s.dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.cmd = exec.Command("nginx", "-c", s.conf, "-g", "daemon off;")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(os.Interrupt) // SIGINT: fast shutdown of master and workers
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(s.dir, "nginx.pid")); err == nil && len(b) > 0 {
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("nginx exited:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx wrote no pid file:\n%s", s.log.String())
		}
	}
}

func (s *server) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, name))
	return string(b)
}

// leftovers lists the temporary files a run left in the directory tree.
func (s *server) leftovers() []string {
	var out []string
	filepath.Walk(s.dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(info.Name(), ".orch") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// httpBackend answers every request with its name.
func httpBackend(t *testing.T, name string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// loop runs try concurrently until stopped and counts failures and answers.
type loop struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	seen         map[string]int
	lastErr      string
	stop, done   chan struct{}
}

func startLoop(t *testing.T, workers int, try func() (string, error)) *loop {
	l := &loop{seen: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.sent.Add(1)
				got, err := try()
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					l.lastErr = err.Error()
				} else {
					l.seen[got]++
				}
				l.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	t.Cleanup(l.halt)
	return l
}

func (l *loop) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func (l *loop) count(answer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[answer]
}

// waitFor waits (bounded) until cond holds: progress, not a timed assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func httpGet(url string) (string, error) {
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

// runPlan runs src through the engine on the local host.
func runPlan(t *testing.T, src string, check bool) (engine.Summary, []engine.Event, error) {
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

func mustRun(t *testing.T, src string, check bool) (engine.Summary, []engine.Event) {
	t.Helper()
	s, events, err := runPlan(t, src, check)
	if err != nil {
		t.Fatalf("run: %v%s", err, taskEvents(events))
	}
	return s, events
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
