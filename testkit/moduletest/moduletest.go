// Package moduletest runs host modules' probes and applies with the local
// /bin/sh, so that each module can prove mechanically that applying twice
// changes once, and that check mode changes nothing.
package moduletest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
)

const marker = "__orch_test"

// sh runs a snippet the way the engine does: the prelude first, then an
// apply in a subshell under set -e, or a probe in a { } group of the
// script's own shell (so a probe that exits is caught: it ends the script
// before the marker line).
func sh(t testing.TB, snippet string, strict bool) (string, int) {
	t.Helper()
	var script strings.Builder
	script.WriteString("ORCH_M=" + marker + "\n" + modules.Prelude)
	if strict {
		script.WriteString("(\nset -e\n" + snippet + "\n) 2>&1\n")
	} else {
		script.WriteString("{\n" + snippet + "\n} 2>&1\necho " + marker + " probe-end\n")
	}
	cmd := exec.Command("/bin/sh", "-s")
	cmd.Stdin = strings.NewReader(script.String())
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running sh: %v", err)
	}
	return out.String(), code
}

// Check gathers the task's shared facts, probes the local machine, and
// returns the task's decision.
func Check(t testing.TB, task modules.Task, diff bool) modules.CheckResponse {
	t.Helper()
	req := modules.CheckRequest{Diff: diff, Facts: map[modules.FactKey]any{}}
	if fr, ok := task.(modules.FactReader); ok {
		for _, k := range fr.Facts() {
			f, ok := modules.LookupFact(k.Fact)
			if !ok {
				t.Fatalf("unregistered fact %q", k.Fact)
			}
			vals, err := f.Parse([]byte(probe(t, f.Script([]string{k.Key}))), []string{k.Key})
			if err != nil {
				t.Fatalf("fact %s of %s: %v", k.Fact, k.Key, err)
			}
			req.Facts[k] = vals[k.Key]
		}
	}
	if p := task.Probe(modules.ProbeRequest{Diff: diff}); p != "" {
		req.Output = []byte(probe(t, p))
	}
	var resp modules.CheckResponse
	task.Check(req, &resp)
	return resp
}

// probe runs a probe or fact snippet and returns its output.
func probe(t testing.TB, snippet string) string {
	t.Helper()
	out, _ := sh(t, snippet, false)
	facts, ok := strings.CutSuffix(out, marker+" probe-end\n")
	if !ok {
		t.Fatalf("the snippet ended the script (probes must not exit):\n%s", snippet)
	}
	return facts
}

// Result is the outcome of one Converge.
type Result struct {
	Check   modules.CheckResponse
	Changed bool   // the apply ran and did not report NoChange
	Output  string // what the apply printed
}

// Converge checks the task and, when it wants a change, applies it. It
// fails the test if the check or the apply fails.
func Converge(t testing.TB, task modules.Task) Result {
	t.Helper()
	resp := Check(t, task, false)
	if resp.Err != nil {
		t.Fatalf("check: %v", resp.Err)
	}
	res := Result{Check: resp}
	if !resp.Changed {
		return res
	}
	res.Output, res.Changed = Apply(t, resp)
	return res
}

// Apply runs a check's apply snippet as the engine does: first its Unless
// guards, any of which skips it, then the snippet under set -e. It reports
// whether the apply changed something, as opposed to finding at run time
// that nothing was needed (the guard's reason is the output then).
func Apply(t testing.TB, resp modules.CheckResponse) (output string, changed bool) {
	t.Helper()
	for _, g := range resp.Unless {
		if exec.Command("/bin/sh", "-c", modules.Prelude+"\n"+g.Test).Run() == nil {
			return g.Reason, false
		}
	}
	out, code := sh(t, resp.Apply, true)
	if code != 0 {
		t.Fatalf("apply exited %d:\n%s\nscript:\n%s", code, out, resp.Apply)
	}
	return out, true
}

// ApplyTwice proves the module contract on the local machine: the first
// converge changes something, the second finds nothing to do.
func ApplyTwice(t testing.TB, task modules.Task) {
	t.Helper()
	if first := Converge(t, task); !first.Changed {
		t.Fatalf("first apply did not change anything: %s", first.Check.Reason)
	}
	second := Converge(t, task)
	if second.Check.Changed || second.Changed {
		t.Fatalf("second apply still wants a change: %s", second.Check.Reason)
	}
	if second.Check.Reason == "" {
		t.Fatalf("no-change check gave no reason")
	}
}

// Validate runs a task's Validate with env, failing the test on error.
func Validate(t testing.TB, task modules.Task, env *modules.Env) {
	t.Helper()
	if v, ok := task.(modules.Validator); ok {
		if err := v.Validate(env); err != nil {
			t.Fatalf("validate: %v", err)
		}
	}
}
