package engine

import (
	"github.com/orch-dev/orch/testkit/require"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFullDiskLeavesConfigIntact: a write that runs out of space fails the
// task with the system's message, keeps the old file whole, and leaves no
// temporary file behind.
func TestFullDiskLeavesConfigIntact(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		require.Missingf(t, "cannot mount a small tmpfs here (needs root): %s", strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	conf := filepath.Join(dir, "app.conf")
	if err := os.WriteFile(conf, []byte("good = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, _ := localInventory(t, 1)
	plan := writeFile(t, "plan.star", `
def role(h):
    file(path = "`+conf+`", content = "x" * 200000)

def main(ctx):
    ctx.apply("all", role)
`)
	rep, rec, err := runPlan(t, plan, inv, Options{})
	if err == nil || rep.Summary.Failed != 1 {
		t.Fatalf("err = %v, summary %+v", err, rep.Summary)
	}
	var failed Event
	for _, e := range rec.of("task") {
		if e.Status == "failed" {
			failed = e
		}
	}
	if !strings.Contains(failed.Msg, "file "+conf) || !strings.Contains(failed.Msg, "on h1") || !strings.Contains(failed.Output, "No space left on device") {
		t.Errorf("failure: %q / %q", failed.Msg, failed.Output)
	}
	if got, _ := os.ReadFile(conf); string(got) != "good = true\n" {
		t.Errorf("config now holds %d bytes", len(got))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries left in the directory, want only the config", len(entries))
	}
}
