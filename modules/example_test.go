package modules_test

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing/fstest"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/plan"
)

// The modules a program adds register in init(), as orch's own do. Their
// IDs are the names plans call them by; a dotted ID puts them in a group.
func init() {
	modules.Register(modules.Info{ID: "acme.line", New: func() any { return new(Line) }, Doc: `Ensures that a file has a line, appending it when it is missing.

Effects: path:PATH.`})
	modules.Register(modules.Info{ID: "acme.release", New: func() any { return new(Release) }, Doc: `Returns the version of an app that the release service wants deployed.`})
}

// Line is the argument struct of acme.line: a host task. Its tagged
// fields are the call's arguments, and the adapter fills them from the
// plan; the methods say how to read the host and how to change it.
type Line struct {
	Path string `arg:"path,required" doc:"absolute path of the file"`
	Line string `arg:"line,required" doc:"the line, without its newline"`
}

// Compile-time checks that Line is the task it means to be.
var (
	_ modules.Task      = (*Line)(nil)
	_ modules.Validator = (*Line)(nil)
	_ modules.Effector  = (*Line)(nil)
	_ modules.Reader    = (*Line)(nil)
	_ modules.Describer = (*Line)(nil)
)

// Validate runs on the controller before any host is touched.
func (l *Line) Validate(*modules.Env) error {
	if !path.IsAbs(l.Path) {
		return fmt.Errorf("path %q is not absolute", l.Path)
	}
	if strings.Contains(l.Line, "\n") {
		return fmt.Errorf("line has a newline")
	}
	return nil
}

// Probe reads the host and changes nothing; the engine sends the probes of
// all of a host's tasks in one exchange.
func (l *Line) Probe(modules.ProbeRequest) string {
	return fmt.Sprintf("grep -qxF -- %s %s 2>/dev/null && echo present || echo absent", modules.Quote(l.Line), modules.Quote(l.Path))
}

// Check decides from what the probe printed.
func (l *Line) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	if strings.TrimSpace(string(req.Output)) == "present" {
		resp.Reason = "the line is in " + l.Path
		return
	}
	resp.Changed, resp.Reason = true, "appends the line to "+l.Path
	resp.Apply = fmt.Sprintf("printf '%%s\\n' %s >> %s", modules.Quote(l.Line), modules.Quote(l.Path))
}

// Effects and Reads let the engine order this task with others that touch
// the same file.
func (l *Line) Effects() []string { return []string{modules.PathKey(l.Path)} }
func (l *Line) Reads() []string   { return []string{modules.PathKey(l.Path)} }

// Describe names the task in events.
func (l *Line) Describe() string { return "acme.line " + l.Path }

// Release is the argument struct of acme.release: a controller call, run
// on the controller when the plan calls it, whose result the plan uses.
type Release struct {
	App string `arg:"app,required" doc:"the app's name"`
}

// releases stands in for the program's release service.
var releases = map[string]string{"web": "2.4.1"}

// Call returns the version; its error fails the plan at the call's line.
func (r *Release) Call(ctx context.Context, env *modules.Env) (any, error) {
	v, ok := releases[r.App]
	if !ok {
		return nil, fmt.Errorf("the release service knows no app %q", r.App)
	}
	return v, nil
}

const motdPlan = `
def main(ctx):
    version = acme.release("web")

    def motd(h):
        acme.line(path = h.vars["motd"], line = "web " + version)

    ctx.apply("all", motd)
`

// Register a module written in Go, document it as `orch modules NAME`
// does, and call it from a plan.
func ExampleRegister() {
	info, _ := modules.Lookup("acme.line")
	doc, err := modules.Doc(info)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(doc)

	dir, err := os.MkdirTemp("", "orch-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	motd := filepath.Join(dir, "motd")
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: "localhost", Connection: "local", Vars: map[string]any{"motd": motd}}); err != nil {
		fmt.Println(err)
		return
	}

	p, err := plan.LoadFS(fstest.MapFS{"motd.star": {Data: []byte(motdPlan)}}, "motd.star", "motd.star")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	opts := engine.Options{StateDir: filepath.Join(dir, "state"), OnEvent: func(e engine.Event) {
		if e.Event == "task" {
			fmt.Printf("%s: %s: %s (%s)\n", e.Host, e.Module, e.Status, strings.ReplaceAll(e.Msg, dir, "DIR"))
		}
	}}
	fmt.Println()
	for range 2 {
		if _, err := engine.Run(context.Background(), p, inv, opts); err != nil {
			fmt.Println(err)
			return
		}
	}
	b, _ := os.ReadFile(motd)
	fmt.Print(string(b))
	// Output:
	// acme.line(path, line)
	//
	// Ensures that a file has a line, appending it when it is missing.
	//
	// Effects: path:PATH.
	//
	// Arguments:
	//   path  string (required)  absolute path of the file
	//   line  string (required)  the line, without its newline
	//
	// Every host module also takes:
	//   become=None   run with privilege: True (as root), a user name, or False; None inherits ctx.apply's and the host's become
	//   timeout=None  fail the task when its change takes longer, ending its processes on the host ("30s")
	//
	// localhost: acme.line: changed (appends the line to DIR/motd)
	// localhost: acme.line: ok (the line is in DIR/motd)
	// web 2.4.1
}
