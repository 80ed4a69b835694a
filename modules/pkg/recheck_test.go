package pkg

import (
	"os/exec"
	"testing"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/testkit/require"
)

// holds runs a recheck condition with this machine's /bin/sh.
func holds(t *testing.T, cond string) bool {
	t.Helper()
	err := exec.Command("/bin/sh", "-c", cond).Run()
	if _, failed := err.(*exec.ExitError); err != nil && !failed {
		t.Fatal(err)
	}
	return err == nil
}

// gather runs a fact's script here and parses it.
func gather(t *testing.T, fact string, keys ...string) map[string]any {
	t.Helper()
	f, _ := modules.LookupFact(fact)
	out, err := exec.Command("/bin/sh", "-c", f.Script(keys)).Output()
	if err != nil {
		t.Fatalf("%s: %v", fact, err)
	}
	vals, err := f.Parse(out, keys)
	if err != nil {
		t.Fatalf("%s: %v\n%s", fact, err, out)
	}
	return vals
}

// TestRechecksHoldHere gathers the facts on this machine's own dpkg and
// apt (the build machine is Debian) and checks that each fact's recheck
// holds for what was gathered and fails for anything else: the engine
// relies on it to confirm a decision inside the apply exchange.
func TestRechecksHoldHere(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		require.Missing(t, "no dpkg-query on this machine: the rechecks run against a real dpkg")
	}
	for _, c := range []struct {
		fact   string
		keys   []string
		tamper func(any) any
	}{
		{FactInstalled, []string{"dpkg", "orch-no-such-package"}, func(v any) any {
			st := v.(Installed)
			st.dpkg += "~orch"
			return st
		}},
		{FactCandidate, []string{"dpkg", "orch-no-such-package"}, func(v any) any {
			c := v.(Candidate)
			c.raw += "~orch"
			return c
		}},
		{FactCache, []string{"@"}, func(v any) any {
			c := v.(Cache)
			c.stat += "\n1 /orch"
			return c
		}},
	} {
		f, _ := modules.LookupFact(c.fact)
		rc := f.(modules.FactRechecker)
		for key, v := range gather(t, c.fact, c.keys...) {
			if !holds(t, rc.Recheck(key, v)) {
				t.Errorf("%s %s: the recheck fails right after gathering %+v:\n%s", c.fact, key, v, rc.Recheck(key, v))
			}
			if holds(t, rc.Recheck(key, c.tamper(v))) {
				t.Errorf("%s %s: the recheck holds for a value that was not gathered", c.fact, key)
			}
		}
	}
}
