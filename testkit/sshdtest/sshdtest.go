// Package sshdtest starts real OpenSSH servers on loopback addresses, so
// tests and benchmarks exercise orch's ssh connections against the same
// sshd that production hosts run.
//
// Every host of a fleet listens on its own address (127.0.0.2, 127.0.0.3, …),
// has its own ed25519 host key and accepts one shared client key. Nothing is
// installed system-wide: keys, configs, logs and pid files live in the fleet's
// directory, and a known_hosts file listing every host is written there too.
package sshdtest

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/orch-dev/orch/testkit/require"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHD is the server binary. sshd re-executes itself, so it must be an
// absolute path.
const SSHD = "/usr/sbin/sshd"

// Options tune a fleet. The zero value is ready to use.
type Options struct {
	// Port every host listens on. 0 picks a free port per host. Port 22 is
	// fine for large fleets because each host has its own address.
	Port int
	// MaxSessions is sshd's per-connection session limit (default 10).
	MaxSessions int
	// FirstAddress is the first host's address (default 127.0.0.2); the
	// following hosts count upward from it.
	FirstAddress string
	// ExtraConfig is appended to every host's sshd_config.
	ExtraConfig string
	// Parallel bounds how many servers start at once (default 32).
	Parallel int
	// NetNS runs the servers inside this network namespace (ip netns exec;
	// see testkit/netnstest), so that a test can cut their network.
	// FirstAddress is then the namespace's address, and Port must be set.
	NetNS string
	// LoginRC keeps the account's real HOME in sessions, so its shell
	// start-up files (~/.bashrc) run on every exchange. By default sessions
	// get an empty HOME in the fleet's directory: the fleet shares this
	// machine's account, whose start-up files (a development machine's
	// pyenv init, say) would slow every exchange and can wedge sessions on
	// their own locks when a test cancels one mid-start-up.
	LoginRC bool
}

// Fleet is a set of running sshd servers sharing one client key.
type Fleet struct {
	Dir        string // holds keys, configs and logs
	User       string // the account the client key logs in as (the current user)
	ClientKey  string // private key file (ed25519, no passphrase)
	KnownHosts string // known_hosts file with every host's key, unhashed
	Hosts      []*Host

	opts Options
}

// Host is one running sshd.
type Host struct {
	Name        string // h1, h2, …
	IP          string // 127.0.0.X
	Port        int
	HostKey     ssh.PublicKey
	Fingerprint string // SHA256:… of HostKey

	dir     string
	fleet   *Fleet
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
}

// Addr is the host's "ip:port" dial address.
func (h *Host) Addr() string { return net.JoinHostPort(h.IP, strconv.Itoa(h.Port)) }

// KnownHostsLine is the host's known_hosts entry (without trailing newline).
func (h *Host) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(h.Addr())}, h.HostKey)
}

// Available reports why sshd cannot be used here, or "" when it can.
func Available() string {
	if _, err := os.Stat(SSHD); err != nil {
		return "sshdtest: " + SSHD + " not installed (apt-get install openssh-server)"
	}
	return ""
}

// Start starts n servers for a test and stops them when the test ends. It
// skips the test when sshd is not installed.
func Start(tb testing.TB, n int, opts Options) *Fleet {
	tb.Helper()
	if why := Available(); why != "" {
		require.Missing(tb, why)
	}
	f, err := StartFleet(context.Background(), tb.TempDir(), n, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Stop() })
	return f
}

// StartFleet starts n servers whose files live under dir and returns once
// every one of them serves its SSH banner. Call Stop to end them.
func StartFleet(ctx context.Context, dir string, n int, opts Options) (*Fleet, error) {
	if why := Available(); why != "" {
		return nil, errors.New(why)
	}
	if opts.MaxSessions == 0 {
		opts.MaxSessions = 10
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 32
	}
	first := net.ParseIP("127.0.0.2")
	if opts.FirstAddress != "" {
		first = net.ParseIP(opts.FirstAddress)
	}
	switch {
	case opts.NetNS != "" && (first == nil || first.To4() == nil || opts.Port == 0):
		return nil, fmt.Errorf("sshdtest: a fleet in network namespace %s needs an IPv4 FirstAddress and a Port", opts.NetNS)
	case opts.NetNS == "" && (first == nil || first.To4() == nil || !first.IsLoopback()):
		return nil, fmt.Errorf("sshdtest: FirstAddress %q is not an IPv4 loopback address", opts.FirstAddress)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := ensurePrivsepDir(); err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("sshdtest: %w", err)
	}
	if !opts.LoginRC {
		home := filepath.Join(dir, "home")
		if err := os.MkdirAll(home, 0o755); err != nil {
			return nil, err
		}
		opts.ExtraConfig = "SetEnv HOME=" + home + "\n" + opts.ExtraConfig
	}
	f := &Fleet{
		Dir:        dir,
		User:       u.Username,
		ClientKey:  filepath.Join(dir, "id_ed25519"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		opts:       opts,
	}
	clientPub, err := writeKey(f.ClientKey)
	if err != nil {
		return nil, err
	}
	authorized := ssh.MarshalAuthorizedKey(clientPub)
	if err := os.WriteFile(f.ClientKey+".pub", authorized, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), authorized, 0o600); err != nil {
		return nil, err
	}

	next := ipToUint(first)
	for i := range n {
		// Skip .0 and .255, which some tools treat as network or broadcast.
		for next&0xff == 0 || next&0xff == 0xff {
			next++
		}
		ip := uintToIP(next)
		next++
		if !ip.IsLoopback() && opts.NetNS == "" {
			return nil, fmt.Errorf("sshdtest: %d hosts do not fit in 127.0.0.0/8 from %s", n, first)
		}
		name := "h" + strconv.Itoa(i+1)
		f.Hosts = append(f.Hosts, &Host{Name: name, IP: ip.String(), Port: opts.Port, dir: filepath.Join(dir, name), fleet: f})
	}

	sem := make(chan struct{}, opts.Parallel)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, h := range f.Hosts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := os.MkdirAll(h.dir, 0o700); err != nil {
				errs[i] = err
				return
			}
			if errs[i] = h.newHostKey(); errs[i] == nil {
				errs[i] = h.start(ctx)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		f.Stop()
		return nil, err
	}
	if err := f.WriteKnownHosts(f.KnownHosts); err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}

// WriteKnownHosts writes a known_hosts file for every host's current key.
func (f *Fleet) WriteKnownHosts(path string) error {
	var b strings.Builder
	for _, h := range f.Hosts {
		b.WriteString(h.KnownHostsLine() + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// Stop ends every server. It is safe to call more than once.
func (f *Fleet) Stop() error {
	tree := processTree()
	var wg sync.WaitGroup
	for _, h := range f.Hosts {
		wg.Go(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.stopLocked(tree)
		})
	}
	wg.Wait()
	return nil
}

// Stop ends the host's sshd and every connection it serves.
func (h *Host) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopLocked(nil)
}

func (h *Host) stopLocked(tree map[int][]int) {
	if h.cmd == nil || h.stopped {
		return
	}
	h.stopped = true
	// Killing the connection processes too makes open client connections
	// drop at once, as they would when a real host goes away.
	signalTree(tree, h.cmd.Process.Pid, syscall.SIGKILL)
	<-h.exited
}

// KillSSHD kills the host's sshd with SIGKILL, the listener and every
// connection's sshd process, as `pkill -9 sshd` on the host would: clients
// lose their connections, and the commands those ran lose their session
// (their standard input and output) but get no signal from it.
func (h *Host) KillSSHD() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil || h.stopped {
		return
	}
	h.stopped = true
	for _, pid := range sshdProcesses(h.cmd.Process.Pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-h.exited
}

// Freeze stops the host's sshd and connection processes without closing
// their sockets, like a host that hangs: clients see silence, not a reset.
func (h *Host) Freeze() { h.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen host.
func (h *Host) Thaw() { h.signal(syscall.SIGCONT) }

func (h *Host) signal(sig syscall.Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil && !h.stopped {
		signalTree(nil, h.cmd.Process.Pid, sig)
	}
}

// RotateKey restarts the host on the same address and port with a fresh host key and
// returns the new key's fingerprint. The fleet's known_hosts file still holds
// the old key, which is what changed-key tests need.
func (h *Host) RotateKey(ctx context.Context) (string, error) {
	h.mu.Lock()
	h.stopLocked(nil)
	h.mu.Unlock()
	if err := h.newHostKey(); err != nil {
		return "", err
	}
	if err := h.startOn(ctx, h.Port); err != nil {
		return "", err
	}
	return h.Fingerprint, nil
}

// Restart starts the host again on the same address with its current key.
func (h *Host) Restart(ctx context.Context) error {
	h.Stop()
	return h.startOn(ctx, h.Port)
}

func (h *Host) keyFile() string { return filepath.Join(h.dir, "ssh_host_ed25519_key") }

func (h *Host) newHostKey() error {
	pub, err := writeKey(h.keyFile())
	if err != nil {
		return err
	}
	h.HostKey = pub
	h.Fingerprint = ssh.FingerprintSHA256(pub)
	return nil
}

// start launches sshd. With a random port it retries on another port if the
// chosen one was taken between probing and binding.
func (h *Host) start(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		port := h.fleet.opts.Port
		if port == 0 {
			if port, err = freePort(h.IP); err != nil {
				return err
			}
		}
		if err = h.startOn(ctx, port); err == nil {
			return nil
		}
		if h.fleet.opts.Port != 0 || ctx.Err() != nil {
			break
		}
	}
	return err
}

func (h *Host) startOn(ctx context.Context, port int) error {
	cfgPath := filepath.Join(h.dir, "sshd_config")
	cfg := fmt.Sprintf(`ListenAddress %s
HostKey %s
PidFile %s
AuthorizedKeysFile %s
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxSessions %d
MaxStartups 200
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
LogLevel ERROR
Subsystem sftp internal-sftp
%s
`, net.JoinHostPort(h.IP, strconv.Itoa(port)), h.keyFile(), filepath.Join(h.dir, "sshd.pid"),
		filepath.Join(h.fleet.Dir, "authorized_keys"), h.fleet.opts.MaxSessions, h.fleet.opts.ExtraConfig)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	logPath := filepath.Join(h.dir, "sshd.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()

	cmd := exec.Command(SSHD, "-D", "-e", "-f", cfgPath)
	if ns := h.fleet.opts.NetNS; ns != "" {
		cmd = exec.Command("ip", "netns", "exec", ns, SSHD, "-D", "-e", "-f", cfgPath)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sshdtest: %s: %w", h.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()

	h.mu.Lock()
	h.cmd, h.exited, h.stopped, h.Port = cmd, exited, false, port
	h.mu.Unlock()

	addr := h.Addr()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := probeBanner(addr); err == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("sshdtest: %s: sshd on %s exited: %s", h.Name, addr, lastLine(log))
		case <-ctx.Done():
			h.Stop()
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.Stop()
			return fmt.Errorf("sshdtest: %s: sshd on %s did not serve a banner in time", h.Name, addr)
		}
	}
}

// probeBanner connects and waits for the server's identification string,
// which sshd sends only once it is ready to handle the connection.
func probeBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("sshdtest: probing a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeKey generates an ed25519 key in OpenSSH format (no passphrase).
func writeKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

// ensurePrivsepDir creates the directory sshd insists on when started as root.
func ensurePrivsepDir() error {
	if os.Geteuid() != 0 {
		return nil
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func ipToUint(ip net.IP) uint32 {
	v := ip.To4()
	return uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
}

func uintToIP(v uint32) net.IP {
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
