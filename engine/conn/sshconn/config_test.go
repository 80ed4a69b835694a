package sshconn

import (
	"github.com/orch-dev/orch/testkit/require"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestResolve(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfgFile := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfgFile, []byte(`
Host web*
    HostName %h.example.test
    User deploy
    IdentityFile ~/.ssh/web_key
    IdentityFile "/keys/%r@%h"
    ProxyJump admin@bastion:2222,inner

Host 10.0.0.*
    Port 2200

Host inner
    HostName 192.0.2.7
    ProxyJump none

Host bastion
    ProxyJump outer
`), 0o600)

	newD := func(c Config) *dialer {
		t.Helper()
		c.UseSSHConfig, c.SSHConfigPath = true, cfgFile
		d, err := newDialer(c)
		if err != nil {
			t.Fatal(err)
		}
		d.local = "me"
		return d
	}

	h := newD(Config{HostName: "web1"}).targetHop()
	want := hop{name: "web1", host: "web1.example.test", port: 22, user: "deploy",
		keyFiles: []string{home + "/.ssh/web_key", "/keys/deploy@web1.example.test"},
		jump:     "admin@bastion:2222,inner"}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("from ssh config:\n got %+v\nwant %+v", h, want)
	}

	// Explicit values win; the address is matched as a second alias.
	h = newD(Config{HostName: "web1", Address: "10.0.0.5", User: "ops", KeyFiles: []string{"/k"}, ProxyJump: "none"}).targetHop()
	want = hop{name: "web1", host: "10.0.0.5", port: 2200, user: "ops", keyFiles: []string{"/k"}, keysMust: true, jump: "none"}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("explicit:\n got %+v\nwant %+v", h, want)
	}

	// Defaults, without any ssh config.
	d, _ := newDialer(Config{HostName: "db1"})
	d.local = "me"
	h = d.targetHop()
	if h.host != "db1" || h.port != 22 || h.user != "me" || len(h.keyFiles) != 3 || h.keysMust {
		t.Errorf("defaults: %+v", h)
	}

	// "ProxyJump admin@bastion:2222,inner": bastion first (via its own
	// ProxyJump outer), then inner, then the target.
	d = newD(Config{HostName: "web1"})
	chain, err := d.chain(d.targetHop(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range chain {
		got = append(got, h.user+"@"+h.addr())
	}
	wantChain := []string{"me@outer:22", "admin@bastion:2222", "me@192.0.2.7:22", "deploy@web1.example.test:22"}
	if !reflect.DeepEqual(got, wantChain) {
		t.Errorf("chain %q, want %q", got, wantChain)
	}
}

func TestProxyJumpLoop(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfgFile, []byte("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n"), 0o600)
	d, _ := newDialer(Config{HostName: "a", UseSSHConfig: true, SSHConfigPath: cfgFile})
	if _, err := d.chain(d.targetHop(), 0); err == nil {
		t.Error("no error for a ProxyJump loop")
	}
}

func TestBadSSHConfigWarns(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfgFile, []byte("Match exec \"true\"\n  User x\n"), 0o600)
	var warnings []string
	d, err := newDialer(Config{HostName: "a", UseSSHConfig: true, SSHConfigPath: cfgFile, Warn: func(m string) { warnings = append(warnings, m) }})
	if err != nil || len(warnings) != 1 || len(d.configs) != 0 {
		t.Errorf("err %v, warnings %q", err, warnings)
	}
}

func TestSystemSSHConfigParses(t *testing.T) {
	if _, err := os.Stat("/etc/ssh/ssh_config"); err != nil {
		require.Missing(t, "no /etc/ssh/ssh_config (apt-get install openssh-client)")
	}
	if _, err := loadSSHConfig("/etc/ssh/ssh_config"); err != nil {
		t.Errorf("/etc/ssh/ssh_config: %v", err)
	}
}
