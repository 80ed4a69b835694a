package engine

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestPinnedKeys: a machine created at an address replaces what was pinned
// there; its injected key is found by address until repin replaces it, in
// orch's file and in the run's known_hosts files, leaving other lines be.
func TestPinnedKeys(t *testing.T) {
	state := t.TempDir()
	user := filepath.Join(t.TempDir(), "known_hosts")
	r := &run{state: state, opts: Options{SSH: SSHOptions{KnownHosts: []string{user}}}}
	older, injected, other, made := newKey(t), newKey(t), newKey(t), newKey(t)
	line := func(addr string, k ssh.PublicKey) string { return knownhosts.Line([]string{addr}, k) }
	for _, l := range []string{line("198.51.100.7", older), line("198.51.100.8", other), line("198.51.100.7", injected)} {
		if err := r.pinKey(l); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(user, []byte("# mine\n"+line("198.51.100.7", injected)+"\n"+line("example.test", other)+"\n"), 0o644)

	b, _ := os.ReadFile(r.pinnedKeysFile())
	if strings.Count(string(b), "198.51.100.7 ") != 1 || strings.Contains(string(b), string(ssh.MarshalAuthorizedKey(older))[:40]) {
		t.Errorf("the earlier machine's key is still pinned:\n%s", b)
	}
	if k, ok := r.injectedKey("198.51.100.7:22"); !ok || !keysEqual(k, injected) {
		t.Fatalf("injected key of .7: %v %v", k, ok)
	}
	if err := r.repin("198.51.100.7:22", injected, made, ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.injectedKey("198.51.100.7:22"); ok {
		t.Error("still marked injected after repin")
	}
	if _, ok := r.injectedKey("198.51.100.8:22"); !ok {
		t.Error("another machine's injected key was touched")
	}
	b, _ = os.ReadFile(r.pinnedKeysFile())
	if !strings.Contains(string(b), line("198.51.100.7", made)+"\n") {
		t.Errorf("new key not pinned:\n%s", b)
	}
	u, _ := os.ReadFile(user)
	if want := "# mine\n" + line("198.51.100.7", made) + "\n" + line("example.test", other) + "\n"; string(u) != want {
		t.Errorf("run's known_hosts:\n%s\nwant:\n%s", u, want)
	}
	if fi, _ := os.Stat(user); fi.Mode().Perm() != 0o644 {
		t.Errorf("known_hosts mode %v", fi.Mode().Perm())
	}
}

func keysEqual(a, b ssh.PublicKey) bool { return string(a.Marshal()) == string(b.Marshal()) }
