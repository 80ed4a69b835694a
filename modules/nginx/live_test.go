package nginx

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/testkit/proctest"
	"github.com/orch-dev/orch/testkit/require"
)

// server is a real nginx started by a test from files in its directory.
type server struct {
	t      *testing.T
	dir    string
	conf   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *proctest.Output
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
	s := &server{t: t, dir: t.TempDir(), exited: make(chan struct{}), log: new(proctest.Output)}
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
