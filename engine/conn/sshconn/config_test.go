package sshconn

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/testkit/require"
)

// sshGCase is one ssh_config evaluation, checked against `ssh -G`.
type sshGCase struct {
	name    string
	host    string
	o       sshOverrides
	config  string // %D is replaced by the case's folder
	include map[string]string
}

var sshGCases = []sshGCase{
	{name: "defaults", host: "plain.example.test", config: "Host other\n  User x\n"},
	{name: "first value wins, IdentityFile accumulates", host: "web1", config: `
Host web*
    HostName %h.example.test
    User deploy
    IdentityFile ~/.ssh/web_key
    IdentityFile "/keys/%r@%h"
Host web1
    User second
    Port 2201
    IdentityFile=/keys/web1
Host *
    Port 2299
    IdentityFile /keys/all
`},
	{name: "negated and case-sensitive Host patterns", host: "web1", config: `
Host * !web1
    User not-me
Host Web1
    User wrong-case
Host w?b1 db1
    User right
`},
	{name: "Match host sees HostName, originalhost the argument", host: "alias1", config: `
Host alias1
    HostName real1.example.test
Match host real1.example.test originalhost alias1
    User matched
Match host alias1
    Port 2000
Match originalhost ALIAS1
    Port 2001
`},
	{name: "Match user and localuser, negation, all", host: "db1", config: `
Host db1
    User postgres
Match user postgres !localuser nobody-at-all
    Port 5432
Match user root
    IdentityFile /keys/root-only
Match all
    IdentityFile /keys/everyone
`},
	{name: "Match exec with tokens, skipped after a failed criterion", host: "exec1", config: `
Match exec "test %h = exec1 && test %n = exec1 && test %p = 22"
    User via-exec
Match host nomatch exec "exit 0"
    Port 1111
Match !exec "false"
    IdentityFile /keys/not-false
`},
	{name: "Match final re-reads after HostName, lower-cased", host: "Mixed1", config: `
Host Mixed1
    HostName MIXED1.Example.Test
Host mixed1.example.test
    User from-final-pass
Match final host mixed1.example.test
    Port 2022
    IdentityFile /keys/final
Match canonical
    IdentityFile /keys/canonical
`},
	{name: "Include, conditional inside a block", host: "inc1", config: `
Host inc1
    Include %D/inc/*.conf
Host other
    Include %D/never.conf
Include %D/top.conf
`, include: map[string]string{
		"inc/10-a.conf": "User from-include\nHost *\n  Port 2300\n",
		"inc/20-b.conf": "IdentityFile /keys/inc-b\n",
		"never.conf":    "User never\n",
		"top.conf":      "Host inc1\n  IdentityFile /keys/top\n",
	}},
	{name: "ProxyJump and ProxyCommand: the first one wins", host: "pj1", config: `
Host pj1
    ProxyJump admin@bastion:2222,inner
    ProxyCommand nc %h %p
Host pc1
    ProxyCommand ssh -W %h:%p -q jump@bastion
    ProxyJump ignored
`},
	{name: "ProxyCommand", host: "pc1", config: `
Host pc1
    ProxyCommand ssh -W %h:%p -q jump@bastion
    ProxyJump ignored
`},
	{name: "known hosts, alias, agent, certificates", host: "kh1", config: `
Host kh1
    HostName kh1.example.test
    UserKnownHostsFile ~/.ssh/kh_%h_%p /tmp/kh2_%r
    GlobalKnownHostsFile /etc/orch_global_kh
    HashKnownHosts yes
    HostKeyAlias kh-alias
    IdentityAgent ~/agent.sock
    CertificateFile ~/.ssh/id_ed25519-cert.pub
    CertificateFile /certs/%h-cert.pub
    IdentitiesOnly yes
`},
	{name: "IdentityAgent none, flags as true/false", host: "ag1", config: `
Host ag1
    IdentityAgent none
    IdentitiesOnly true
    HashKnownHosts false
`},
	{name: "settings given directly beat the config", host: "cli1", o: sshOverrides{User: "cliuser", Port: 2345, ProxyJump: "j@cli-jump"}, config: `
Host cli1
    User cfguser
    Port 22
    ProxyJump cfg-jump
    IdentityFile /keys/cfg
`},
	{name: "key given directly comes first and keeps the config's", host: "key1", o: sshOverrides{IdentityFiles: []string{"%D/inventory_key"}}, config: `
Host key1
    IdentityFile /keys/from-config
`},
	{name: "unsupported keywords are reported", host: "u1", config: `
Host u1
    ServerAliveInterval 30
    ControlMaster auto
    User u
Host nope
    ForwardAgent yes
`},
}

// TestSSHConfigMatchesSSHG evaluates each case with orch and with OpenSSH's
// own `ssh -G HOST`, and compares every keyword orch supports.
func TestSSHConfigMatchesSSHG(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		require.Missing(t, "ssh not installed (apt-get install openssh-client)")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	// ssh expands ~ with the account's home directory, not $HOME.
	env := cfgEnv{home: u.HomeDir, localUser: u.Username, uid: u.Uid, hostname: host, warn: func(string) {}}
	for _, c := range sshGCases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "config")
			os.WriteFile(cfgPath, []byte(strings.ReplaceAll(c.config, "%D", dir)), 0o600)
			for name, content := range c.include {
				os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
				os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600)
			}
			o := c.o
			for i, k := range o.IdentityFiles {
				o.IdentityFiles[i] = strings.ReplaceAll(k, "%D", dir)
				os.WriteFile(o.IdentityFiles[i], []byte("key"), 0o600) // ssh -i ignores missing files
			}
			want := sshG(t, cfgPath, c.host, o)
			f, err := readCfgFile(cfgPath, true)
			if err != nil {
				t.Fatal(err)
			}
			s, err := resolveSSHConfig(context.Background(), []*cfgFile{f}, c.host, o, env)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{
				"hostname": s.HostName, "port": strconv.Itoa(s.Port), "user": s.User,
				"identityfile": strings.Join(s.IdentityFiles, "\n"), "certificatefile": strings.Join(s.CertificateFiles, "\n"),
				"identitiesonly": yesNo(s.IdentitiesOnly), "hashknownhosts": yesNo(s.HashKnownHosts),
				"proxyjump": s.ProxyJump, "proxycommand": s.ProxyCommand,
				"userknownhostsfile": strings.Join(s.UserKnownHostsFiles, " "), "globalknownhostsfile": strings.Join(s.GlobalKnownHostsFiles, " "),
				"identityagent": s.IdentityAgent, "hostkeyalias": s.HostKeyAlias,
			}
			for k, g := range got {
				if w := want[k]; g != w {
					t.Errorf("%s: orch %q, ssh -G %q", k, g, w)
				}
			}
			if c.name == "unsupported keywords are reported" {
				wantIgnored := []string{"ServerAliveInterval (" + cfgPath + ":3)", "ControlMaster (" + cfgPath + ":4)"}
				if !reflect.DeepEqual(s.ignored, wantIgnored) {
					t.Errorf("ignored = %q, want %q", s.ignored, wantIgnored)
				}
			}
		})
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// sshG runs ssh -G and returns the keywords orch supports; repeated
// keywords are joined with newlines.
func sshG(t *testing.T, cfgPath, host string, o sshOverrides) map[string]string {
	t.Helper()
	args := []string{"-G", "-F", cfgPath}
	if o.User != "" {
		args = append(args, "-l", o.User)
	}
	if o.Port != 0 {
		args = append(args, "-p", strconv.Itoa(o.Port))
	}
	for _, k := range o.IdentityFiles {
		args = append(args, "-i", k)
	}
	if o.ProxyJump != "" {
		args = append(args, "-J", o.ProxyJump)
	}
	if o.ProxyCommand != "" {
		args = append(args, "-o", "ProxyCommand="+o.ProxyCommand)
	}
	cmd := exec.Command("ssh", append(args, host)...)
	cmd.Env = append(os.Environ(), "SHELL=/bin/sh")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ssh %s: %v", strings.Join(args, " "), err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, " ")
		k = strings.ToLower(k)
		if !supportedKeywords[k] {
			continue
		}
		if prev, ok := m[k]; ok {
			v = prev + "\n" + v
		}
		m[k] = v
	}
	return m
}

func TestResolveHops(t *testing.T) {
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
		d.env.localUser = "me"
		return d
	}
	target := func(d *dialer) hop {
		t.Helper()
		h, err := d.targetHop()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	h := target(newD(Config{HostName: "web1"}))
	if h.host != "web1.example.test" || h.port != 22 || h.user != "deploy" || h.jump != "admin@bastion:2222,inner" ||
		!reflect.DeepEqual(h.keyFiles, []string{home + "/.ssh/web_key", "/keys/deploy@web1.example.test"}) {
		t.Errorf("from ssh config: %+v", h)
	}
	// The address is what ssh would be given: the config is evaluated for it.
	h = target(newD(Config{HostName: "web1", Address: "10.0.0.5", User: "ops", KeyFiles: []string{"/k"}, ProxyJump: "none"}))
	if h.host != "10.0.0.5" || h.port != 2200 || h.user != "ops" || h.jump != "none" || h.keysMust != 1 ||
		!slices.Equal(h.keyFiles[:1], []string{"/k"}) {
		t.Errorf("explicit: %+v", h)
	}
	// "ProxyJump admin@bastion:2222,inner": bastion first (via its own
	// ProxyJump outer), then inner, then the target.
	d := newD(Config{HostName: "web1"})
	chain, err := d.chain(target(d), 0)
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
	h, err := d.targetHop()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.chain(h, 0); err == nil {
		t.Error("no error for a ProxyJump loop")
	}
}

// A Match exec that hangs is cut off and counts as not matching; the rest
// of the file still applies.
func TestMatchExecIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	os.WriteFile(path, []byte("Match exec \"sleep 60\"\n  User hung\nHost a\n  User fine\n"), 0o600)
	f, err := readCfgFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	env := cfgEnv{home: t.TempDir(), localUser: "me", warn: func(m string) { warnings = append(warnings, m) }}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond) // stands in for MatchExecTimeout
	defer cancel()
	s, err := resolveSSHConfig(ctx, []*cfgFile{f}, "a", sshOverrides{}, env)
	if err != nil {
		t.Fatal(err)
	}
	if s.User != "fine" || len(warnings) != 1 || !strings.Contains(warnings[0], `Match exec "sleep 60" did not finish`) {
		t.Errorf("user %q, warnings %q", s.User, warnings)
	}
}

func TestSystemSSHConfigParses(t *testing.T) {
	if _, err := os.Stat("/etc/ssh/ssh_config"); err != nil {
		require.Missing(t, "no /etc/ssh/ssh_config (apt-get install openssh-client)")
	}
	f, err := readCfgFile("/etc/ssh/ssh_config", false)
	if err != nil {
		t.Fatalf("/etc/ssh/ssh_config: %v", err)
	}
	if _, err := resolveSSHConfig(context.Background(), []*cfgFile{f}, "example.test", sshOverrides{}, cfgEnv{home: "/nonexistent", warn: func(string) {}}); err != nil {
		t.Errorf("/etc/ssh/ssh_config: %v", err)
	}
}
