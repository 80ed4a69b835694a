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
every apply. env sets environment variables for the command alone.

A command is opaque to the engine: it may change anything, so later tasks of
the host that read host state are re-checked on the host before they apply
(inside the same exchange while nothing they read has changed). Declare what
it changes with effects= ("path:/opt/app/", "service:app") to make it an
ordinary task: then only tasks that read those keys are re-checked, and
watchers of them (service(watch=…)) react when it runs.

secret=True keeps the command's text (and its output) out of every event,
diff and journal.`,
		New: func() any { return new(Command) },
	})
}

// Command is the argument struct of command().
type Command struct {
	Cmd     string            `arg:"cmd,required" doc:"the command, run by /bin/sh"`
	Creates string            `arg:"creates" doc:"skip when this path exists"`
	Unless  string            `arg:"unless" doc:"skip when this command succeeds"`
	Env     map[string]string `arg:"env" doc:"environment variables for the command"`
	Changes []string          `arg:"effects" doc:"state keys the command changes, e.g. [\"path:/opt/app/\"]; without them it is opaque"`
	Secret  bool              `arg:"secret" default:"False" doc:"keep the command's text and output out of all output"`
}

var (
	_ modules.Task      = (*Command)(nil)
	_ modules.Validator = (*Command)(nil)
	_ modules.Describer = (*Command)(nil)
	_ modules.Secret    = (*Command)(nil)
	_ modules.Effector  = (*Command)(nil)
)

func (c *Command) IsSecret() bool { return c.Secret }

// Effects are the declared effects= or, without them, anything.
func (c *Command) Effects() []string {
	if len(c.Changes) == 0 {
		return []string{modules.Anything}
	}
	return c.Changes
}

func (c *Command) Describe() string {
	if c.Secret {
		return "command (secret)"
	}
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
	for _, k := range c.Changes {
		if kind, subject, ok := strings.Cut(k, ":"); !ok || kind == "" || subject == "" {
			return fmt.Errorf("effects: %q is not a state key like \"path:/opt/app/\" or \"service:app\"", k)
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

// guards are the conditions under which the command is not needed.
func (c *Command) guards() []modules.Guard {
	var gs []modules.Guard
	if c.Creates != "" {
		gs = append(gs, modules.Guard{Test: "[ -e " + modules.Quote(c.Creates) + " ]", Reason: c.Creates + " exists"})
	}
	if c.Unless != "" {
		gs = append(gs, modules.Guard{Test: "(" + c.Unless + ") >/dev/null 2>&1", Reason: "unless guard succeeded"})
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
		fmt.Fprintf(&b, "%s %s; then printf '%%s\\n' %s\n", kw, g.Test, modules.Quote("skip: "+g.Reason))
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
	if c.Secret {
		resp.Reason, resp.Diff = "run the secret command", "+ (secret command)\n"
	}
	// The same guards again at run time: an earlier task may have satisfied them.
	resp.Unless = c.guards()
	var b strings.Builder
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
