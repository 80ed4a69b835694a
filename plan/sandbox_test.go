package plan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The sandbox: a plan reads files only under its own folder, whatever the
// path or symlink it names, and a runaway loop ends at the step limit.

// sandboxDirs makes <tmp>/outside/secret.star (a file a plan must never
// read) and an empty plan folder <tmp>/plan/.
func sandboxDirs(t *testing.T) (planDir, outside string) {
	t.Helper()
	root := t.TempDir()
	outside = filepath.Join(root, "outside")
	planDir = filepath.Join(root, "plan")
	for _, d := range []string{outside, planDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret.star"), []byte("secret = \"s3cret\"\ndef r(h):\n    pass\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return planDir, outside
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// refused asserts that err exists, names the plan file and line, says why
// and does not leak what the forbidden file holds.
func refused(t *testing.T, err error, line, why string) {
	t.Helper()
	if err == nil {
		t.Fatal("the plan read outside its folder")
	}
	msg := err.Error()
	if !strings.Contains(msg, "plan.star:"+line) || !strings.Contains(msg, why) {
		t.Errorf("err = %v\nwant it to name plan.star:%s and say %q", err, line, why)
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("the error leaks the forbidden file's content: %v", err)
	}
}

func TestSandboxRefusesLoadsOutsideThePlanFolder(t *testing.T) {
	cases := []struct {
		name, module, why string
		link              func(t *testing.T, planDir, outside string)
	}{
		{"dot-dot", "../../etc/passwd", "outside the plan's folder", nil},
		{"dot-dot into the sibling folder", "../outside/secret.star", "outside the plan's folder", nil},
		{"dot-dot from a subfolder", "roles/../../outside/secret.star", "outside the plan's folder", nil},
		{"absolute", "/etc/passwd", "load paths are relative to the plan file", nil},
		{"symlinked file", "secret.star", "read secret.star: outside the plan's folder", func(t *testing.T, planDir, outside string) {
			symlink(t, filepath.Join(outside, "secret.star"), filepath.Join(planDir, "secret.star"))
		}},
		{"relative symlink", "secret.star", "outside the plan's folder", func(t *testing.T, planDir, outside string) {
			symlink(t, "../outside/secret.star", filepath.Join(planDir, "secret.star"))
		}},
		{"symlinked folder", "roles/secret.star", "outside the plan's folder", func(t *testing.T, planDir, outside string) {
			symlink(t, outside, filepath.Join(planDir, "roles"))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			planDir, outside := sandboxDirs(t)
			if c.link != nil {
				c.link(t, planDir, outside)
			}
			writeFile(t, filepath.Join(planDir, "plan.star"), "load(\""+c.module+"\", \"secret\")\ndef main(ctx):\n    print(secret)\n")
			p, err := Load(filepath.Join(planDir, "plan.star"))
			if err == nil {
				p.Close()
			}
			refused(t, err, "1:6", c.why)
		})
	}
}

// A symlink that stays inside the plan's folder is an ordinary file.
func TestSandboxAllowsSymlinksInsideThePlanFolder(t *testing.T) {
	planDir, _ := sandboxDirs(t)
	writeFile(t, filepath.Join(planDir, "lib/common.star"), "greeting = \"hi\"\n")
	symlink(t, "lib", filepath.Join(planDir, "roles"))
	writeFile(t, filepath.Join(planDir, "plan.star"), "load(\"roles/common.star\", \"greeting\")\ndef main(ctx):\n    print(greeting)\n")
	p, err := Load(filepath.Join(planDir, "plan.star"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := newRunner()
	if err := p.Run(context.Background(), r, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.out, "|") != "hi" {
		t.Errorf("print = %q", r.out)
	}
}

func TestSandboxRefusesFileSourcesOutsideThePlanFolder(t *testing.T) {
	cases := []struct {
		name, arg, path string
		link            func(t *testing.T, planDir, outside string)
	}{
		{"src dot-dot", "src", "../outside/secret.star", nil},
		{"src absolute", "src", "/etc/passwd", nil},
		{"src symlinked file", "src", "link.txt", func(t *testing.T, planDir, outside string) {
			symlink(t, filepath.Join(outside, "secret.star"), filepath.Join(planDir, "link.txt"))
		}},
		{"src symlinked folder", "src", "files/secret.star", func(t *testing.T, planDir, outside string) {
			symlink(t, outside, filepath.Join(planDir, "files"))
		}},
		{"template dot-dot", "template", "../outside/secret.star", nil},
		{"template symlinked file", "template", "motd.tmpl", func(t *testing.T, planDir, outside string) {
			symlink(t, filepath.Join(outside, "secret.star"), filepath.Join(planDir, "motd.tmpl"))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			planDir, outside := sandboxDirs(t)
			if c.link != nil {
				c.link(t, planDir, outside)
			}
			writeFile(t, filepath.Join(planDir, "plan.star"),
				"def r(h):\n    file(path = \"/etc/x\", "+c.arg+" = \""+c.path+"\")\ndef main(ctx):\n    ctx.apply(\"all\", r)\n")
			p, err := Load(filepath.Join(planDir, "plan.star"))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			r := newRunner("web1")
			err = p.Run(context.Background(), r, RunOptions{})
			refused(t, err, "2:9", c.arg+": read "+c.path+": outside the plan's folder")
			if len(r.tasks["web1"]) != 0 {
				t.Errorf("a task was recorded: %v", r.tasks)
			}
		})
	}
}

func TestSandboxStepLimitNamesTheLine(t *testing.T) {
	for _, c := range []struct{ name, src, line string }{
		{"main", "def main(ctx):\n    n = 0\n    while True:\n        n += 1\n", "4:"},
		{"role", "def r(h):\n    for i in range(1 << 62):\n        pass\ndef main(ctx):\n    ctx.apply(\"all\", r)\n", "2:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := run(t, c.src, newRunner("web1"))
			if err == nil {
				t.Fatal("the endless loop ended without an error")
			}
			if !strings.Contains(err.Error(), "execution steps") {
				t.Errorf("err = %v, want the step limit", err)
			}
			var re *RuntimeError
			if !errors.As(err, &re) || !strings.HasSuffix(re.Pos.Filename(), "plan.star") {
				t.Fatalf("err = %#v, want a RuntimeError at a plan.star position", err)
			}
			if !strings.Contains(err.Error(), "plan.star:"+c.line) {
				t.Errorf("err = %v, want it at plan.star:%s", err, c.line)
			}
		})
	}
}
