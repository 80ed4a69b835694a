package file

import (
	"github.com/orch-dev/orch/testkit/require"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/pathfact"
	"github.com/orch-dev/orch/testkit/moduletest"
)

func str(s string) *string { return &s }

var planFiles = fstest.MapFS{
	"site/index.html": {Data: []byte("<h1>static</h1>\n")},
	"motd.tmpl":       {Data: []byte("{{.greeting}} on {{.host.name}} ({{.role}})\n")},
	"bad.tmpl":        {Data: []byte("{{.missing}}\n")},
}

func env() *modules.Env {
	return &modules.Env{
		Files: planFiles,
		Host:  &inventory.Host{Name: "web1", Address: "10.0.0.1", Vars: map[string]any{"role": "frontend"}},
	}
}

func newFile(t *testing.T, f *File) *File {
	t.Helper()
	if f.State == "" {
		f.State = "file"
	}
	moduletest.Validate(t, f, env())
	return f
}

func TestApplyTwice(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]*File{
		"content":     {Path: dir + "/a.txt", Content: str("hello\n")},
		"empty":       {Path: dir + "/empty", Content: str("")},
		"no newline":  {Path: dir + "/nonl", Content: str("x")},
		"binary":      {Path: dir + "/bin", Content: str("\x00\x01\xff\n")},
		"mode":        {Path: dir + "/m.sh", Content: str("#!/bin/sh\n"), Mode: "0750"},
		"src":         {Path: dir + "/index.html", Src: "site/index.html"},
		"template":    {Path: dir + "/motd", Template: "motd.tmpl", Vars: map[string]any{"greeting": "hi"}},
		"directory":   {Path: dir + "/d/e", State: "directory", Mode: "0700"},
		"link":        {Path: dir + "/l", State: "link", Target: "/etc/hostname"},
		"quoted path": {Path: dir + "/it's a file", Content: str("quote ' \" $HOME `x`\n")},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			moduletest.ApplyTwice(t, newFile(t, f))
		})
	}
	got, _ := os.ReadFile(dir + "/motd")
	if string(got) != "hi on web1 (frontend)\n" {
		t.Errorf("template rendered %q", got)
	}
	if fi, _ := os.Stat(dir + "/m.sh"); fi.Mode().Perm() != 0o750 {
		t.Errorf("mode = %v, want 0750", fi.Mode().Perm())
	}
	if got, _ := os.ReadFile(dir + "/it's a file"); string(got) != "quote ' \" $HOME `x`\n" {
		t.Errorf("quoted content = %q", got)
	}
	if target, _ := os.Readlink(dir + "/l"); target != "/etc/hostname" {
		t.Errorf("link target = %q", target)
	}
}

// TestRelinkBetweenDirectories is the blue/green switch of a "current"
// link from one release directory to the next.
func TestRelinkBetweenDirectories(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []string{"r1", "r2"} {
		os.Mkdir(filepath.Join(dir, r), 0o755)
	}
	cur := filepath.Join(dir, "current")
	moduletest.ApplyTwice(t, newFile(t, &File{Path: cur, State: "link", Target: filepath.Join(dir, "r1")}))
	moduletest.ApplyTwice(t, newFile(t, &File{Path: cur, State: "link", Target: filepath.Join(dir, "r2")}))
	if target, _ := os.Readlink(cur); target != filepath.Join(dir, "r2") {
		t.Errorf("current -> %q, want r2", target)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "r1")); len(entries) != 0 {
		t.Errorf("the new link landed inside the old target: %v", entries)
	}
}

func TestAbsentTwice(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/gone", []byte("x"), 0o644)
	moduletest.ApplyTwice(t, newFile(t, &File{Path: dir + "/gone", State: "absent"}))
	if _, err := os.Stat(dir + "/gone"); !os.IsNotExist(err) {
		t.Errorf("file still exists: %v", err)
	}
}

func TestRepairsTamperedFile(t *testing.T) {
	dir := t.TempDir()
	f := newFile(t, &File{Path: dir + "/conf", Content: str("a = 1\n"), Mode: "0640"})
	moduletest.ApplyTwice(t, f)
	os.WriteFile(dir+"/conf", []byte("a = 2\n"), 0o640)
	if res := moduletest.Converge(t, f); !res.Changed || !strings.HasPrefix(res.Check.Reason, "update ") {
		t.Fatalf("tampered content not repaired: %+v", res.Check)
	}
	os.Chmod(dir+"/conf", 0o666)
	if res := moduletest.Converge(t, f); !res.Changed || !strings.Contains(res.Check.Reason, "mode 0666 -> 0640") {
		t.Fatalf("tampered mode not repaired: %+v", res.Check)
	}
	if got, _ := os.ReadFile(dir + "/conf"); string(got) != "a = 1\n" {
		t.Errorf("content = %q", got)
	}
	if res := moduletest.Converge(t, f); res.Changed {
		t.Fatalf("third run changed: %+v", res.Check)
	}
}

func TestRewriteKeepsModeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/k", []byte("old\n"), 0o600)
	moduletest.ApplyTwice(t, newFile(t, &File{Path: dir + "/k", Content: str("new\n")}))
	fi, _ := os.Stat(dir + "/k")
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("rewrite changed mode to %v", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temp files)", len(entries))
	}
}

func TestOwnerChange(t *testing.T) {
	if os.Geteuid() != 0 {
		require.Missing(t, "changing owners needs root")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "owned")
	os.WriteFile(path, []byte("x\n"), 0o644)
	moduletest.ApplyTwice(t, newFile(t, &File{Path: path, Content: str("x\n"), Owner: "nobody", Group: "nogroup"}))
}

func TestCheckModeChangesNothing(t *testing.T) {
	dir := t.TempDir()
	f := newFile(t, &File{Path: dir + "/new", Content: str("x\n")})
	resp := moduletest.Check(t, f, true)
	if !resp.Changed || resp.Apply == "" {
		t.Fatalf("check of a missing file: %+v", resp)
	}
	if _, err := os.Stat(dir + "/new"); !os.IsNotExist(err) {
		t.Fatalf("check created the file")
	}
}

func TestDiff(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/c", []byte("one\ntwo\nthree\n"), 0o644)
	f := newFile(t, &File{Path: dir + "/c", Content: str("one\n2\nthree\n")})
	resp := moduletest.Check(t, f, true)
	for _, want := range []string{"--- " + dir + "/c", "+++ " + dir + "/c", "-two\n", "+2\n", " one\n"} {
		if !strings.Contains(resp.Diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, resp.Diff)
		}
	}
}

func TestSecretNeverInDiff(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/s", []byte("old-password\n"), 0o600)
	f := newFile(t, &File{Path: dir + "/s", Content: str("hunter2\n"), Secret: true})
	if probe := f.Probe(modules.ProbeRequest{Diff: true}); probe != "" {
		t.Errorf("a secret file's probe fetches its old content")
	}
	resp := moduletest.Check(t, f, true)
	if strings.Contains(resp.Diff, "hunter2") || strings.Contains(resp.Diff, "old-password") || strings.Contains(resp.Reason, "hunter2") {
		t.Fatalf("secret leaked: %q %q", resp.Diff, resp.Reason)
	}
	if !strings.Contains(resp.Diff, "secret") {
		t.Errorf("diff does not say the content is hidden: %q", resp.Diff)
	}
}

func TestValidateErrors(t *testing.T) {
	cases := []struct {
		f    File
		want string
	}{
		{File{Path: "relative", State: "file"}, "must be absolute"},
		{File{Path: "/a/../b", State: "file"}, "must be absolute and clean"},
		{File{Path: "/a\nb", State: "file"}, "without newlines"},
		{File{Path: "/x", State: "file", Mode: "rw-r--r--"}, "not an octal permission"},
		{File{Path: "/x", State: "file", Content: str("a"), Src: "site/index.html"}, "only one of"},
		{File{Path: "/x", State: "directory", Content: str("a")}, "need state=\"file\""},
		{File{Path: "/x", State: "fiel"}, "is not one of"},
		{File{Path: "/x", State: "link"}, "needs a target"},
		{File{Path: "/x", State: "file", Src: "nope"}, "src: open nope"},
		{File{Path: "/x", State: "file", Template: "bad.tmpl"}, "map has no entry for key \"missing\""},
		{File{Path: "/x", State: "file", Src: "../etc/passwd"}, "src:"},
	}
	for _, c := range cases {
		err := c.f.Validate(env())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want error containing %q", c.f, err, c.want)
		}
	}
}

// TestCheckFromFacts decides from facts alone, with no host: the pyinfra way.
func TestCheckFromFacts(t *testing.T) {
	helloSum := "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" // sha256("hello\n")
	file := func(mode uint32, owner, group, sum string) pathfact.State {
		return pathfact.State{Kind: "file", Mode: mode, UID: 0, GID: 4, Owner: owner, Group: group, Sum: sum}
	}
	dir := pathfact.State{Kind: "directory", Mode: 0o755, Owner: "root", Group: "root"}
	absent := pathfact.State{Kind: "absent"}
	cases := []struct {
		name    string
		f       File
		facts   pathfact.State
		changed bool
		reason  string
		apply   []string
		err     string
	}{
		{"up to date", File{Path: "/etc/motd", Content: str("hello\n")}, file(0o644, "root", "root", helloSum),
			false, "/etc/motd is up to date", nil, ""},
		{"content differs", File{Path: "/etc/motd", Content: str("hello\n")}, file(0o640, "root", "adm", strings.Repeat("0", 64)),
			true, "update /etc/motd (6 bytes)", []string{`t=/etc/.orch.motd."$ORCH_M"`, "set -C\nprintf %s 'hello\n' > \"$t\" || _orch_werr \"$t\"\nset +C", "chmod 0640", "chown 0:4", `mv -f "$t" /etc/motd`}, ""},
		{"create", File{Path: "/etc/motd", Content: str("hello\n")}, absent,
			true, "create /etc/motd (6 bytes)", []string{"chmod 0644", `mv -f "$t" /etc/motd`}, ""},
		{"create by umask", File{Path: "/etc/motd", Content: str("hello\n"), Mode: "0640"}, pathfact.State{Kind: "absent", UmaskApplies: true},
			true, "create /etc/motd (6 bytes)", []string{"umask 0137\nset -C\nprintf", `mv -f "$t" /etc/motd`}, ""},
		{"executable by chmod", File{Path: "/usr/local/bin/x", Content: str("#!/bin/sh\n"), Mode: "0755"}, pathfact.State{Kind: "absent", UmaskApplies: true},
			true, "create /usr/local/bin/x (10 bytes)", []string{"chmod 0755"}, ""},
		{"NUL by base64", File{Path: "/x", Content: str("a\x00b")}, absent,
			true, "create /x (3 bytes)", []string{"_orch_b64d > \"$t\" <<'ORCH_EOF'\nYQBi\nORCH_EOF\n"}, ""},
		{"mode only", File{Path: "/etc/motd", Content: str("hello\n"), Mode: "0600"}, file(0o644, "root", "root", helloSum),
			true, "/etc/motd: mode 0644 -> 0600", []string{"chmod 0600 /etc/motd"}, ""},
		{"owner only", File{Path: "/srv", State: "directory", Owner: "www"}, dir,
			true, "/srv: owner root:root -> www:root", []string{"chown www /srv"}, ""},
		{"setgid dir", File{Path: "/srv", State: "directory", Mode: "2755"}, pathfact.State{Kind: "directory", Mode: 0o2755, Owner: "www", Group: "wheel"},
			false, "directory /srv is up to date", nil, ""},
		{"dir over file", File{Path: "/srv", State: "directory"}, file(0o644, "root", "root", helloSum),
			false, "", nil, "exists as a file, not a directory"},
		{"file over dir", File{Path: "/srv", Content: str("x")}, dir,
			false, "", nil, "exists as a directory, not a file"},
		{"attrs of missing file", File{Path: "/x", Mode: "0600"}, absent,
			false, "", nil, "does not exist and no content"},
		{"relink", File{Path: "/cur", State: "link", Target: "/releases/2"}, pathfact.State{Kind: "link", Mode: 0o777, Owner: "root", Group: "root", Target: "/releases/1"},
			true, "link /cur -> /releases/2", []string{"ln -s /releases/2 /.orch-link.cur", "_orch_mvlink /.orch-link.cur /cur"}, ""},
		{"absent already", File{Path: "/x", State: "absent"}, absent, false, "/x is absent", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.f
			if f.State == "" {
				f.State = "file"
			}
			if err := f.Validate(env()); err != nil {
				t.Fatal(err)
			}
			var resp modules.CheckResponse
			f.Check(modules.CheckRequest{Facts: map[modules.FactKey]any{pathfact.Key(f.Path): c.facts}}, &resp)
			if c.err != "" {
				if resp.Err == nil || !strings.Contains(resp.Err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", resp.Err, c.err)
				}
				return
			}
			if resp.Err != nil || resp.Changed != c.changed || resp.Reason != c.reason {
				t.Fatalf("got changed=%v reason=%q err=%v, want changed=%v reason=%q", resp.Changed, resp.Reason, resp.Err, c.changed, c.reason)
			}
			for _, want := range c.apply {
				if !strings.Contains(resp.Apply, want) {
					t.Errorf("apply lacks %q:\n%s", want, resp.Apply)
				}
			}
			if c.facts.UmaskApplies && strings.Contains(resp.Apply, "umask") == strings.Contains(resp.Apply, "chmod") {
				t.Errorf("want exactly one of umask and chmod:\n%s", resp.Apply)
			}
		})
	}
}
