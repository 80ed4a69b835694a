package pathfact

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
)

const helloSum = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" // sha256("hello\n")

// gnuACL is an "#acl" section from GNU ls: directories without ACLs.
const gnuACL = "#acl\ndrwxr-xr-x 2 root root 4096 Dec  1 16:07 /etc\ndrwxr-xr-x 2 root root 4096 Dec  1 16:07 /\n"

// TestParseCaptured reads output captured from GNU coreutils and FreeBSD
// (stat -f '%Xp %Su %Sg %N', sha256 -r).
func TestParseCaptured(t *testing.T) {
	cases := []struct {
		name string
		keys []string
		out  string
		want map[string]any
		err  string
	}{
		{"gnu", []string{"/etc/motd", "/srv", "/cur", "/gone", "/a b"},
			"#stat\n81a4 0 0 root root /etc/motd\n43ed 33 33 www www /srv\na1ff 0 0 root root /cur\n8180 0 4 root adm /a b\n" +
				"#absent\n/gone\n#sums\n" + helloSum + "  /etc/motd\n" + strings.Repeat("a", 64) + "  /a b\n#links\n/cur\n/releases/7\n" + gnuACL,
			map[string]any{
				"/etc/motd": State{Kind: "file", Mode: 0o644, Owner: "root", Group: "root", Sum: helloSum},
				"/srv":      State{Kind: "directory", Mode: 0o1755, UID: 33, GID: 33, Owner: "www", Group: "www"},
				"/cur":      State{Kind: "link", Mode: 0o777, Owner: "root", Group: "root", Target: "/releases/7"},
				"/gone":     State{Kind: "absent"},
				"/a b":      State{Kind: "file", Mode: 0o600, GID: 4, Owner: "root", Group: "adm", Sum: strings.Repeat("a", 64)},
			}, ""},
		{"freebsd", []string{"/usr/local/etc/nginx/nginx.conf", "/var/run/s"},
			"#stat\n81a4 0 0 root wheel /usr/local/etc/nginx/nginx.conf\nc1ed 0 0 root wheel /var/run/s\n#absent\n#sums\n" + helloSum + " /usr/local/etc/nginx/nginx.conf\n#links\n#acl\ndrwxr-xr-x  23 root wheel 47 Nov 28 09:12 /usr/local/etc/nginx\ndrwxr-xr-x  17 root wheel 19 Nov 28 09:12 /var/run\n",
			map[string]any{
				"/usr/local/etc/nginx/nginx.conf": State{Kind: "file", Mode: 0o644, Owner: "root", Group: "wheel", Sum: helloSum},
				"/var/run/s":                      State{Kind: "other", Mode: 0o755, Owner: "root", Group: "wheel"},
			}, ""},
		{"openssl", []string{"/x"}, "#stat\n81a4 0 0 root root /x\n#absent\n#sums\n" + helloSum + " */x\n#links\n" + gnuACL,
			map[string]any{"/x": State{Kind: "file", Mode: 0o644, Owner: "root", Group: "root", Sum: helloSum}}, ""},
		{"owner without a name", []string{"/x"}, "#stat\n81a4 1234 1234 UNKNOWN UNKNOWN /x\n#absent\n#sums\n" + helloSum + "  /x\n#links\n" + gnuACL,
			map[string]any{"/x": State{Kind: "file", Mode: 0o644, UID: 1234, GID: 1234, Owner: "UNKNOWN", Group: "UNKNOWN", Sum: helloSum}}, ""},
		{"escaped gnu name", []string{`/a\b`}, "#stat\n81a4 0 0 root root /a\\b\n#absent\n#sums\n\\" + helloSum + "  /a\\\\b\n#links\n" + gnuACL,
			map[string]any{`/a\b`: State{Kind: "file", Mode: 0o644, Owner: "root", Group: "root", Sum: helloSum}}, ""},
		{"unreadable", []string{"/secret/x"}, "#stat\n#absent\n#sums\n#links\n" + gnuACL, nil, "could not read /secret/x"},
		{"missing hash", []string{"/x"}, "#stat\n81a4 0 0 root root /x\n#absent\n#sums\n#links\n" + gnuACL, nil, "no hash for /x"},
		{"hash for another path", []string{"/x"}, "#stat\n81a4 0 0 root root /x\n#absent\n#sums\n" + helloSum + "  /y\n#links\n" + gnuACL, nil, "not a regular file"},
		{"garbage", []string{"/x"}, "sh: stat: not found\n", nil, "unexpected output"},
		{"truncated", []string{"/x"}, "#stat\n81a4 0 0 root root /x\n#absent\n", nil, "ends before #sums"},
		{"bad mode", []string{"/x"}, "#stat\nzz 0 0 root root /x\n#absent\n#sums\n#links\n" + gnuACL, nil, "unexpected stat line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := fact{}.Parse([]byte(c.out), c.keys)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range got {
				if !v.(State).UmaskApplies {
					t.Errorf("%s: UmaskApplies = false without an ACL", k)
				}
			}
			if !reflect.DeepEqual(withoutStat(got), c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestParseACL: a directory with an ACL (a default ACL overrides the umask),
// an ls that may not show ACLs, or one that listed nothing, turn the umask
// off for all of the host's paths; an SELinux context alone does not.
func TestParseACL(t *testing.T) {
	out := func(acl string) string {
		return "#stat\n81a4 0 0 root root /srv/a/x\n#absent\n/etc/y\n#sums\n" + helloSum + "  /srv/a/x\n#links\n#acl\n" + acl
	}
	cases := []struct {
		name, acl string
		want      bool
	}{
		{"none", "drwxr-xr-x 2 root root 4096 Dec  1 16:07 /etc\ndrwxr-xr-x 2 root root 4096 Dec  1 16:07 /srv/a\n", true},
		{"selinux context", "drwxr-xr-x. 2 root root 4096 Dec  1 16:07 /etc\n", true},
		{"freebsd acl", "drwxr-xr-x  2 root wheel 2 Dec  1 16:07 /etc\ndrwxrwxr-x+ 2 root wheel 2 Dec  1 16:07 /srv/a\n", false},
		{"busybox or failed ls", "drwxr-xr-x 2 root root 4096 Dec  1 16:07 /etc\n?\n", false},
		{"nothing listed", "", false},
	}
	for _, c := range cases {
		got, err := fact{}.Parse([]byte(out(c.acl)), []string{"/srv/a/x", "/etc/y"})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for k, v := range got {
			if v.(State).UmaskApplies != c.want {
				t.Errorf("%s: %s: UmaskApplies = %v, want %v", c.name, k, !c.want, c.want)
			}
		}
	}
}

// TestScriptOnThisMachine runs the fact's script with the real stat and
// sha256sum, for many paths at once.
func TestScriptOnThisMachine(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hello\n"), 0o640)
	os.Mkdir(filepath.Join(dir, "d"), 0o750)
	os.Symlink("hello", filepath.Join(dir, "link"))
	os.WriteFile(filepath.Join(dir, "it's"), []byte("hello\n"), 0o600)
	keys := []string{filepath.Join(dir, "hello"), filepath.Join(dir, "d"), filepath.Join(dir, "link"), filepath.Join(dir, "nope"), filepath.Join(dir, "it's")}
	for i := range 600 { // more than one chunk of paths
		keys = append(keys, filepath.Join(dir, fmt.Sprintf("missing-%d", i)))
	}
	cmd := exec.Command("/bin/sh", "-s")
	cmd.Stdin = strings.NewReader(modules.Prelude + fact{}.Script(keys))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := fact{}.Parse(out, keys)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for k, v := range got { // no ACL under the test's temporary directory
		if !v.(State).UmaskApplies {
			t.Fatalf("%s: UmaskApplies = false without an ACL:\n%s", k, out)
		}
	}
	me := got[keys[0]].(State)
	if me.UID != os.Getuid() || me.GID != os.Getgid() {
		t.Errorf("owner %d:%d, want %d:%d", me.UID, me.GID, os.Getuid(), os.Getgid())
	}
	own := func(s State) State { s.UID, s.GID, s.Owner, s.Group = me.UID, me.GID, me.Owner, me.Group; return s }
	want := map[string]any{
		keys[0]: own(State{Kind: "file", Mode: 0o640, Sum: helloSum}),
		keys[1]: own(State{Kind: "directory", Mode: 0o750}),
		keys[2]: own(State{Kind: "link", Mode: 0o777, Target: "hello"}),
		keys[3]: State{Kind: "absent"},
		keys[4]: own(State{Kind: "file", Mode: 0o600, Sum: helloSum}),
	}
	for i := 5; i < len(keys); i++ {
		want[keys[i]] = State{Kind: "absent"}
	}
	if !reflect.DeepEqual(withoutStat(got), want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// withoutStat drops the raw stat lines the states keep for Recheck.
func withoutStat(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		st := v.(State)
		st.stat, st.UmaskApplies = "", false
		out[k] = st
	}
	return out
}

// TestRecheck: the recheck holds on the state the fact read, and fails once
// the content, the mode, a link's target or the path's existence changes.
func TestRecheck(t *testing.T) {
	dir := t.TempDir()
	file, link, gone := filepath.Join(dir, "f"), filepath.Join(dir, "l"), filepath.Join(dir, "gone")
	os.WriteFile(file, []byte("hello\n"), 0o644)
	os.Symlink("f", link)
	keys := []string{file, link, gone}
	read := func() map[string]any {
		out, err := exec.Command("/bin/sh", "-c", modules.Prelude+fact{}.Script(keys)).Output()
		if err != nil {
			t.Fatal(err)
		}
		vals, err := fact{}.Parse(out, keys)
		if err != nil {
			t.Fatal(err)
		}
		return vals
	}
	holds := func(path string, v any) bool {
		return exec.Command("/bin/sh", "-c", modules.Prelude+fact{}.Recheck(path, v)).Run() == nil
	}
	vals := read()
	for _, k := range keys {
		if !holds(k, vals[k]) {
			t.Fatalf("recheck of unchanged %s fails", k)
		}
	}
	for _, change := range []struct {
		path string
		do   func()
	}{
		{file, func() { os.WriteFile(file, []byte("hullo\n"), 0o644) }},
		{file, func() { os.Chmod(file, 0o600) }},
		{link, func() { os.Remove(link); os.Symlink("other", link) }},
		{gone, func() { os.WriteFile(gone, nil, 0o644) }},
	} {
		vals := read()
		change.do()
		if holds(change.path, vals[change.path]) {
			t.Errorf("recheck of %s holds after it changed", change.path)
		}
	}
}
