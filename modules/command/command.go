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

// guard is sh code that leaves the snippet through skip(reason) when the
// command is not needed.
func (c *Command) guard(skip func(reason string) string) string {
	var b strings.Builder
	if c.Creates != "" {
		fmt.Fprintf(&b, "if [ -e %s ]; then %s; fi\n", modules.Quote(c.Creates), skip(c.Creates+" exists"))
	}
	if c.Unless != "" {
		fmt.Fprintf(&b, "if (%s) >/dev/null 2>&1; then %s; fi\n", c.Unless, skip("unless guard succeeded"))
	}
	return b.String()
}

// probeSkip reports a satisfied guard to Check.
func probeSkip(reason string) string { return "echo " + modules.Quote("skip: "+reason) + "; exit 0" }

func (c *Command) Probe(modules.ProbeRequest) string {
	if c.Creates == "" && c.Unless == "" {
		return "" // nothing to learn: an unguarded command always runs
	}
	return c.guard(probeSkip) + "echo run\n"
}

func (c *Command) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	out := strings.TrimSpace(string(req.Facts))
	if reason, ok := strings.CutPrefix(lastLine(out), "skip: "); ok {
		resp.Reason = reason
		return
	}
	if c.Probe(modules.ProbeRequest{}) != "" && lastLine(out) != "run" {
		resp.Err = fmt.Errorf("guard probe failed: %s", out)
		return
	}
	resp.Changed = true
	resp.Reason = "run " + c.Cmd
	resp.Diff = "+ " + c.Cmd + "\n"
	var b strings.Builder
	// The same guards again at run time: an earlier task may have satisfied them.
	b.WriteString(c.guard(modules.NoChange))
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, modules.Quote(c.Env[k]))
	}
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
