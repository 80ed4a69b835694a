// Package command is the command module: a shell command guarded by
// creates= and unless=, so that it runs only when it is needed.
package command

import (
	"fmt"
	"sort"
	"strings"

	"github.com/orch-dev/orch/modules"
)

func init() {
	modules.Register(modules.Info{
		ID: "command",
		Doc: `Runs a shell command with /bin/sh on the host and reports "changed" when it runs.

Guards make it idempotent: with creates= it runs only while that path does not
exist; with unless= it runs only while the unless command fails. Guards are
evaluated again just before the command runs, so an earlier task of the same
run that satisfies the guard is honoured. Without a guard the command runs on
every apply. env sets environment variables for the command alone.`,
		New: func() any { return new(Command) },
	})
}

// Command is the argument struct of command().
type Command struct {
	Cmd     string            `arg:"cmd,required" doc:"the command, run by /bin/sh"`
	Creates string            `arg:"creates" doc:"skip when this path exists"`
	Unless  string            `arg:"unless" doc:"skip when this command succeeds"`
	Env     map[string]string `arg:"env" doc:"environment variables for the command"`
}

var (
	_ modules.Task      = (*Command)(nil)
	_ modules.Validator = (*Command)(nil)
	_ modules.Describer = (*Command)(nil)
)

func (c *Command) Describe() string {
	first, _, _ := strings.Cut(c.Cmd, "\n")
	if len(first) > 60 {
		first = first[:57] + "..."
	}
	return "command " + first
}

func (c *Command) Validate(*modules.Env) error {
	if strings.TrimSpace(c.Cmd) == "" {
		return fmt.Errorf("cmd is empty")
	}
	for k := range c.Env {
		if !validName(k) {
			return fmt.Errorf("env: %q is not a valid variable name", k)
		}
	}
	return nil
}

func validName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// guard is a condition under which the command is not needed.
type guard struct{ test, reason string }

func (c *Command) guards() []guard {
	var gs []guard
	if c.Creates != "" {
		gs = append(gs, guard{"[ -e " + modules.Quote(c.Creates) + " ]", c.Creates + " exists"})
	}
	if c.Unless != "" {
		gs = append(gs, guard{"(" + c.Unless + ") >/dev/null 2>&1", "unless guard succeeded"})
	}
	return gs
}

// Probe prints "skip: REASON" when a guard holds and "run" otherwise. Probes
// share one script, so it must not exit: an if/elif chain.
func (c *Command) Probe(modules.ProbeRequest) string {
	gs := c.guards()
	if len(gs) == 0 {
		return "" // nothing to learn: an unguarded command always runs
	}
	var b strings.Builder
	for i, g := range gs {
		kw := "if"
		if i > 0 {
			kw = "elif"
		}
		fmt.Fprintf(&b, "%s %s; then printf '%%s\\n' %s\n", kw, g.test, modules.Quote("skip: "+g.reason))
	}
	b.WriteString("else echo run\nfi\n")
	return b.String()
}

func (c *Command) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	out := strings.TrimSpace(string(req.Output))
	if reason, ok := strings.CutPrefix(lastLine(out), "skip: "); ok {
		resp.Reason = reason
		return
	}
	if len(c.guards()) > 0 && lastLine(out) != "run" {
		resp.Err = fmt.Errorf("guard probe failed: %s", out)
		return
	}
	resp.Changed = true
	resp.Reason = "run " + c.Cmd
	resp.Diff = "+ " + c.Cmd + "\n"
	var b strings.Builder
	// The same guards again at run time: an earlier task may have satisfied them.
	for _, g := range c.guards() {
		fmt.Fprintf(&b, "if %s; then %s; fi\n", g.test, modules.NoChange(g.reason))
	}
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, modules.Quote(c.Env[k]))
	}
	// The command runs as /bin/sh runs it, not under the snippet's set -e:
	// its exit status is its last command's.
	b.WriteString("set +e\n")
	b.WriteString(c.Cmd)
	b.WriteString("\n")
	resp.Apply = b.String()
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
