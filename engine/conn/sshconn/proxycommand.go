package sshconn

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proxyConn is a connection through a ProxyCommand: the SSH stream goes to
// the command's standard input and comes from its standard output, as with
// ssh. The command lives as long as the connection.
type proxyConn struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *tailBuffer
	addr   string

	closeOnce sync.Once
}

// startProxyCommand runs command with /bin/sh, as ssh runs it with the
// user's shell ("exec command").
func startProxyCommand(command, addr string) (net.Conn, error) {
	cmd := exec.Command("/bin/sh", "-c", "exec "+command)
	// Its own process group, so that a terminal's Ctrl-C reaches orch, which
	// ends the command when it closes the connection.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &proxyConn{cmd: cmd, stdin: stdin, stdout: stdout, stderr: &tailBuffer{max: 2048}, addr: addr}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ProxyCommand %q: %w", command, err)
	}
	return c, nil
}

func (c *proxyConn) Read(b []byte) (int, error)  { return c.stdout.Read(b) }
func (c *proxyConn) Write(b []byte) (int, error) { return c.stdin.Write(b) }

// Close ends the command: its input closes, then it is killed if it has
// not exited.
func (c *proxyConn) Close() error {
	c.closeOnce.Do(func() {
		c.stdin.Close()
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return nil
}

// explain adds what the command printed on stderr to a handshake error.
// It ends the command first, so that all it printed has been read.
func (c *proxyConn) explain(err error) error {
	c.Close()
	if msg := strings.TrimSpace(c.stderr.String()); msg != "" {
		return fmt.Errorf("%w (ProxyCommand said: %s)", err, msg)
	}
	return err
}

type proxyAddr string

func (a proxyAddr) Network() string { return "proxycommand" }
func (a proxyAddr) String() string  { return string(a) }

func (c *proxyConn) LocalAddr() net.Addr                { return proxyAddr("proxycommand") }
func (c *proxyConn) RemoteAddr() net.Addr               { return proxyAddr(c.addr) }
func (c *proxyConn) SetDeadline(t time.Time) error      { return nil }
func (c *proxyConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *proxyConn) SetWriteDeadline(t time.Time) error { return nil }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = b.buf[len(b.buf)-b.max:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
