package engine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/testkit/require"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// TestFullDiskLeavesConfigIntact: a write that runs out of space fails the
// task with the system's message, keeps the old file whole, and leaves no
// temporary file behind: through the local connection and through sshd,
// for content sent inside the apply script and for content over SFTP.
func TestFullDiskLeavesConfigIntact(t *testing.T) {
	fleet := sshdtest.Start(t, 1, sshdtest.Options{})
	for _, c := range []struct {
		name  string
		ssh   bool
		bytes int
		want  string // what the failure says
	}{
		{"local", false, 200000, "No space left on device"},
		{"ssh", true, 200000, "No space left on device"},
		{"ssh-sftp", true, 3 << 20, "no space left on device: " /* SFTP says only "Failure" */},
	} {
		t.Run(c.name, func(t *testing.T) {
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
			opts := Options{}
			if c.ssh {
				inv = inventory.New()
				h := fleet.Hosts[0]
				inv.Add(&inventory.Host{Name: "h1", Address: h.IP, Port: h.Port, User: fleet.User, Key: fleet.ClientKey})
				opts.SSH = strictSSH(fleet.KnownHosts)
			}
			plan := writeFile(t, "plan.star", fmt.Sprintf(`
def role(h):
    file(path = %q, content = "x" * %d)

def main(ctx):
    ctx.apply("all", role)
`, conf, c.bytes))
			rep, rec, err := runPlan(t, plan, inv, opts)
			if err == nil || rep.Summary.Failed != 1 {
				t.Fatalf("err = %v, summary %+v", err, rep.Summary)
			}
			var failed Event
			for _, e := range rec.of("task") {
				if e.Status == "failed" {
					failed = e
				}
			}
			if !strings.Contains(failed.Msg, "file "+conf) || !strings.Contains(failed.Msg, "on h1") || !strings.Contains(failed.Msg+failed.Output, c.want) {
				t.Errorf("failure: %q / %q", failed.Msg, failed.Output)
			}
			if got, _ := os.ReadFile(conf); string(got) != "good = true\n" {
				t.Errorf("config now holds %d bytes", len(got))
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("%d entries left in the directory, want only the config", len(entries))
			}
		})
	}
}
