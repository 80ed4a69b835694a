package inventory

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/testkit/require"
)

// TestConnectionVarsOracle checks which vars orch connects with against
// what Ansible 2.14 does with the same inventory: ansible runs a raw task
// on every host with an ssh executable that records its command line and
// fails, and each host's address, port, user, key, timeout, become user and
// ProxyCommand/ProxyJump are read from that command line.
func TestConnectionVarsOracle(t *testing.T) {
	ansible, err := exec.LookPath("ansible")
	if err != nil {
		require.Missing(t, "ansible not installed (apt-get install ansible-core)")
	}
	tmp := t.TempDir()
	fake := filepath.Join(tmp, "fakessh")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nprintf '%s\\0' \"$@\" > \"$FAKE_SSH_DIR/$$\"\nexit 255\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "calls")
	os.Mkdir(out, 0o755)
	inventoryFile, _ := filepath.Abs("testdata/conn-cases/hosts")
	cmd := exec.Command(ansible, "all", "-i", inventoryFile, "-m", "raw", "-a", "true {{ inventory_hostname }}", "--forks", "4")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "HOME="+tmp, "ANSIBLE_CONFIG="+filepath.Join(tmp, "none.cfg"),
		"ANSIBLE_SSH_EXECUTABLE="+fake, "FAKE_SSH_DIR="+out, "ANSIBLE_NOCOLOR=1", "ANSIBLE_SSH_RETRIES=0")
	output, _ := cmd.CombinedOutput() // every host is unreachable: exit 4
	calls, _ := os.ReadDir(out)

	inv := mustLoad(t, "testdata/conn-cases/hosts")
	seen := map[string]bool{}
	for _, c := range calls {
		raw, err := os.ReadFile(filepath.Join(out, c.Name()))
		if err != nil {
			t.Fatal(err)
		}
		a := parseSSHCall(strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00"))
		seen[a.name] = true
		h := mustHost(t, inv, a.name)
		want := Host{Address: a.host, Port: a.port, User: a.user, Key: a.key, ConnectTimeout: a.timeout,
			Become: a.becomeUser != "", BecomeUser: a.becomeUser, SSH: SSHArgs{ProxyCommand: a.proxyCommand, ProxyJump: a.proxyJump}}
		got := Host{Address: h.Address, Port: h.Port, User: h.User, Key: h.Key, ConnectTimeout: h.ConnectTimeout,
			Become: h.Become, BecomeUser: h.BecomeUser, SSH: SSHArgs{ProxyCommand: h.SSH.ProxyCommand, ProxyJump: h.SSH.ProxyJump}}
		if got.ConnectTimeout == 0 {
			got.ConnectTimeout = 10 * time.Second // Ansible's default, which it always passes
		}
		if got.Become && got.BecomeUser == "" {
			got.BecomeUser = "root"
		}
		if !equalHost(got, want) {
			t.Errorf("%s:\n orch    %+v\n ansible %+v", a.name, got, want)
		}
	}
	for _, h := range inv.Hosts() {
		if !seen[h.Name] {
			t.Errorf("ansible made no ssh call for %s:\n%s", h.Name, output)
		}
	}
}

func equalHost(a, b Host) bool {
	return a.Address == b.Address && a.Port == b.Port && a.User == b.User && a.Key == b.Key &&
		a.ConnectTimeout == b.ConnectTimeout && a.Become == b.Become && a.BecomeUser == b.BecomeUser &&
		a.SSH.ProxyCommand == b.SSH.ProxyCommand && a.SSH.ProxyJump == b.SSH.ProxyJump
}

type sshCall struct {
	name, host, user, key, becomeUser, proxyCommand, proxyJump string
	port                                                       int
	timeout                                                    time.Duration
}

var (
	becomeRE = regexp.MustCompile(`sudo -H -S -n +-u (\S+) `)
	nameRE   = regexp.MustCompile(`true ([^\s']+)'?$`)
)

// parseSSHCall reads the command line of Ansible's ssh connection plugin:
// options, then the host, then the remote command.
func parseSSHCall(args []string) sshCall {
	var c sshCall
	unquote := func(s string) string { return strings.Trim(s, `"`) }
	for i := 0; i < len(args); i++ {
		if args[i] != "-o" || i+1 >= len(args) {
			continue
		}
		i++
		k, v, _ := strings.Cut(args[i], "=")
		switch k {
		case "Port":
			c.port, _ = strconv.Atoi(v)
		case "User":
			c.user = unquote(v)
		case "IdentityFile":
			c.key = unquote(v)
		case "ConnectTimeout":
			n, _ := strconv.Atoi(v)
			c.timeout = time.Duration(n) * time.Second
		case "ProxyCommand":
			c.proxyCommand = v
		case "ProxyJump":
			c.proxyJump = v
		}
	}
	command := args[len(args)-1]
	c.host = args[len(args)-2]
	if m := becomeRE.FindStringSubmatch(command); m != nil {
		c.becomeUser = m[1]
	}
	if m := nameRE.FindStringSubmatch(command); m != nil {
		c.name = m[1]
	}
	return c
}
