package pkg

import (
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/internal/facttest"
)

// checkFixture is one decision, pyinfra style: the arguments and the
// recorded facts (fact fixtures by name) in, the commands out.
type checkFixture struct {
	About             string            `json:"about"`
	Args              fixtureArgs       `json:"args"`
	PkgManager        string            `json:"pkg_manager"`
	Facts             map[string]string `json:"facts"` // fact name -> fixture name under testdata/facts/FACT
	facttest.Decision                   // the commands without the helper function
}

type fixtureArgs struct {
	Names       []string `json:"names"`
	State       string   `json:"state,omitempty"`
	UpdateCache bool     `json:"update_cache,omitempty"`
	CacheMaxAge string   `json:"cache_max_age,omitempty"`
	Jail        string   `json:"jail,omitempty"`
	LockTimeout string   `json:"lock_timeout,omitempty"`
}

func (a fixtureArgs) task(t *testing.T) *Pkg {
	t.Helper()
	p := &Pkg{Names: a.Names, State: a.State, UpdateCache: a.UpdateCache, Jail: a.Jail, CacheMaxAge: time.Hour, LockTimeout: time.Minute}
	if p.State == "" {
		p.State = "present"
	}
	for s, d := range map[string]*time.Duration{a.CacheMaxAge: &p.CacheMaxAge, a.LockTimeout: &p.LockTimeout} {
		if s != "" {
			v, err := time.ParseDuration(s)
			if err != nil {
				t.Fatal(err)
			}
			*d = v
		}
	}
	if err := p.Validate(nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// commandLines are an apply snippet's lines without the helper function
// every snippet defines (tested live, and by the lab tests' failures).
func commandLines(apply string) []string {
	for _, helper := range []string{aptHelper, freebsdHelper} {
		apply = strings.Replace(apply, helper, "", 1)
	}
	if apply == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(apply, "\n"), "\n")
}

// TestCheckFixtures decides every fixture's task from its recorded facts
// and compares the decision and the commands, for both backends, on the
// change and the no-change paths.
func TestCheckFixtures(t *testing.T) {
	seen := facttest.Paths{}
	facttest.EachCheck(t, func(t *testing.T, file string, fx checkFixture) {
		p := fx.Args.task(t)
		req := modules.CheckRequest{Facts: map[modules.FactKey]any{}}
		for _, k := range p.Facts() {
			if k == managerKey {
				req.Facts[k] = fx.PkgManager
				continue
			}
			name, ok := fx.Facts[k.Fact]
			if !ok {
				t.Fatalf("the task reads %s, but the fixture names no %s facts", k.StateKey(), k.Fact)
			}
			_, vals := facttest.Load(t, k.Fact, name)
			if v, ok := vals[k.Key]; ok { // else Check says what is missing
				req.Facts[k] = v
			}
		}
		var resp modules.CheckResponse
		p.Check(req, &resp)
		got := fx
		got.Decision = facttest.Decided(&resp, commandLines)
		if !facttest.Compare(t, file, got, got.Decision.Same(fx.Decision), &resp) {
			return
		}
		seen.Saw(fx.PkgManager, resp.Changed)
	})
	seen.Require(t, "backend", "apt", "pkg")
}
