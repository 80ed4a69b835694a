package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/inventory"
)

// resumablePlan writes a plan in a folder of its own: step one writes a
// file from a template through a loaded role; step two fails while the
// file "fail" exists beside the plan.
func resumablePlan(t *testing.T) (planFile, dir string) {
	t.Helper()
	dir = t.TempDir()
	files := map[string]string{
		"plan.star": `load("roles/one.star", "one")

def main(ctx):
    ctx.step("one", lambda: ctx.apply("all", one))
    ctx.step("two", lambda: ctx.apply("all", lambda h: command("test ! -e ` + filepath.Join(dir, "fail") + `")))
`,
		"roles/one.star":     "def one(h):\n    file(path = h.vars[\"root\"] + \"-one\", template = \"templates/one.tmpl\", vars = {\"n\": h.name})\n",
		"templates/one.tmpl": "one on {{ .n }}\n",
		"fail":               "",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "plan.star"), dir
}

func TestResumeRefusesAChangedPlan(t *testing.T) {
	planFile, dir := resumablePlan(t)
	inv, _ := localInventory(t, 2)
	state := t.TempDir()
	rep, _, err := runPlan(t, planFile, inv, Options{StateDir: state})
	if err == nil {
		t.Fatal("step two should fail")
	}
	first := rep.RunID
	os.Remove(filepath.Join(dir, "fail"))

	for _, c := range []struct{ file, edit string }{
		{"roles/one.star", "def one(h):\n    file(path = h.vars[\"root\"] + \"-one\", content = \"other\\n\")\n"},
		{"templates/one.tmpl", "one, edited, on {{ .n }}\n"},
	} {
		orig, _ := os.ReadFile(filepath.Join(dir, c.file))
		os.WriteFile(filepath.Join(dir, c.file), []byte(c.edit), 0o644)
		rep, rec, err := runPlan(t, planFile, inv, Options{StateDir: state, Resume: first})
		var changed *ResumeChangedError
		if !errors.As(err, &changed) || !strings.Contains(err.Error(), "the plan's file "+c.file+" changed") || !strings.Contains(err.Error(), "run "+first) {
			t.Errorf("%s edited: err = %v", c.file, err)
		}
		if rep.Touched || len(rec.events) != 0 {
			t.Errorf("%s edited: the refused resume ran (%d events)", c.file, len(rec.events))
		}
		os.WriteFile(filepath.Join(dir, c.file), orig, 0o644)
	}

	// Unchanged again: the resume skips step one and completes step two.
	_, rec, err := runPlan(t, planFile, inv, Options{StateDir: state, Resume: first})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.steps(), " "); got != "one:skipped two:start two:done" {
		t.Errorf("steps: %s", got)
	}
}

func TestResumeForceRunsTheChangedPlan(t *testing.T) {
	planFile, dir := resumablePlan(t)
	inv, _ := localInventory(t, 1)
	state := t.TempDir()
	rep, _, _ := runPlan(t, planFile, inv, Options{StateDir: state})
	os.Remove(filepath.Join(dir, "fail"))
	os.WriteFile(filepath.Join(dir, "templates/one.tmpl"), []byte("edited\n"), 0o644)
	rep2, _, err := runPlan(t, planFile, inv, Options{StateDir: state, Resume: rep.RunID, ResumeForce: true})
	if err != nil {
		t.Fatal(err)
	}
	// The forced run keeps the current digests, so resuming it checks
	// against the plan as it is now.
	h, err := FileStore{Dir: state}.Load(rep2.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if want := digest([]byte("edited\n")); h.Files["templates/one.tmpl"] != want {
		t.Errorf("journaled digest of the template: %q, want %q", h.Files["templates/one.tmpl"], want)
	}
	for _, name := range []string{"plan.star", "roles/one.star"} {
		if h.Files[name] == "" {
			t.Errorf("no digest of %s: %v", name, h.Files)
		}
	}
}

func TestResumeRefusesAChangedInventory(t *testing.T) {
	planFile, dir := resumablePlan(t)
	state := t.TempDir()
	inv, _ := localInventory(t, 2)
	rep, _, _ := runPlan(t, planFile, inv, Options{StateDir: state})
	os.Remove(filepath.Join(dir, "fail"))

	moved, _ := localInventory(t, 2)
	h2, _ := moved.Host("h2")
	h2.Address = "10.9.9.9"
	grown, _ := localInventory(t, 3)
	for name, c := range map[string]struct {
		inv  *inventory.Inventory
		want string
	}{
		"moved": {moved, "host h2 changed in the inventory"},
		"grown": {grown, "host h3 is new in the inventory"},
	} {
		// Same vars paths as the first run's inventory, but for the change.
		for _, h := range c.inv.Hosts() {
			if old, ok := inv.Host(h.Name); ok {
				h.Vars = old.Vars
			}
		}
		_, _, err := runPlan(t, planFile, c.inv, Options{StateDir: state, Resume: rep.RunID})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
}

// TestResumeAcceptsHostsTheRunMade: machines the run created are in a
// dynamic inventory by the time it is resumed; they are its own doing, not
// a change.
func TestResumeAcceptsHostsTheRunMade(t *testing.T) {
	lab, endpoints := cloudEnv(t)
	state := t.TempDir()
	dir := t.TempDir()
	fail := filepath.Join(dir, "fail")
	os.WriteFile(fail, nil, 0o644)
	planFile := writeFile(t, "plan.star", fmt.Sprintf(`
def main(ctx):
    made = ctx.step("create", lambda: linode.create(labels = ["new1"], region = "lab", type = "t", image = "i", tags = ["web"]))
    ctx.step("two", lambda: ctx.apply(ctx.hosts("local"), lambda h: command("test ! -e %s")))
`, fail))
	inv := inventory.New()
	inv.Add(&inventory.Host{Name: "local", Connection: "local"})
	rep, _, err := runPlan(t, planFile, inv, Options{StateDir: state, Endpoints: endpoints})
	if err == nil {
		t.Fatal("step two should fail")
	}
	os.Remove(fail)
	// What `-i linode:web` would list now, beside the static host.
	m, _ := lab.Machines.ByName("new1")
	inv.Add(&inventory.Host{Name: "new1", Address: m.Address, User: "root", Groups: []string{"web"}})
	_, rec, err := runPlan(t, planFile, inv, Options{StateDir: state, Resume: rep.RunID, Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.steps(), " "); got != "create:skipped two:start two:done" {
		t.Errorf("steps: %s", got)
	}
	if lab.Machines.Starts() != 1 {
		t.Errorf("%d machines started, want 1", lab.Machines.Starts())
	}
}

// TestSecretArgsNeverJournaled: a secret -e value is masked in run.json,
// and a plan that prints it or returns it from a step shows the mask.
func TestSecretArgsNeverJournaled(t *testing.T) {
	inv, _ := localInventory(t, 1)
	state := t.TempDir()
	const secret = "pa55-\"quoted\"-w0rd"
	planFile := writeFile(t, "plan.star", `
def main(ctx):
    print("token is", ctx.args["token"])
    ctx.step("keep", lambda: {"token": ctx.args["token"], "env": ctx.args["env"]})
    ctx.apply("all", lambda h: command("echo got '" + ctx.args["token"] + "'; exit 3"))
`)
	rep, rec, err := runPlan(t, planFile, inv, Options{StateDir: state, Args: map[string]string{"token": secret, "env": "prod"}, SecretArgs: []string{"token"}})
	if err == nil || strings.Contains(err.Error(), "pa55") {
		t.Fatalf("err = %v", err)
	}
	if p := rec.of("print"); len(p) != 1 || p[0].Msg != "token is "+Mask {
		t.Errorf("print: %+v", p)
	}
	rr, err := ReadRunRecord(state, rep.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if rr.Args["token"] != Mask || rr.Args["env"] != "prod" || len(rr.SecretArgs) != 1 {
		t.Errorf("run.json args: %v secret %v", rr.Args, rr.SecretArgs)
	}
	grepTree(t, state, "pa55")
}

// grepTree fails the test for every file under dir that holds s.
func grepTree(t *testing.T, dir, s string) {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		if b, _ := os.ReadFile(p); strings.Contains(string(b), s) {
			t.Errorf("%s holds the secret %q", p, s)
		}
		return nil
	})
	if n == 0 {
		t.Errorf("no files under %s", dir)
	}
}
