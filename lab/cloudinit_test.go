package lab

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestParseUserData(t *testing.T) {
	data := `#cloud-config
write_files:
  - path: /etc/a.conf
    content: "a\n"
  - path: /etc/b.conf
    content: ` + base64.StdEncoding.EncodeToString([]byte("bee")) + `
    encoding: b64
    permissions: "0600"
    owner: www-data:www-data
  - path: /etc/c.conf
    content: !!binary ` + base64.StdEncoding.EncodeToString(gz("sea")) + `
    encoding: gzip
    permissions: 0755
    append: true
    defer: true
runcmd:
  - echo "one two" > /tmp/x
  - [touch, "/tmp/it's"]
ssh_keys:
  ed25519_private: |
    PRIVATE
  ed25519_public: ssh-ed25519 AAAA root@x
  dsa_private: old
ssh_authorized_keys:
  - ssh-ed25519 BBBB user@y
users: [default]
`
	s, err := parseUserData([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []seedFile{
		{path: "/etc/a.conf", data: []byte("a\n"), mode: 0o644},
		{path: "/etc/b.conf", data: []byte("bee"), mode: 0o600, owner: "www-data:www-data"},
		{path: "/etc/c.conf", data: []byte("sea"), mode: 0o755, append: true},
	}
	if len(s.files) != len(want) {
		t.Fatalf("files: %+v", s.files)
	}
	for i, f := range s.files {
		w := want[i]
		if f.path != w.path || !bytes.Equal(f.data, w.data) || f.mode != w.mode || f.owner != w.owner || f.append != w.append {
			t.Errorf("file %d = %+v, want %+v", i, f, w)
		}
	}
	if want := []string{`echo "one two" > /tmp/x`, `touch '/tmp/it'\''s'`}; !slices.Equal(s.runcmd, want) {
		t.Errorf("runcmd = %q, want %q", s.runcmd, want)
	}
	if string(s.hostKeys["ssh_host_ed25519_key"]) != "PRIVATE\n" || string(s.hostKeys["ssh_host_ed25519_key.pub"]) != "ssh-ed25519 AAAA root@x\n" {
		t.Errorf("host keys = %q", s.hostKeys)
	}
	if !slices.Equal(s.authorizedKeys, []string{"ssh-ed25519 BBBB user@y"}) {
		t.Errorf("authorized keys = %q", s.authorizedKeys)
	}
	if want := []string{"users", "ssh_keys.dsa_private"}; !slices.Equal(s.ignored, want) {
		t.Errorf("ignored = %q, want %q", s.ignored, want)
	}

	boot := s.bootScript()
	for _, want := range []string{
		"cat /etc/orch-lab/files/0 > /etc/a.conf && chmod 0644 /etc/a.conf",
		"chown www-data:www-data /etc/b.conf",
		"cat /etc/orch-lab/files/2 >> /etc/c.conf && chmod 0755",
		"/bin/sh /etc/orch-lab/runcmd.sh",
		"unsupported cloud-init keys ignored: users, ssh_keys.dsa_private",
	} {
		if !strings.Contains(boot, want) {
			t.Errorf("boot script lacks %q:\n%s", want, boot)
		}
	}
}

func TestParseUserDataForms(t *testing.T) {
	for _, c := range []struct {
		name, data string
		err        string
	}{
		{"empty", "", ""},
		{"script", "#!/bin/sh\necho hi\n", ""},
		{"gzipped", string(gz("#cloud-config\nruncmd: [ls]\n")), ""},
		{"mime", "Content-Type: multipart/mixed\n", "MIME"},
		{"plain text", "hello", "#cloud-config and #! scripts only"},
		{"bad yaml", "#cloud-config\nwrite_files: {", "user data"},
		{"relative path", "#cloud-config\nwrite_files: [{path: etc/x}]\n", "not absolute"},
		{"bad mode", "#cloud-config\nwrite_files: [{path: /x, permissions: rw}]\n", "octal"},
		{"bad encoding", "#cloud-config\nwrite_files: [{path: /x, encoding: rot13}]\n", "rot13"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := parseUserData([]byte(c.data))
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.name == "script" && string(s.script) != c.data {
					t.Errorf("script = %q", s.script)
				}
				if c.name == "gzipped" && !slices.Equal(s.runcmd, []string{"ls"}) {
					t.Errorf("runcmd = %q", s.runcmd)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("err = %v, want it to mention %q", err, c.err)
			}
		})
	}
}

func TestSeedTarball(t *testing.T) {
	s := &seed{
		hostKeys:       map[string][]byte{"ssh_host_ed25519_key": []byte("k"), "ssh_host_ed25519_key.pub": []byte("p")},
		authorizedKeys: []string{"ssh-ed25519 AAAA lab"},
		files:          []seedFile{{path: "/etc/x", data: []byte("x"), mode: 0o644}},
		userKeys:       []string{"ssh-ed25519 AAAA lab"},
		aptProxy:       "http://172.30.0.5:3142/",
		runcmd:         []string{"true"},
		services:       []string{"named"},
	}
	data, err := s.tarball()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	content := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h.Mode
		b, _ := io.ReadAll(tr)
		content[h.Name] = string(b)
	}
	for name, mode := range map[string]int64{
		"usr/local/lib/orch-lab/init.sh":      0o755,
		"etc/orch-lab/boot.sh":                0o700,
		"etc/orch-lab/user-keys":              0o600,
		"etc/apt/apt.conf.d/01orch-lab-proxy": 0o644,
		"etc/orch-lab/files/0":                0o600,
		"etc/orch-lab/runcmd.sh":              0o700,
		"root/.ssh/":                          0o700,
		"root/.ssh/authorized_keys":           0o600,
		"etc/ssh/ssh_host_ed25519_key":        0o600,
		"etc/ssh/ssh_host_ed25519_key.pub":    0o644,
	} {
		if m, ok := got[name]; !ok || m != mode {
			t.Errorf("%s: mode %o (present %v), want %o", name, m, ok, mode)
		}
	}
	if got := content["etc/apt/apt.conf.d/01orch-lab-proxy"]; !strings.Contains(got, `Acquire::http::Proxy "http://172.30.0.5:3142/";`) {
		t.Errorf("apt proxy config: %q", got)
	}
	boot := content["etc/orch-lab/boot.sh"]
	for _, want := range []string{
		"update-rc.d named enable",
		"install -m 0600 -o deploy -g deploy /etc/orch-lab/user-keys /home/deploy/.ssh/authorized_keys",
		"install -m 0600 -o deploy-pw -g deploy-pw /etc/orch-lab/user-keys /home/deploy-pw/.ssh/authorized_keys",
	} {
		if !strings.Contains(boot, want) {
			t.Errorf("boot.sh lacks %q:\n%s", want, boot)
		}
	}
}

func TestKnownHosts(t *testing.T) {
	dir := t.TempDir()
	k1, err := ensureKey(filepath.Join(dir, "k1"), "one")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ensureKey(filepath.Join(dir, "k2"), "two")
	if err != nil {
		t.Fatal(err)
	}
	again, err := ensureKey(filepath.Join(dir, "k1"), "one")
	if err != nil || !bytes.Equal(again.PublicKey().Marshal(), k1.PublicKey().Marshal()) {
		t.Fatalf("ensureKey did not reuse the saved key: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "k1")); fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", fi.Mode())
	}
	steps := []struct {
		addr string
		keys []ssh.PublicKey
		want string
	}{
		{"10.0.0.1", []ssh.PublicKey{k1.PublicKey()}, "10.0.0.1 K1\n"},
		{"10.0.0.2", []ssh.PublicKey{k2.PublicKey()}, "10.0.0.1 K1\n10.0.0.2 K2\n"},
		{"10.0.0.1", []ssh.PublicKey{k2.PublicKey()}, "10.0.0.2 K2\n10.0.0.1 K2\n"},
		{"10.0.0.10", nil, "10.0.0.2 K2\n10.0.0.1 K2\n"}, // a prefix of another address is another address
		{"10.0.0.2", nil, "10.0.0.1 K2\n"},
	}
	name := func(k ssh.PublicKey) string {
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	}
	for i, s := range steps {
		if err := setKnownHosts(dir, s.addr, s.keys); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(filepath.Join(dir, knownHostsFile))
		want := strings.NewReplacer("K1", name(k1.PublicKey()), "K2", name(k2.PublicKey())).Replace(s.want)
		if string(data) != want {
			t.Errorf("step %d: known_hosts =\n%s\nwant\n%s", i, data, want)
		}
	}
}
