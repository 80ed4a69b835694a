package service

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/internal/facttest"
)

// checkFixture is one decision, pyinfra style: the arguments and the
// recorded facts (a fact fixture by name) in, the commands out.
type checkFixture struct {
	About      string      `json:"about"`
	Args       fixtureArgs `json:"args"`
	InitSystem string      `json:"init_system"`
	Facts      string      `json:"facts"` // the service fact fixture under testdata/facts/service
	facttest.Decision
	OnWatch *handler `json:"on_watch,omitempty"`
	Watches []string `json:"watches,omitempty"`
}

type fixtureArgs struct {
	Name     string   `json:"name"`
	State    string   `json:"state,omitempty"`
	Enabled  *bool    `json:"enabled,omitempty"`
	Watch    []string `json:"watch,omitempty"`
	OnChange string   `json:"on_change,omitempty"`
}

type handler struct {
	ID     string   `json:"id"`
	Level  int      `json:"level"`
	Action string   `json:"action"`
	Script []string `json:"script"`
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// TestCheckFixtures decides every fixture's task from its recorded facts
// and compares the decision, the commands and the watch handler, for each
// backend, on the change and the no-change paths.
func TestCheckFixtures(t *testing.T) {
	seen := facttest.Paths{}
	facttest.EachCheck(t, func(t *testing.T, file string, fx checkFixture) {
		s := &Service{Name: fx.Args.Name, State: fx.Args.State, Enabled: fx.Args.Enabled, Watch: fx.Args.Watch, OnChange: fx.Args.OnChange}
		if s.State == "" {
			s.State = "running"
		}
		if s.OnChange == "" {
			s.OnChange = "restart"
		}
		if err := s.Validate(nil); err != nil {
			t.Fatal(err)
		}
		req := modules.CheckRequest{Facts: map[modules.FactKey]any{initKey: fx.InitSystem}}
		_, vals := facttest.Load(t, FactName, fx.Facts)
		if v, ok := vals[s.Name]; ok {
			req.Facts[Key(s.Name)] = v
		}
		var resp modules.CheckResponse
		s.Check(req, &resp)
		got := fx
		got.Decision, got.OnWatch = facttest.Decided(&resp, splitLines), nil
		if h := resp.OnWatch; h != nil {
			got.OnWatch = &handler{ID: h.ID, Level: h.Level, Action: h.Action, Script: splitLines(h.Script)}
		}
		got.Watches = s.Watches()
		same := got.Decision.Same(fx.Decision) && reflect.DeepEqual(got.OnWatch, fx.OnWatch) && slices.Equal(got.Watches, fx.Watches)
		if !facttest.Compare(t, file, got, same, &resp) {
			return
		}
		seen.Saw(fx.InitSystem, resp.Changed)
	})
	seen.Require(t, "backend", "systemd", "sysvinit", "rc")
}
