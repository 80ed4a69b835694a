package sshconn_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/orch-dev/orch/testkit/require"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/engine/conn/sshconn"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// config reaches h with the fleet's key, trusting only the fleet's
// known_hosts.
func config(f *sshdtest.Fleet, h *sshdtest.Host) sshconn.Config {
	return sshconn.Config{
		HostName:        h.Name,
		Address:         h.IP,
		Port:            h.Port,
		User:            f.User,
		KeyFiles:        []string{f.ClientKey},
		KnownHostsFiles: []string{f.KnownHosts},
		HostKeyCheck:    sshconn.Strict,
	}
}

func dial(t *testing.T, cfg sshconn.Config) *sshconn.Conn {
	t.Helper()
	c, err := sshconn.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c conn.Conn, script string, stdin []byte) conn.Result {
	t.Helper()
	var in *bytes.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	var res conn.Result
	var err error
	if in != nil {
		res, err = c.Exec(context.Background(), script, in)
	} else {
		res, err = c.Exec(context.Background(), script, nil)
	}
	if err != nil {
		t.Fatalf("exec %.40q: %v", script, err)
	}
	return res
}

func TestExec(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	c := dial(t, config(f, f.Hosts[0]))

	res := run(t, c, "echo out; echo err >&2; exit 3", nil)
	if string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" || res.ExitCode != 3 {
		t.Errorf("got %+v", res)
	}
	if res := run(t, c, "kill -9 $$", nil); res.ExitCode != -1 {
		t.Errorf("killed shell: exit code %d, want -1", res.ExitCode)
	}
	// The script runs in the login user's shell environment, and can read
	// nothing further from stdin.
	if res := run(t, c, "id -un; cat", nil); strings.TrimSpace(string(res.Stdout)) != f.User {
		t.Errorf("id -un; cat: %q", res.Stdout)
	}
	// A script with a syntax error anywhere runs none of it.
	if res := run(t, c, "echo ran\nif then fi", nil); len(res.Stdout) != 0 || res.ExitCode == 0 {
		t.Errorf("syntax error: %+v", res)
	}
	if got := c.Exchanges(); got != 4 {
		t.Errorf("Exchanges = %d after 4 Execs", got)
	}
}

func TestExecStdin(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	c := dial(t, config(f, f.Hosts[0]))

	// Characters that trip up one login shell or another.
	tricky := `it's "q" \ ! $HOME ` + "`x` %b \\0101 \t tab\nline2 ü"
	script := "printf '%s\\n' \"$(cat)\"\ncat <<'EOF'\n" + tricky + "\nEOF\nexit 7"
	res := run(t, c, script, []byte("from stdin"))
	if want := "from stdin\n" + tricky + "\n"; string(res.Stdout) != want || res.ExitCode != 7 {
		t.Errorf("got %q (exit %d), want %q", res.Stdout, res.ExitCode, want)
	}

	// Too large for the command line: goes through a self-deleting file.
	big := "cat >/dev/null <<'EOF'\n" + strings.Repeat("0123456789abcdef\n", 10000) + "EOF\nwc -c; echo \"$0\""
	before := c.Exchanges()
	res = run(t, c, big, bytes.Repeat([]byte("x"), 1000))
	lines := strings.Fields(string(res.Stdout))
	if len(lines) != 2 || lines[0] != "1000" {
		t.Fatalf("big script with stdin: %+v", res)
	}
	if _, err := os.Stat(lines[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("script file %s left behind: %v", lines[1], err)
	}
	if got := c.Exchanges() - before; got < 2 {
		t.Errorf("big script with stdin counted %d exchanges", got)
	}
}

func TestLargeScript(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	c := dial(t, config(f, f.Hosts[0]))

	var body strings.Builder
	for i := 0; body.Len() < 500<<10; i++ {
		fmt.Fprintf(&body, "line %d: the quick brown fox jumps over the lazy dog '\"$\\!\n", i)
	}
	script := "n=0\ncat <<'EOF'\n" + body.String() + "EOF\nexit 0"
	res := run(t, c, script, nil)
	if string(res.Stdout) != body.String() {
		t.Errorf("500 KB script: got %d bytes of output, want %d", len(res.Stdout), body.Len())
	}
}

func TestParallelExec(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{MaxSessions: 10})
	for _, max := range []int{0, 10} {
		t.Run(fmt.Sprintf("MaxSessions=%d", max), func(t *testing.T) {
			cfg := config(f, f.Hosts[0])
			cfg.MaxSessions = max
			c := dial(t, cfg)
			// With max 10 the SFTP session makes 11 > sshd's 10: refused
			// sessions must be retried.
			if err := c.WriteFile(context.Background(), filepath.Join(t.TempDir(), "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := c.Exchanges()
			var wg sync.WaitGroup
			errs := make([]error, 30)
			for i := range errs {
				wg.Go(func() {
					res, err := c.Exec(context.Background(), fmt.Sprintf("sleep 0.2; echo %d", i), nil)
					if err == nil && strings.TrimSpace(string(res.Stdout)) != strconv.Itoa(i) {
						err = fmt.Errorf("exec %d: got %q", i, res.Stdout)
					}
					errs[i] = err
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			if got := c.Exchanges() - before; got != 30 {
				t.Errorf("30 Execs counted %d exchanges", got)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	c := dial(t, config(f, f.Hosts[0]))
	dir := t.TempDir()
	p := filepath.Join(dir, "app.conf")
	ctx := context.Background()

	check := func(data []byte, mode uint32, wantExchanges int64) {
		t.Helper()
		before := c.Exchanges()
		if err := c.WriteFile(ctx, p, data, mode); err != nil {
			t.Fatal(err)
		}
		if got := c.Exchanges() - before; got != wantExchanges {
			t.Errorf("WriteFile of %d bytes: %d exchanges, want %d", len(data), got, wantExchanges)
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("content: %v (%d bytes, want %d)", err, len(got), len(data))
		}
		if fi, _ := os.Stat(p); fi.Mode() != conn.FileMode(mode) {
			t.Errorf("mode %v, want %v", fi.Mode(), conn.FileMode(mode))
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("directory holds %d entries, want only app.conf", len(entries))
		}
	}
	// SFTP handshake + open, write, fsetstat, fsync, close, rename.
	check([]byte("hello\n"), 0o640, 7)
	check([]byte("replaced\n"), 0o2755, 6)
	check(nil, 0o600, 5)                                // no write request
	check(bytes.Repeat([]byte("z"), 100<<10), 0o644, 9) // four 32 KiB writes

	err := c.WriteFile(ctx, filepath.Join(dir, "missing", "x"), []byte("x"), 0o644)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), f.Hosts[0].Name) {
		t.Errorf("write into missing dir: %v", err)
	}
	// The connection survives failed writes.
	check([]byte("again\n"), 0o644, 6)
}

func TestHostKeyStrictUnknown(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	h := f.Hosts[0]
	cfg := config(f, h)
	cfg.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "known_hosts")} // missing
	_, err := sshconn.Dial(context.Background(), cfg)
	var hkErr *sshconn.HostKeyError
	var unreachable *conn.UnreachableError
	if !errors.As(err, &hkErr) || hkErr.Kind != sshconn.HostKeyUnknown || !errors.As(err, &unreachable) {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
	for _, want := range []string{h.Name, h.Fingerprint, "accept-new", "ssh-keyscan"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := os.Stat(cfg.KnownHostsFiles[0]); !errors.Is(err, os.ErrNotExist) {
		t.Error("strict created known_hosts")
	}
}

func TestHostKeyChanged(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	h := f.Hosts[0]
	old := h.Fingerprint
	if _, err := h.RotateKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(f.KnownHosts)
	for _, policy := range []string{sshconn.AcceptNew, sshconn.Strict} {
		cfg := config(f, h)
		cfg.HostKeyCheck = policy
		_, err := sshconn.Dial(context.Background(), cfg)
		var hkErr *sshconn.HostKeyError
		if !errors.As(err, &hkErr) || hkErr.Kind != sshconn.HostKeyChanged {
			t.Fatalf("%s: got %v", policy, err)
		}
		t.Log(err)
		for _, want := range []string{h.Name, old, h.Fingerprint, "CHANGED", "ssh-keygen -R"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", policy, want, err)
			}
		}
	}
	if after, _ := os.ReadFile(f.KnownHosts); !bytes.Equal(before, after) {
		t.Error("known_hosts was modified")
	}
}

func TestHostKeyAcceptNew(t *testing.T) {
	f := sshdtest.Start(t, 5, sshdtest.Options{})
	known := filepath.Join(t.TempDir(), "sub", "known_hosts")
	var wg sync.WaitGroup
	errs := make([]error, len(f.Hosts))
	for i, h := range f.Hosts {
		wg.Go(func() {
			cfg := config(f, h)
			cfg.HostKeyCheck, cfg.KnownHostsFiles = sshconn.AcceptNew, []string{known}
			c, err := sshconn.Dial(context.Background(), cfg)
			if err == nil {
				c.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(known)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("known_hosts: %v %v", fi, err)
	}
	data, _ := os.ReadFile(known)
	if n := strings.Count(string(data), "\n"); n != len(f.Hosts) {
		t.Errorf("known_hosts has %d lines, want %d:\n%s", n, len(f.Hosts), data)
	}
	for _, h := range f.Hosts {
		cfg := config(f, h)
		cfg.KnownHostsFiles = []string{known}
		dial(t, cfg) // strict
	}
}

func TestHostKeyHashed(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		require.Missing(t, "ssh-keygen not installed")
	}
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	known := filepath.Join(t.TempDir(), "known_hosts")
	data, _ := os.ReadFile(f.KnownHosts)
	os.WriteFile(known, data, 0o600)
	if out, err := exec.Command("ssh-keygen", "-H", "-f", known).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -H: %v: %s", err, out)
	}
	if hashed, _ := os.ReadFile(known); !bytes.HasPrefix(hashed, []byte("|1|")) {
		t.Fatalf("not hashed: %s", hashed)
	}
	cfg := config(f, f.Hosts[0])
	cfg.KnownHostsFiles = []string{known}
	c := dial(t, cfg)
	run(t, c, "true", nil)
}

func TestHostKeyOff(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	cfg := config(f, f.Hosts[0])
	known := filepath.Join(t.TempDir(), "known_hosts")
	cfg.KnownHostsFiles, cfg.HostKeyCheck = []string{known}, sshconn.Off
	var warnings []string
	cfg.Warn = func(msg string) { warnings = append(warnings, msg) }
	c := dial(t, cfg)
	run(t, c, "true", nil)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "off") {
		t.Errorf("warnings: %q", warnings)
	}
	if _, err := os.Stat(known); !errors.Is(err, os.ErrNotExist) {
		t.Error("off wrote known_hosts")
	}
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	// A listener that accepts but never speaks SSH.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	key := filepath.Join(t.TempDir(), "id")
	writeTestKey(t, key)
	for name, port := range map[string]int{"closed": closedPort, "silent": silent.Addr().(*net.TCPAddr).Port} {
		start := time.Now()
		_, err := sshconn.Dial(context.Background(), sshconn.Config{
			HostName: "web1", Address: "127.0.0.1", Port: port, KeyFiles: []string{key},
			KnownHostsFiles: []string{filepath.Join(t.TempDir(), "kh")}, ConnectTimeout: 500 * time.Millisecond,
		})
		var unreachable *conn.UnreachableError
		if !errors.As(err, &unreachable) || unreachable.Host != "web1" {
			t.Errorf("%s: got %v", name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: took %v", name, d)
		}
		t.Logf("%s: %v", name, err)
	}
}

func TestDialCancel(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	key := filepath.Join(t.TempDir(), "id")
	writeTestKey(t, key)
	start := time.Now()
	_, err = sshconn.Dial(ctx, sshconn.Config{HostName: "web1", Address: "127.0.0.1",
		Port: silent.Addr().(*net.TCPAddr).Port, KeyFiles: []string{key},
		KnownHostsFiles: []string{filepath.Join(t.TempDir(), "kh")}})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("got %v after %v", err, time.Since(start))
	}
}

func TestSSHConfig(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	h := f.Hosts[0]
	cfgFile := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
Host web
    HostName %s
    Port %d
    User %s
    IdentityFile %s

Host *
    User nobody-else
    Port 1
`, h.IP, h.Port, f.User, f.ClientKey)), 0o600)
	c := dial(t, sshconn.Config{
		HostName: "web", UseSSHConfig: true, SSHConfigPath: cfgFile,
		KnownHostsFiles: []string{f.KnownHosts}, HostKeyCheck: sshconn.Strict,
	})
	if got := c.Address(); got != h.Addr() {
		t.Errorf("Address = %s, want %s", got, h.Addr())
	}
	if res := run(t, c, "id -un", nil); strings.TrimSpace(string(res.Stdout)) != f.User {
		t.Errorf("user %q", res.Stdout)
	}
	// Explicit settings win over the ssh config.
	_, err := sshconn.Dial(context.Background(), sshconn.Config{
		HostName: "web", Port: 1, UseSSHConfig: true, SSHConfigPath: cfgFile,
		KnownHostsFiles: []string{f.KnownHosts}, HostKeyCheck: sshconn.Strict,
	})
	if err == nil || !strings.Contains(err.Error(), ":1") {
		t.Errorf("explicit port 1: %v", err)
	}
}

func TestProxyJump(t *testing.T) {
	f := sshdtest.Start(t, 3, sshdtest.Options{})
	jump := f.Hosts[0]
	cfgFile := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
Host target1
    HostName %s
    Port %d
    ProxyJump bastion

Host target2
    HostName %s
    Port %d
    ProxyJump bastion

Host bastion
    HostName %s
    Port %d

Host *
    User %s
    IdentityFile %s
`, f.Hosts[1].IP, f.Hosts[1].Port, f.Hosts[2].IP, f.Hosts[2].Port, jump.IP, jump.Port, f.User, f.ClientKey)), 0o600)
	pool := &sshconn.JumpPool{}
	cfg := func(name string) sshconn.Config {
		return sshconn.Config{
			HostName: name, UseSSHConfig: true, SSHConfigPath: cfgFile,
			KnownHostsFiles: []string{f.KnownHosts}, HostKeyCheck: sshconn.Strict, Jumps: pool,
		}
	}
	c1, c2 := dial(t, cfg("target1")), dial(t, cfg("target2"))
	run(t, c1, "true", nil)
	run(t, c2, "true", nil)
	if conns, refs := pool.Stats(); conns != 1 || refs != 2 {
		t.Errorf("jump pool: %d connections, %d users; want 1 shared by 2", conns, refs)
	}

	// Everything flows through the jump host: without it the connections die.
	jump.Stop()
	for _, c := range []*sshconn.Conn{c1, c2} {
		if _, err := c.Exec(context.Background(), "true", nil); err == nil {
			t.Error("exec still works with the jump host gone")
		}
		c.Close()
	}
	if conns, refs := pool.Stats(); conns != 0 || refs != 0 {
		t.Errorf("jump pool after Close: %d connections, %d users", conns, refs)
	}

	// A failing jump host is named in the error.
	_, err := sshconn.Dial(context.Background(), cfg("target1"))
	var unreachable *conn.UnreachableError
	if !errors.As(err, &unreachable) || !strings.Contains(err.Error(), "jump host bastion") {
		t.Errorf("dead jump host: %v", err)
	}
}

func TestExecCancel(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	c := dial(t, config(f, f.Hosts[0]))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Exec(ctx, "sleep 30", nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
	// The connection is still usable.
	run(t, c, "true", nil)
}

func TestAgent(t *testing.T) {
	for _, tool := range []string{"ssh-agent", "ssh-add"} {
		if _, err := exec.LookPath(tool); err != nil {
			require.Missing(t, tool+" not installed")
		}
	}
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		} else if i > 200 {
			t.Fatal("ssh-agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	add := exec.Command("ssh-add", f.ClientKey)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("HOME", t.TempDir()) // no default key files

	cfg := config(f, f.Hosts[0])
	cfg.KeyFiles, cfg.Agent = nil, true
	c := dial(t, cfg)
	run(t, c, "true", nil)

	cfg.Agent = false
	_, err := sshconn.Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "no usable private key") {
		t.Errorf("without agent: %v", err)
	}
}

func writeTestKey(t *testing.T, path string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestKeepAlive(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	h := f.Hosts[0]
	cfg := config(f, h)
	cfg.KeepAlive = 100 * time.Millisecond
	c := dial(t, cfg)
	time.Sleep(300 * time.Millisecond)
	run(t, c, "true", nil) // keepalives answered: still connected

	h.Freeze()
	defer h.Thaw()
	start := time.Now()
	_, err := c.Exec(context.Background(), "true", nil)
	var unreachable *conn.UnreachableError
	if !errors.As(err, &unreachable) || time.Since(start) > 2*time.Second {
		t.Errorf("exec on a hung host: %v after %v", err, time.Since(start))
	}
}

func TestHostDiesMidExec(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	h := f.Hosts[0]
	c := dial(t, config(f, h))
	go func() {
		time.Sleep(300 * time.Millisecond)
		h.Stop()
	}()
	_, err := c.Exec(context.Background(), "sleep 10", nil)
	var unreachable *conn.UnreachableError
	if !errors.As(err, &unreachable) {
		t.Errorf("got %v", err)
	}
}

func TestHostKeyOtherTypeKnown(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	h := f.Hosts[0]
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ssh.NewPublicKey(&priv.PublicKey)
	known := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(known, []byte(knownhosts.Line([]string{knownhosts.Normalize(h.Addr())}, pub)+"\n"), 0o600)
	cfg := config(f, h)
	cfg.KnownHostsFiles, cfg.HostKeyCheck = []string{known}, sshconn.AcceptNew
	_, err = sshconn.Dial(context.Background(), cfg)
	var hkErr *sshconn.HostKeyError
	if !errors.As(err, &hkErr) || hkErr.Kind != sshconn.HostKeyChanged || !strings.Contains(err.Error(), ssh.FingerprintSHA256(pub)) {
		t.Errorf("got %v", err)
	}
	t.Log(err)
}
