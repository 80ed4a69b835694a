package facttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
)

// EachCheck decodes every decision fixture, testdata/check/*.json beside
// the module, into a T and runs fn on it in a subtest named after the file
// (fn gets the file too, to rewrite it under Reparse). It fails when there
// is none.
func EachCheck[T any](t *testing.T, fn func(t *testing.T, file string, fx T)) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "check", "*.json"))
	if len(files) == 0 {
		t.Fatal("no fixtures in testdata/check")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			var fx T
			b, err := os.ReadFile(file)
			if err == nil {
				err = json.Unmarshal(b, &fx)
			}
			if err != nil {
				t.Fatal(err)
			}
			fn(t, file, fx)
		})
	}
}

// Paths records which decision paths the fixtures took, per group (a
// backend, a state): the change path, the no-change path or both.
type Paths map[string]map[bool]bool

// Saw records that a fixture of group took the changed path.
func (p Paths) Saw(group string, changed bool) {
	if p[group] == nil {
		p[group] = map[bool]bool{}
	}
	p[group][changed] = true
}

// Require fails t for every group whose fixtures miss either path; what
// names the groups in the message ("backend", "state").
func (p Paths) Require(t *testing.T, what string, groups ...string) {
	t.Helper()
	for _, g := range groups {
		if !p[g][true] || !p[g][false] {
			t.Errorf("%s %s: fixtures for the change path %v, the no-change path %v; want both", what, g, p[g][true], p[g][false])
		}
	}
}

// Decision is what a module's Check decided, as its decision fixtures
// record it; each module's fixture type embeds it beside its inputs.
type Decision struct {
	Changed  bool     `json:"changed"`
	Reason   string   `json:"reason"`
	Commands []string `json:"commands,omitempty"` // the apply snippet's lines
	Err      string   `json:"err,omitempty"`
}

// Decided reads resp as a Decision, with the apply snippet split into
// lines by lines.
func Decided(resp *modules.CheckResponse, lines func(string) []string) Decision {
	d := Decision{Changed: resp.Changed, Reason: resp.Reason, Commands: lines(resp.Apply)}
	if resp.Err != nil {
		d.Err = resp.Err.Error()
	}
	return d
}

// Same reports whether two decisions agree.
func (d Decision) Same(o Decision) bool {
	return d.Changed == o.Changed && d.Reason == o.Reason && d.Err == o.Err && slices.Equal(d.Commands, o.Commands)
}

// Compare checks a decision fixture against what its check decides today:
// got is the fixture as it would be recorded now, same whether it agrees
// with the file. It also requires that a check without error changes
// exactly when it has an apply snippet. Under Reparse it rewrites the file
// with got instead, for review, and reports false.
func Compare(t *testing.T, file string, got any, same bool, resp *modules.CheckResponse) bool {
	t.Helper()
	if reparsing() {
		b, _ := json.MarshalIndent(got, "", "  ")
		os.WriteFile(file, append(b, '\n'), 0o644)
		return false
	}
	if !same {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("decided\n%s", g)
	}
	if resp.Err == nil && resp.Changed != (resp.Apply != "") {
		t.Errorf("changed=%v with apply %q", resp.Changed, resp.Apply)
	}
	return true
}
