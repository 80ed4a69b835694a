package file

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/testkit/localrun"
)

// anyText is content with every ASCII byte but NUL, quotes and
// backslashes included, multi-byte UTF-8, and no newline at the end: what
// the printf builtin must carry.
func anyText() string {
	var b strings.Builder
	for c := 1; c < 128; c++ {
		b.WriteByte(byte(c))
	}
	return b.String() + `'\''"$(x)` + "\n\nété — 日本\nend"
}

// writePlan writes each path with content and mode ("" for the default).
func writePlan(files [][3]string) string {
	var b strings.Builder
	b.WriteString("def role(h):\n")
	for _, f := range files {
		fmt.Fprintf(&b, "    file(path = %q, content = %q", f[0], f[1])
		if f[2] != "" {
			fmt.Fprintf(&b, ", mode = %q", f[2])
		}
		b.WriteString(")\n")
	}
	b.WriteString("\ndef main(ctx):\n    ctx.apply(\"all\", role)\n")
	return b.String()
}

// TestWritesExactBytesAndModes runs the module on this machine: new files
// get their exact bytes and modes whether they are created under a umask
// (plain directories), by chmod (an executable, or under a directory with
// a default ACL, which overrides the umask) or through base64 (content
// with NUL); the rerun changes nothing in one exchange.
func TestWritesExactBytesAndModes(t *testing.T) {
	setfacl, err := exec.LookPath("setfacl")
	if err != nil {
		t.Fatal("setfacl is needed (Debian package acl; scripts/install-deps installs it)")
	}
	plain := t.TempDir()
	acl := filepath.Join(t.TempDir(), "acl")
	os.Mkdir(acl, 0o755)
	if out, err := exec.Command(setfacl, "-d", "-m", "u::rwx,g::rwx,o::rwx", acl).CombinedOutput(); err != nil {
		t.Fatalf("setfacl: %v: %s", err, out)
	}
	// The premise: under that default ACL a umask does not give the mode.
	probe := filepath.Join(acl, "probe")
	if out, err := exec.Command("/bin/sh", "-c", "umask 0137; : > "+probe).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if st, _ := os.Stat(probe); st == nil || st.Mode().Perm() == 0o640 {
		t.Fatalf("a default ACL left the umask's mode: the ACL case would test nothing")
	}
	os.Remove(probe)

	text := anyText()
	cases := []struct {
		name  string
		files [][3]string // path, content, mode
		want  []os.FileMode
	}{
		{"plain", [][3]string{
			{filepath.Join(plain, "a"), text, "0640"},
			{filepath.Join(plain, "b"), "#!/bin/sh\n", "0755"},
			{filepath.Join(plain, "c"), "a\x00b", "0600"},
			{filepath.Join(plain, "d"), "", ""},
		}, []os.FileMode{0o640, 0o755, 0o600, 0o644}},
		{"default ACL", [][3]string{
			{filepath.Join(acl, "a"), text, "0640"},
			{filepath.Join(acl, "b"), "x", ""},
		}, []os.FileMode{0o640, 0o644}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := writePlan(c.files)
			s, events := localrun.MustRun(t, src, false)
			if s.TasksChanged != len(c.files) || s.Failed != 0 {
				t.Fatalf("first run: %d changed, %d hosts failed, want %d changed%s", s.TasksChanged, s.Failed, len(c.files), localrun.Tasks(events))
			}
			for i, f := range c.files {
				got, err := os.ReadFile(f[0])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, []byte(f[1])) {
					t.Errorf("%s: content %q, want %q", f[0], got, f[1])
				}
				st, _ := os.Stat(f[0])
				if st.Mode().Perm() != c.want[i] {
					t.Errorf("%s: mode %04o, want %04o", f[0], st.Mode().Perm(), c.want[i])
				}
			}
			s, events = localrun.MustRun(t, src, false)
			if s.TasksChanged != 0 || s.Exchanges != 1 {
				t.Fatalf("rerun: %d changed in %d exchanges, want 0 in 1%s", s.TasksChanged, s.Exchanges, localrun.Tasks(events))
			}
		})
	}
}
