package command

import (
	"os"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/testkit/moduletest"
)

func TestCreatesTwice(t *testing.T) {
	dir := t.TempDir()
	c := &Command{Cmd: "echo built > " + dir + "/out", Creates: dir + "/out"}
	moduletest.ApplyTwice(t, c)
	if got, _ := os.ReadFile(dir + "/out"); string(got) != "built\n" {
		t.Errorf("out = %q", got)
	}
}

func TestUnlessTwice(t *testing.T) {
	dir := t.TempDir()
	c := &Command{Cmd: "echo line >> " + dir + "/log", Unless: "grep -q line " + dir + "/log"}
	moduletest.ApplyTwice(t, c)
	if got, _ := os.ReadFile(dir + "/log"); string(got) != "line\n" {
		t.Errorf("log = %q, want one line", got)
	}
}

func TestUnguardedAlwaysRuns(t *testing.T) {
	dir := t.TempDir()
	c := &Command{Cmd: "echo x >> " + dir + "/n"}
	for range 2 {
		if res := moduletest.Converge(t, c); !res.Changed {
			t.Fatalf("unguarded command did not run: %+v", res.Check)
		}
	}
	if got, _ := os.ReadFile(dir + "/n"); string(got) != "x\nx\n" {
		t.Errorf("n = %q", got)
	}
}

func TestEnv(t *testing.T) {
	dir := t.TempDir()
	c := &Command{Cmd: `printf '%s' "$GREETING" > ` + dir + "/g", Creates: dir + "/g", Env: map[string]string{"GREETING": "it's $fine"}}
	moduletest.ApplyTwice(t, c)
	if got, _ := os.ReadFile(dir + "/g"); string(got) != "it's $fine" {
		t.Errorf("g = %q", got)
	}
}

// TestGuardAtRunTime: a guard satisfied after the check (by an earlier task
// of the same run) stops the command, and the task reports no change.
func TestGuardAtRunTime(t *testing.T) {
	dir := t.TempDir()
	c := &Command{Cmd: "echo ran > " + dir + "/ran", Creates: dir + "/flag"}
	resp := moduletest.Check(t, c, false)
	if !resp.Changed {
		t.Fatalf("check: %+v", resp)
	}
	os.WriteFile(dir+"/flag", nil, 0o644) // what an earlier task would do
	if out, changed := moduletest.Apply(t, resp); changed || !strings.Contains(out, "flag exists") {
		t.Fatalf("command ran although its guard now holds: %q", out)
	}
	if _, err := os.Stat(dir + "/ran"); !os.IsNotExist(err) {
		t.Fatalf("command ran")
	}
}

func TestCheckFromFacts(t *testing.T) {
	c := &Command{Cmd: "make install", Creates: "/usr/local/bin/x"}
	var resp modules.CheckResponse
	c.Check(modules.CheckRequest{Output: []byte("skip: /usr/local/bin/x exists\n")}, &resp)
	if resp.Changed || resp.Reason != "/usr/local/bin/x exists" {
		t.Errorf("skip: %+v", resp)
	}
	resp = modules.CheckResponse{}
	c.Check(modules.CheckRequest{Output: []byte("run\n")}, &resp)
	if !resp.Changed || !strings.HasSuffix(resp.Apply, "make install\n") {
		t.Errorf("run: %+v", resp)
	}
	resp = modules.CheckResponse{}
	c.Check(modules.CheckRequest{Output: []byte("sh: syntax error\n"), ProbeCode: 2}, &resp)
	if resp.Err == nil {
		t.Errorf("a broken probe was not an error")
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []*Command{{Cmd: "  "}, {Cmd: "x", Env: map[string]string{"1BAD": "v"}}, {Cmd: "x", Env: map[string]string{"A-B": "v"}}} {
		if err := c.Validate(nil); err == nil {
			t.Errorf("Validate(%+v) passed", c)
		}
	}
	if err := (&Command{Cmd: "x", Env: map[string]string{"GOOD_1": "v"}}).Validate(nil); err != nil {
		t.Errorf("good env rejected: %v", err)
	}
}

// TestRunsAsShDoes: the command is not under the apply snippet's set -e, so
// a failing command in the middle does not stop it; the last one decides.
func TestRunsAsShDoes(t *testing.T) {
	dir := t.TempDir()
	c := &Command{Cmd: "diff /dev/null /etc/hostname >/dev/null; echo reached > " + dir + "/r", Creates: dir + "/r"}
	moduletest.ApplyTwice(t, c)
	if got, _ := os.ReadFile(dir + "/r"); string(got) != "reached\n" {
		t.Errorf("r = %q", got)
	}
}

func TestCheckModeRunsNothing(t *testing.T) {
	dir := t.TempDir()
	c := &Command{Cmd: "touch " + dir + "/ran", Unless: "touch " + dir + "/guarded; false"}
	resp := moduletest.Check(t, c, false)
	if !resp.Changed {
		t.Fatalf("check: %+v", resp)
	}
	if _, err := os.Stat(dir + "/ran"); !os.IsNotExist(err) {
		t.Error("check ran the command")
	}
	// The unless guard itself runs during the check: it must be read-only,
	// as Ansible's is; this one is not, which the check makes visible.
	if _, err := os.Stat(dir + "/guarded"); err != nil {
		t.Error("the guard did not run during the check")
	}
}
