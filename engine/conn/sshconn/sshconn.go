// Package sshconn is orch's SSH connection: one golang.org/x/crypto/ssh
// client per host, reused by every task, running scripts in multiplexed
// sessions and writing files over SFTP.
//
// Dial honours ~/.ssh/config and /etc/ssh/ssh_config as OpenSSH reads them
// (see sshconfig.go), ssh-agent (keys and certificates), and known_hosts
// files (hashed entries too), with the host key policies strict,
// accept-new and off.
//
// Errors from Dial that mean "could not reach or log in to the host" are
// *conn.UnreachableError; a rejected host key is additionally a
// *HostKeyError inside it. Both are matched with errors.As.
package sshconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/engine/conn"
)

// Host key policies for Config.HostKeyCheck.
const (
	// Strict refuses hosts whose key is not in known_hosts.
	Strict = "strict"
	// AcceptNew records the key of a host seen for the first time in the
	// first known_hosts file and refuses changed keys. It is the default.
	AcceptNew = "accept-new"
	// Off accepts any key. Dial reports this through Config.Warn.
	Off = "off"
)

// Defaults for the zero values of Config.
const (
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxSessions stays below sshd's default MaxSessions of 10,
	// leaving room for the SFTP session.
	DefaultMaxSessions = 8
	DefaultKeepAlive   = 30 * time.Second
)

// Config says how to reach one host. Explicit fields win over ~/.ssh/config,
// which wins over the defaults.
type Config struct {
	// HostName is the inventory name. It appears in errors, and the ssh
	// config is evaluated for it when Address is empty.
	HostName string
	// Address is what ssh would be given as the host (Ansible's
	// ansible_host): the ssh config is evaluated for it, HostName included.
	Address string
	Port    int    // default: ssh config, then 22
	User    string // default: ssh config, then the current user
	// KeyFiles are private keys to offer before the ssh config's
	// IdentityFile ones, as ssh -i does. They must exist. With neither,
	// ssh's default keys are tried (~/.ssh/id_rsa, id_ecdsa, id_ed25519, …).
	KeyFiles []string
	// ProxyJump is "[user@]host[:port][,…]" as in ssh -J; "none" disables
	// a ProxyJump from the ssh config. Default: the ssh config's ProxyJump.
	ProxyJump string
	// ProxyCommand reaches the host through a command's standard input and
	// output, as ssh's; "none" disables one from the ssh config. ProxyJump
	// and ProxyCommand exclude each other: the first one set wins.
	ProxyCommand string
	// Agent offers the keys of the ssh-agent at $SSH_AUTH_SOCK, if set.
	Agent bool

	// KnownHostsFiles default to the ssh config's UserKnownHostsFile, or
	// ~/.ssh/known_hosts and known_hosts2. Under accept-new, new keys are
	// appended to the first one, which is created if missing. The ssh
	// config's GlobalKnownHostsFile (default /etc/ssh/ssh_known_hosts) and
	// ExtraKnownHostsFiles are trusted too but never written.
	KnownHostsFiles      []string
	ExtraKnownHostsFiles []string
	// HostKeyCheck is Strict, AcceptNew (default) or Off.
	HostKeyCheck string

	// UseSSHConfig reads SSHConfigPath, or ~/.ssh/config and
	// /etc/ssh/ssh_config when that is empty.
	UseSSHConfig  bool
	SSHConfigPath string

	// ConnectTimeout bounds the TCP connect plus the SSH handshake of each
	// hop (default 10s).
	ConnectTimeout time.Duration
	// MaxSessions bounds concurrent Exec sessions (default 8). It must stay
	// below the server's MaxSessions; the SFTP session takes one more.
	MaxSessions int
	// KeepAlive is the interval of keepalive requests (default 30s; negative
	// disables). A server that misses one interval is considered dead and the
	// connection is closed, failing pending calls instead of hanging them.
	KeepAlive time.Duration

	// DialContext opens the TCP connections Dial would open itself: to the
	// host, or to its first jump host (ProxyCommand still runs its
	// command). nil means a net.Dialer. An *ssh.Client's DialContext
	// reaches hosts through a bastion the caller already holds a
	// connection to.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Jumps shares jump host connections with the other Dials given the
	// same pool; nil shares none.
	Jumps *JumpPool

	// Warn receives warnings such as "host key checking is off", each
	// message once per Dial. The package never prints; nil discards them.
	Warn func(msg string)
}

// goneChannelType is a channel type no server opens (see Conn.gone).
const goneChannelType = "orch-transport-end"

// scriptChunk bounds the packets Exec sends a script in (see feedStdin).
const scriptChunk = 2 << 10

// Conn is an open SSH connection to one host. It implements conn.Conn and is
// safe for concurrent use.
type Conn struct {
	name   string
	addr   string
	client *ssh.Client
	// releaseJumps gives back the shared jump host connections.
	releaseJumps func()

	sessions  chan struct{} // semaphore for MaxSessions
	exchanges atomic.Int64

	sftpMu sync.Mutex
	sftp   *sftpSession

	done      chan struct{}         // closed by Close
	gone      <-chan ssh.NewChannel // closed when the transport ends, for any reason
	closeOnce sync.Once
	closeErr  error
}

var _ conn.Conn = (*Conn)(nil)

// Dial connects to the host and logs in. Network, handshake, host key and
// authentication failures are returned as *conn.UnreachableError; invalid
// configuration (an unknown policy, a missing key file) as plain errors.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	d, err := newDialer(cfg)
	if err != nil {
		return nil, err
	}
	d.ctx = ctx
	first, err := d.targetHop()
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", cfg.HostName, err)
	}
	chain, err := d.chain(first, 0)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", cfg.HostName, err)
	}
	target := chain[len(chain)-1]
	client, releaseJumps, err := d.dialChain(ctx, chain)
	if err != nil {
		return nil, &conn.UnreachableError{Host: cfg.HostName, Address: target.addr(), Err: err}
	}
	c := &Conn{
		name:         cfg.HostName,
		addr:         target.addr(),
		client:       client,
		releaseJumps: releaseJumps,
		sessions:     make(chan struct{}, d.cfg.MaxSessions),
		done:         make(chan struct{}),
		// x/crypto closes a channel-open handler's channel when the transport
		// ends, so one for a type no server opens tells that without a
		// goroutine per connection blocked in client.Wait.
		gone: client.HandleChannelOpen(goneChannelType),
	}
	if d.cfg.KeepAlive > 0 {
		c.keepAlive(d.cfg.KeepAlive)
	}
	return c, nil
}

// Address is the "host:port" the connection was made to.
func (c *Conn) Address() string { return c.addr }

// Exchanges counts exec sessions plus SFTP requests since connect.
func (c *Conn) Exchanges() int64 { return c.exchanges.Load() }

// Close closes the SFTP session and the connection, and releases the jump
// host connections (closing those no other Conn uses).
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		// Closing the transport first makes every pending call return.
		c.closeErr = c.client.Close()
		c.sftpMu.Lock()
		if c.sftp != nil {
			c.sftp.close()
			c.sftp = nil
		}
		c.sftpMu.Unlock()
		c.releaseJumps()
	})
	return c.closeErr
}

// Exec runs script with /bin/sh on the host.
//
// Without stdin, the command is plain "/bin/sh" and the script travels on
// its standard input wrapped in a { } group (see conn.GroupScript): any login
// shell can start it, scripts of any size work, and a transfer cut short runs
// nothing. With stdin, the script travels in the command line instead,
// octal-escaped so that every login shell (sh, bash, csh, fish) passes it
// through untouched; a script too large for one argument is first uploaded
// to a temporary file, which deletes itself when it starts.
//
// Cancelling ctx closes the script's stdin, sends KILL to the remote shell
// and closes the session; for a script sent on stdin, GroupScript's
// watchdog then ends the script's whole process group on the host.
func (c *Conn) Exec(ctx context.Context, script string, stdin io.Reader) (conn.Result, error) {
	res, err := c.exec(ctx, script, stdin)
	if err != nil {
		err = fmt.Errorf("%s: exec: %w", c.name, err)
	}
	return res, err
}

func (c *Conn) exec(ctx context.Context, script string, stdin io.Reader) (conn.Result, error) {
	if err := ctx.Err(); err != nil {
		return conn.Result{}, err
	}
	hold := stdin == nil // the script travels on stdin, which stays open until it exits
	// A script's input is made once the session has started.
	command, input := "/bin/sh", stdin
	if !hold {
		if cmd, ok := escapedCommand(script); ok {
			command = cmd
		} else {
			tmp := fmt.Sprintf("/tmp/.orch-script-%016x.sh", rand.Uint64())
			if err := c.WriteFile(ctx, tmp, []byte(selfDeleting+script), 0o600); err != nil {
				return conn.Result{}, err
			}
			command = "/bin/sh " + tmp
		}
	}

	if err := c.acquire(ctx); err != nil {
		return conn.Result{}, err
	}
	defer c.release()
	sess, err := c.newSession(ctx)
	if err != nil {
		return conn.Result{}, err
	}
	defer sess.Close()
	c.exchanges.Add(1)

	// bytes.Buffer is an io.ReaderFrom, so the session's copying goroutines
	// read into it instead of each allocating io.Copy's 32 KiB buffer: with
	// a thousand hosts in flight those buffers were a large part of the
	// controller's heap.
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	feed, err := sess.StdinPipe()
	if err != nil {
		return conn.Result{}, c.lost(err)
	}
	if err := sess.Start(command); err != nil {
		return conn.Result{}, c.lost(err)
	}
	// The feeding goroutine alone writes and closes stdin (x/crypto's
	// channel does not allow a Close concurrent with a Write); a held stdin
	// is closed when done is.
	done := make(chan struct{})
	defer close(done)
	if hold {
		// Wrapped only now, so that a copy of the script is not held too
		// while the session opens, which on a loaded host takes a while.
		input = strings.NewReader(conn.GroupScript(script))
	}
	go feedStdin(feed, input, hold, done)
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		// The closed session closes the script's stdin, which tells its
		// watchdog to end its process group; the signal ends the shell,
		// which the watchdog's second loop takes the same way.
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		// Not waiting for Wait: a caller's stdin that never ends would block it.
		return conn.Result{ExitCode: -1}, ctx.Err()
	}

	res := conn.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()} // Wait returned: the copying is done
	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitStatus()
		if exitErr.Signal() != "" {
			res.ExitCode = -1
		}
	case errors.As(err, &missing):
		res.ExitCode = -1
		return res, c.lost(err)
	default:
		return res, c.lost(err)
	}
	return res, nil
}

// feedStdin writes a session's input and closes its stdin: at once for a
// caller's stdin, when done is closed for a held one (a script).
//
// A script goes in packets of at most scriptChunk bytes: x/crypto's ciphers
// keep a buffer as large as the largest packet they sealed for the
// connection's whole life, and a check script sent in one packet (8 KiB
// for 21 file tasks) left that much on every idle connection of a run.
func feedStdin(w io.WriteCloser, input io.Reader, hold bool, done <-chan struct{}) {
	if hold {
		io.CopyBuffer(w, struct{ io.Reader }{input}, make([]byte, scriptChunk))
		<-done // input is dead here: the GC may free the script's text
	} else {
		io.Copy(w, input)
	}
	w.Close()
}

// lost returns err as a *conn.UnreachableError when the connection itself
// has ended (the host died, or hung and missed a keepalive) rather than
// been closed by Close. A dying transport and the failures it causes arrive
// in no fixed order, hence the short grace period.
func (c *Conn) lost(err error) error {
	select {
	case <-c.gone:
	case <-time.After(200 * time.Millisecond):
		return err
	}
	select {
	case <-c.done:
		return err
	default:
		return &conn.UnreachableError{Host: c.name, Address: c.addr, Err: err}
	}
}

func (c *Conn) acquire(ctx context.Context) error {
	select {
	case c.sessions <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return errors.New("connection closed")
	}
}

func (c *Conn) release() { <-c.sessions }

// newSession opens a session channel. sshd refuses sessions beyond its
// MaxSessions (OpenSSH says "connect failed", others "administratively
// prohibited" or "resource shortage"), and a closed session's slot is freed a
// little after we close it, so refusals are retried with backoff.
func (c *Conn) newSession(ctx context.Context) (*ssh.Session, error) {
	delay := 5 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	for {
		sess, err := c.client.NewSession()
		if err == nil {
			return sess, nil
		}
		var refused *ssh.OpenChannelError
		if !errors.As(err, &refused) {
			return nil, c.lost(err)
		}
		if refused.Reason == ssh.UnknownChannelType || time.Now().After(deadline) {
			return nil, fmt.Errorf("opening session: %w", err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, errors.New("connection closed")
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// keepAlive pings the server every interval and closes the connection when
// a ping goes unanswered for a whole interval, so calls on a dead host fail
// rather than hang until TCP gives up. It runs from timers, not from a
// goroutine of its own: an idle connection then holds no goroutine stack,
// which for a thousand hosts connected at once adds up.
func (c *Conn) keepAlive(interval time.Duration) {
	time.AfterFunc(interval, func() {
		select {
		case <-c.done:
			return
		default:
		}
		hung := time.AfterFunc(interval, func() { c.client.Close() })
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		if !hung.Stop() || err != nil {
			return // closed by hung, by Close, or the transport ended
		}
		c.keepAlive(interval)
	})
}
