package lab_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/digitalocean"
	"github.com/orch-dev/orch/modules/linode"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/plan"
)

// runLabPlan runs a plan against the lab cloud with strict host keys: the
// lab's known_hosts, and the keys orch pins in state.
func runLabPlan(t *testing.T, src, state string) []engine.Event {
	t.Helper()
	l := needLab(t)
	env := l.Env()
	endpoints := map[string]modules.Endpoint{
		linode.Provider:       {Token: env[linode.TokenEnv], URL: env[linode.URLEnv]},
		digitalocean.Provider: {Token: env[digitalocean.TokenEnv], URL: env[digitalocean.URLEnv]},
	}
	path := filepath.Join(t.TempDir(), "plan.star")
	os.WriteFile(path, []byte(src), 0o644)
	p, err := plan.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var events []engine.Event
	_, err = engine.Run(context.Background(), p, inventory.New(), engine.Options{StateDir: state, Endpoints: endpoints,
		SSH:     engine.SSHOptions{KnownHosts: []string{l.KnownHostsPath()}, HostKeyCheck: "strict", NoSSHConfig: true, IdentityFiles: []string{l.KeyPath()}},
		OnEvent: func(e engine.Event) { events = append(events, e) }})
	if err != nil {
		t.Fatalf("plan failed: %v\n%s", err, src)
	}
	return events
}

// keysFor lists the keys a known_hosts file holds for addr, with their
// comments.
func keysFor(t *testing.T, path, addr string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		host, rest, ok := strings.Cut(line, " ")
		if !ok || host != addr {
			continue
		}
		key, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(rest))
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		out[ssh.FingerprintSHA256(key)] = comment
	}
	return out
}

// TestInjectedHostKeyReplaced: a Linode that orch creates in the lab cloud
// boots with the host key orch put in its user data (which the cloud's
// metadata would show to anyone on the machine). The first verified
// connection replaces it with a key made on the machine and pins that; the
// injected key is then trusted nowhere and is gone from the machine, and
// later runs connect strictly with the new key.
func TestInjectedHostKeyReplaced(t *testing.T) {
	l := needLab(t)
	state := t.TempDir()
	t.Cleanup(func() {
		runLabPlan(t, `
def main(ctx):
    linode.delete(linode.instances(label = "rekey1"))
`, t.TempDir())
	})
	events := runLabPlan(t, `
def main(ctx):
    made = linode.create(labels = ["rekey1"], region = "lab", type = "g6-nanode-1", image = "linode/debian12", tags = ["rekey"])
    ctx.apply(made, lambda h: file(path = "/root/rekeyed", content = "yes\n"))
    print("address", made[0].address)
`, state)
	var addr, msg string
	var rotated engine.Event
	for _, e := range events {
		switch {
		case e.Event == "print" && strings.HasPrefix(e.Msg, "address "):
			addr = strings.TrimPrefix(e.Msg, "address ")
		case e.Event == "host_key":
			rotated, msg = e, e.Msg
		}
	}
	fps := strings.Fields(strings.NewReplacer("(", " ", ")", " ", ",", " ").Replace(msg))
	var injected, made string
	for _, f := range fps {
		if strings.HasPrefix(f, "SHA256:") {
			if injected == "" {
				injected = f
			} else {
				made = f
			}
		}
	}
	if rotated.Host != "rekey1" || injected == "" || made == "" || injected == made {
		for _, e := range events {
			t.Logf("%s %s %s %s", e.Event, e.Host, e.Status, e.Msg)
		}
		t.Fatalf("no host key replacement reported: %+v", rotated)
	}

	pinned := keysFor(t, filepath.Join(state, "known_hosts"), addr)
	if len(pinned) != 1 || pinned[made] != "" {
		t.Errorf("pinned for %s: %v, want only %s, unmarked", addr, pinned, made)
	}
	labKnown := keysFor(t, l.KnownHostsPath(), addr)
	if _, ok := labKnown[injected]; ok || len(labKnown) != 1 {
		t.Errorf("the lab's known_hosts for %s: %v, want %s instead of the injected %s", addr, labKnown, made, injected)
	}

	// On the machine: sshd's key is the new one, and the injected one kept
	// aside during the swap is gone.
	served := runLabPlan(t, `
def main(ctx):
    ctx.apply(linode.instances(label = "rekey1"), lambda h: command("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub >&2; ls /etc/ssh >&2; exit 1"), max_fail = 1)
`, state)
	var out string
	for _, e := range served {
		if e.Event == "host_key" {
			t.Errorf("a second run replaced the key again: %s", e.Msg)
		}
		if e.Event == "task" && e.Host == "rekey1" {
			out = e.Output
		}
	}
	if !strings.Contains(out, made) || strings.Contains(out, injected) || strings.Contains(out, "orch-old") || strings.Contains(out, "orch-new") {
		t.Errorf("on the machine:\n%s\nwant key %s only, nothing kept aside", out, made)
	}
}
