package haproxy

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
	log          *proctest.Output
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
		exited: make(chan struct{}), log: new(proctest.Output)}
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
