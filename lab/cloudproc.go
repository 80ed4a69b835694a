package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/orch-dev/orch/lab/cloud"
)

// The lab cloud runs in its own process so that it outlives `orch lab up`:
// Up starts this executable detached (Options.CloudCommand, by default
// `orch lab serve-cloud --state DIR`), which calls ServeCloud. ServeCloud
// records its pid and port in cloud.json; Up checks them and restarts a dead
// cloud, Down stops it. The cloud's own state (instances, droplets, actions,
// reserved IPs) lives in cloud-state.json, so a restarted cloud carries on
// where the last one stopped (see cloud.Open).

// cloudProcess is cloud.json.
type cloudProcess struct {
	PID       int    `json:"pid"`
	Port      int    `json:"port"`
	StartTime string `json:"start_time"` // from /proc/PID/stat, to tell a reused pid apart
}

// ServeCloud serves the lab cloud API for the lab in dir on 127.0.0.1
// until ctx is done. It is what the hidden `orch lab serve-cloud --state DIR`
// command runs; Up starts that command in the background.
func ServeCloud(ctx context.Context, dir string) error {
	l, err := Open(dir)
	if err != nil {
		return err
	}
	// Its log is a file in the lab state, not this process's output.
	if f, err := os.OpenFile(filepath.Join(l.dir, cloudLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		defer f.Close()
		var mu sync.Mutex
		l.logf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(f, "%s %s\n", time.Now().Format(time.RFC3339), fmt.Sprintf(format, args...))
		}
	}
	// Keep the port of an earlier cloud when it is free, so that an
	// environment taken from `orch lab env` stays valid across a restart.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", l.cloud.Port))
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return fmt.Errorf("lab cloud: %w", err)
		}
	}
	srv, err := cloud.Open(l.Machines(), cloud.Tokens{Linode: l.tokens.Linode, DigitalOcean: l.tokens.DigitalOcean},
		filepath.Join(l.dir, cloudStateFile), l.logf)
	if err != nil {
		ln.Close()
		return fmt.Errorf("lab cloud: %w", err)
	}
	defer srv.Close()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}

	me := cloudProcess{PID: os.Getpid(), Port: ln.Addr().(*net.TCPAddr).Port, StartTime: processStart(os.Getpid())}
	path := filepath.Join(l.dir, cloudFile)
	if err := writeJSON(path, me, 0o644); err != nil {
		ln.Close()
		return fmt.Errorf("lab cloud: %w", err)
	}
	defer func() {
		var cur cloudProcess
		if readJSON(path, &cur) == nil && cur.PID == me.PID {
			os.Remove(path)
		}
	}()

	l.logf("lab cloud: serving on %s (pid %d)", ln.Addr(), me.PID)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	// A lab whose state was deleted by hand has no one left to stop its
	// cloud; it stops itself.
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for running := true; running; {
		select {
		case err := <-errc:
			return fmt.Errorf("lab cloud: %w", err)
		case <-ctx.Done():
			running = false
		case <-tick.C:
			if _, err := os.Stat(filepath.Join(l.dir, stateFile)); err != nil {
				l.logf("lab cloud: %s is gone; stopping", filepath.Join(l.dir, stateFile))
				running = false
			}
		}
	}
	l.logf("lab cloud: stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	return nil
}

// ensureCloud starts the cloud process unless a healthy one runs.
func (l *Lab) ensureCloud(ctx context.Context, opts Options) error {
	path := filepath.Join(l.dir, cloudFile)
	var cp cloudProcess
	if readJSON(path, &cp) == nil {
		if l.cloudHealthy(ctx, cp) {
			l.cloud = cp
			return nil
		}
		l.logf("lab: the cloud (pid %d) is not answering; restarting it", cp.PID)
		if err := stopCloud(ctx, cp); err != nil {
			return err
		}
	}
	args := opts.CloudCommand
	if len(args) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		args = []string{exe, "lab", "serve-cloud", "--state", opts.Dir}
	}
	logFile, err := os.OpenFile(filepath.Join(l.dir, cloudLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// Not CommandContext: the cloud must outlive this call and this process.
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), opts.CloudEnv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // out of the terminal's process group: ^C on a later command must not end it
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the lab cloud: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reap it if it dies while we live

	deadline := time.After(15 * time.Second)
	for {
		if readJSON(path, &cp) == nil && cp.PID == cmd.Process.Pid && l.cloudHealthy(ctx, cp) {
			l.cloud = cp
			l.logf("lab: cloud API on %s (pid %d)", l.CloudURL(), cp.PID)
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the lab cloud exited at start; see %s:\n%s", filepath.Join(l.dir, cloudLog), tailFile(filepath.Join(l.dir, cloudLog), 10))
		case <-deadline:
			cmd.Process.Kill()
			return fmt.Errorf("the lab cloud did not start in 15s; see %s", filepath.Join(l.dir, cloudLog))
		case <-ctx.Done():
			cmd.Process.Kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cloudHealthy asks the cloud for the Linode instance list with the lab's
// token: only this lab's cloud answers 200.
func (l *Lab) cloudHealthy(ctx context.Context, cp cloudProcess) bool {
	if cp.Port == 0 || !processAlive(cp) {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/v4/linode/instances", cp.Port), nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+l.tokens.Linode)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stopCloud ends the cloud process: SIGTERM, then SIGKILL after 5s.
func stopCloud(ctx context.Context, cp cloudProcess) error {
	if !processAlive(cp) {
		return nil
	}
	syscall.Kill(cp.PID, syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(cp) {
		if time.Now().After(deadline) {
			syscall.Kill(cp.PID, syscall.SIGKILL)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// processAlive reports whether cp's process still runs: the pid exists,
// is no zombie, and started when the recorded one did.
func processAlive(cp cloudProcess) bool {
	if cp.PID <= 0 || syscall.Kill(cp.PID, 0) != nil {
		return false
	}
	start := processStart(cp.PID)
	return start == "" || cp.StartTime == "" || start == cp.StartTime
}

// processStart is a process's start time in clock ticks since boot, from
// /proc (Linux); "" where unknown. A zombie counts as gone.
func processStart(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name may hold spaces; fields resume after its ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 || f[0] == "Z" {
		return "gone"
	}
	if _, err := strconv.ParseUint(f[19], 10, 64); err != nil {
		return ""
	}
	return f[19]
}

func tailFile(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
