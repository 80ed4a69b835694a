package sshconn_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/orch-dev/orch/engine/conn/sshconn"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// A ProxyCommand from the ssh config reaches the target through a real
// bastion with OpenSSH's own `ssh -W`, and ends with the connection.
func TestProxyCommand(t *testing.T) {
	f := sshdtest.Start(t, 2, sshdtest.Options{})
	bastion, target := f.Hosts[0], f.Hosts[1]
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "proxy.pid")
	cfgFile := filepath.Join(dir, "config")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
Host target
    HostName %s
    Port %d
    User %s
    IdentityFile %s
    ProxyCommand sh -c 'echo $$ > %s; exec ssh -F /dev/null -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes -p %d -W %%h:%%p %s@%s'
`, target.IP, target.Port, f.User, f.ClientKey, pidFile, f.ClientKey, f.KnownHosts, bastion.Port, f.User, bastion.IP)), 0o600)
	c := dial(t, sshconn.Config{
		HostName: "target", UseSSHConfig: true, SSHConfigPath: cfgFile,
		KnownHostsFiles: []string{f.KnownHosts}, HostKeyCheck: sshconn.Strict,
	})
	if res := run(t, c, "echo through-proxy", nil); strings.TrimSpace(string(res.Stdout)) != "through-proxy" {
		t.Errorf("stdout %q", res.Stdout)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the ProxyCommand did not run: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	c.Close()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("ProxyCommand (pid %d) still runs after Close", pid)
	}

	// A ProxyCommand that fails says why, in its own words.
	_, err = sshconn.Dial(t.Context(), sshconn.Config{
		HostName: "target", Address: target.IP, Port: target.Port, KeyFiles: []string{f.ClientKey},
		ProxyCommand:    "echo bastion-unreachable >&2; exit 1",
		KnownHostsFiles: []string{f.KnownHosts}, HostKeyCheck: sshconn.Strict,
	})
	if err == nil || !strings.Contains(err.Error(), "ProxyCommand said: bastion-unreachable") {
		t.Errorf("failing ProxyCommand: %v", err)
	}
}

// certAuthority makes a user CA and signs keys with it.
type certAuthority struct {
	signer ssh.Signer
	pub    string // the CA's public key file
}

func newCA(t *testing.T, dir string) *certAuthority {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ca := &certAuthority{signer: s, pub: filepath.Join(dir, "ca.pub")}
	os.WriteFile(ca.pub, ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644)
	return ca
}

// userKey writes a new key that sshd does not know (it is not in the
// fleet's authorized_keys), and a certificate for it valid for principal.
func (ca *certAuthority) userKey(t *testing.T, path, principal string) (ed25519.PrivateKey, *ssh.Certificate) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
	pub, _ := ssh.NewPublicKey(priv.Public())
	cert := &ssh.Certificate{
		Key: pub, CertType: ssh.UserCert, KeyId: "orch-test", ValidPrincipals: []string{principal},
		ValidBefore: ssh.CertTimeInfinity, Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := cert.SignCert(rand.Reader, ca.signer); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644)
	return priv, cert
}

// Certificate logins against a real sshd that trusts a user CA: the
// KEY-cert.pub beside a key, a CertificateFile from the ssh config, and a
// certificate held by ssh-agent.
func TestCertificateLogin(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir)
	f := sshdtest.Start(t, 1, sshdtest.Options{ExtraConfig: "TrustedUserCAKeys " + ca.pub})
	h := f.Hosts[0]
	t.Setenv("HOME", t.TempDir()) // no default keys
	t.Setenv("SSH_AUTH_SOCK", "")
	key := filepath.Join(dir, "id_cert")
	priv, cert := ca.userKey(t, key, f.User)
	base := sshconn.Config{HostName: h.Name, Address: h.IP, Port: h.Port, User: f.User,
		KnownHostsFiles: []string{f.KnownHosts}, HostKeyCheck: sshconn.Strict}

	t.Run("KEY-cert.pub beside the key", func(t *testing.T) {
		cfg := base
		cfg.KeyFiles = []string{key}
		dial(t, cfg) // a login is a Dial that returns
	})
	t.Run("the key alone is refused", func(t *testing.T) {
		bare := filepath.Join(t.TempDir(), "id_bare")
		raw, _ := os.ReadFile(key)
		os.WriteFile(bare, raw, 0o600)
		cfg := base
		cfg.KeyFiles = []string{bare}
		if _, err := sshconn.Dial(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("without its certificate the key logged in: %v", err)
		}
	})
	t.Run("CertificateFile in the ssh config", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "elsewhere-cert.pub")
		raw, _ := os.ReadFile(key + "-cert.pub")
		os.WriteFile(other, raw, 0o644)
		bare := filepath.Join(t.TempDir(), "id_plain")
		pk, _ := os.ReadFile(key)
		os.WriteFile(bare, pk, 0o600)
		cfgFile := filepath.Join(t.TempDir(), "config")
		os.WriteFile(cfgFile, []byte(fmt.Sprintf("Host %s\n  IdentityFile %s\n  CertificateFile %s\n", h.IP, bare, other)), 0o600)
		cfg := base
		cfg.UseSSHConfig, cfg.SSHConfigPath = true, cfgFile
		dial(t, cfg) // a login is a Dial that returns
	})
	t.Run("certificate in ssh-agent", func(t *testing.T) {
		keyring := agent.NewKeyring()
		if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Certificate: cert}); err != nil {
			t.Fatal(err)
		}
		t.Setenv("SSH_AUTH_SOCK", serveAgent(t, keyring))
		cfg := base
		cfg.Agent = true
		dial(t, cfg) // a login is a Dial that returns
	})
}

// IdentitiesOnly keeps the agent's other keys out: with it, a host that
// accepts only the agent's key is refused unless that key is configured.
func TestIdentitiesOnly(t *testing.T) {
	f := sshdtest.Start(t, 1, sshdtest.Options{})
	h := f.Hosts[0]
	t.Setenv("HOME", t.TempDir())
	raw, _ := os.ReadFile(f.ClientKey)
	signer, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	keyring.Add(agent.AddedKey{PrivateKey: signer})
	t.Setenv("SSH_AUTH_SOCK", serveAgent(t, keyring))
	cfgFile := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("Host only\n  HostName %s\n  Port %d\n  IdentitiesOnly yes\n  IdentityFile /nonexistent/key\nHost any\n  HostName %s\n  Port %d\n", h.IP, h.Port, h.IP, h.Port)), 0o600)
	cfg := func(name string) sshconn.Config {
		return sshconn.Config{HostName: name, User: f.User, Agent: true, UseSSHConfig: true, SSHConfigPath: cfgFile,
			KnownHostsFiles: []string{f.KnownHosts}, HostKeyCheck: sshconn.Strict}
	}
	dial(t, cfg("any"))
	if _, err := sshconn.Dial(t.Context(), cfg("only")); err == nil {
		t.Error("IdentitiesOnly: the agent's unlisted key was offered")
	}
}

// serveAgent serves keyring as an ssh-agent on a socket, for the test.
func serveAgent(t *testing.T, keyring agent.Agent) string {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	return sock
}
