package pathfact

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
)

const helloSum = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" // sha256("hello\n")

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
			"81a4 root root /etc/motd\n43ed www www /srv\na1ff root root /cur\n8180 root adm /a b\n#sums\n" +
				helloSum + "  /etc/motd\n" + strings.Repeat("a", 64) + "  /a b\n#links\n/releases/7\n",
			map[string]any{
				"/etc/motd": State{Kind: "file", Mode: 0o644, Owner: "root", Group: "root", Sum: helloSum},
				"/srv":      State{Kind: "directory", Mode: 0o1755, Owner: "www", Group: "www"},
				"/cur":      State{Kind: "link", Mode: 0o777, Owner: "root", Group: "root", Target: "/releases/7"},
				"/gone":     State{Kind: "absent"},
				"/a b":      State{Kind: "file", Mode: 0o600, Owner: "root", Group: "adm", Sum: strings.Repeat("a", 64)},
			}, ""},
		{"freebsd", []string{"/usr/local/etc/nginx/nginx.conf", "/var/run/s"},
			"81a4 root wheel /usr/local/etc/nginx/nginx.conf\nc1ed root wheel /var/run/s\n#sums\n" + helloSum + " /usr/local/etc/nginx/nginx.conf\n#links\n",
			map[string]any{
				"/usr/local/etc/nginx/nginx.conf": State{Kind: "file", Mode: 0o644, Owner: "root", Group: "wheel", Sum: helloSum},
				"/var/run/s":                      State{Kind: "other", Mode: 0o755, Owner: "root", Group: "wheel"},
			}, ""},
		{"escaped gnu name", []string{`/a\b`}, "81a4 root root /a\\b\n#sums\n\\" + helloSum + "  /a\\\\b\n#links\n",
			map[string]any{`/a\b`: State{Kind: "file", Mode: 0o644, Owner: "root", Group: "root", Sum: helloSum}}, ""},
		{"missing hash", []string{"/x"}, "81a4 root root /x\n#sums\n#links\n", nil, "no hash for /x"},
		{"garbage", []string{"/x"}, "sh: stat: not found\n", nil, "unexpected output"},
		{"bad mode", []string{"/x"}, "zz root root /x\n#sums\n#links\n", nil, "unexpected mode"},
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
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
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
	user := got[keys[0]].(State).Owner
	want := map[string]any{
		keys[0]: State{Kind: "file", Mode: 0o640, Owner: user, Group: got[keys[0]].(State).Group, Sum: helloSum},
		keys[1]: State{Kind: "directory", Mode: 0o750, Owner: user, Group: got[keys[1]].(State).Group},
		keys[2]: State{Kind: "link", Mode: 0o777, Owner: user, Group: got[keys[2]].(State).Group, Target: "hello"},
		keys[3]: State{Kind: "absent"},
		keys[4]: State{Kind: "file", Mode: 0o600, Owner: user, Group: got[keys[4]].(State).Group, Sum: helloSum},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}
