package jail

import (
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/internal/facttest"
	"github.com/orch-dev/orch/modules/pathfact"
)

// checkFixture is one decision, pyinfra style: the arguments, a recorded
// jail fact (by fixture name) and the config file's state in; the
// decision and the apply snippet's lines out.
type checkFixture struct {
	About string      `json:"about"`
	Args  fixtureArgs `json:"args"`
	Facts string      `json:"facts"` // the jail fact fixture under testdata/facts/jail
	Conf  string      `json:"conf"`  // the config file: absent | same (as rendered) | differs
	facttest.Decision
	Extra map[string]any `json:"-"`
}

type fixtureArgs struct {
	Name   string         `json:"name"`
	Path   string         `json:"path"`
	IP     any            `json:"ip,omitempty"`
	State  string         `json:"state,omitempty"`
	Params map[string]any `json:"params,omitempty"`
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// normalise turns JSON numbers into ints, as the Starlark adapter gives them.
func normalise(v any) any {
	switch x := v.(type) {
	case float64:
		return int(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalise(e)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalise(e)
		}
		return out
	}
	return v
}

// TestCheckFixtures decides every fixture's task from its recorded facts
// and compares the decision and the commands, for every state on its
// change and its no-change paths.
func TestCheckFixtures(t *testing.T) {
	seen := facttest.Paths{}
	facttest.EachCheck(t, func(t *testing.T, file string, fx checkFixture) {
		j := &Jail{Name: fx.Args.Name, Path: fx.Args.Path, IP: normalise(fx.Args.IP), State: fx.Args.State}
		if fx.Args.Params != nil {
			j.Params = normalise(fx.Args.Params).(map[string]any)
		}
		if j.State == "" {
			j.State = "running"
		}
		if err := j.Validate(nil); err != nil {
			t.Fatal(err)
		}
		req := modules.CheckRequest{Facts: map[modules.FactKey]any{}}
		_, vals := facttest.Load(t, FactName, fx.Facts)
		if v, ok := vals[j.Name]; ok {
			req.Facts[Key(j.Name)] = v
		}
		switch fx.Conf {
		case "absent":
			req.Facts[pathfact.Key(j.ConfPath())] = pathfact.State{Kind: "absent"}
		case "same":
			req.Facts[pathfact.Key(j.ConfPath())] = pathfact.State{Kind: "file", Mode: 0o644, Sum: sha256Hex(j.Conf())}
		case "differs":
			req.Facts[pathfact.Key(j.ConfPath())] = pathfact.State{Kind: "file", Mode: 0o644, Sum: sha256Hex([]byte("www { path = /elsewhere; }\n"))}
		default:
			t.Fatalf("conf %q is not absent, same or differs", fx.Conf)
		}
		var resp modules.CheckResponse
		j.Check(req, &resp)
		got := fx
		got.Decision = facttest.Decided(&resp, splitLines)
		if !facttest.Compare(t, file, got, got.Decision.Same(fx.Decision), &resp) {
			return
		}
		if resp.Err == nil && !resp.Changed && resp.Reason == "" {
			t.Error("no change and no reason")
		}
		seen.Saw(j.State, resp.Changed)
	})
	seen.Require(t, "state", "running", "stopped", "absent")
}
