package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/testkit/sshdtest"
)

// TestRollingPercentages: serial= and max_fail= as percentages on eight
// sshd hosts. serial="25%" is batches of two; max_fail="10%" of eight
// rounds down to 0, so the failure of h3 in the second batch stops the
// rollout, and the hosts of the last two batches are named as never
// started (in the warning, the error and the plan's result). With
// max_fail="25%" (two) every batch runs.
func TestRollingPercentages(t *testing.T) {
	fleet := sshdtest.Start(t, 8, sshdtest.Options{})
	inv, dir := sshInventory(t, fleet)
	planFile := writeFile(t, "plan.star", `
def role(h):
    file(path = h.vars["root"], state = "directory")
    command(cmd = "exit 3" if h.name == "h3" else "true")

def main(ctx):
    res = ctx.apply("all", role, serial = "25%", max_fail = ctx.args["max_fail"])
    print("not started:", [h.name for h in res.not_started])
`)
	opts := Options{SSH: strictSSH(fleet.KnownHosts), Args: map[string]string{"max_fail": "10%"}}
	rep, rec, err := runPlan(t, planFile, inv, opts)
	if !errors.Is(err, ErrTooManyFailures) || !strings.Contains(err.Error(), "more than max_fail=0; never started: h5, h6, h7, h8") {
		t.Fatalf("err = %v", err)
	}
	var warned bool
	for _, e := range rec.of("warning") {
		warned = warned || strings.Contains(e.Msg, "4 hosts never started: h5, h6, h7, h8")
	}
	if !warned {
		t.Errorf("no warning names the hosts never started: %+v", rec.of("warning"))
	}
	if s := rep.Summary; s.Hosts != 4 || s.Failed != 1 || s.Changed != 3 {
		t.Errorf("summary: %+v", s)
	}
	for i, h := range fleet.Hosts {
		_, err := os.Stat(filepath.Join(dir, h.Name))
		if started := i < 4; started == os.IsNotExist(err) {
			t.Errorf("%s: started=%v, but its directory: %v", h.Name, started, err)
		}
	}

	opts.Args["max_fail"] = "25%"
	_, rec, err = runPlan(t, planFile, inv, opts)
	if err != nil {
		t.Fatalf("max_fail=25%%: %v", err)
	}
	if p := rec.of("print"); len(p) != 1 || p[0].Msg != "not started: []" {
		t.Errorf("print: %+v", p)
	}
	if _, err := os.Stat(filepath.Join(dir, "h8")); err != nil {
		t.Error("the last batch did not run")
	}
}
