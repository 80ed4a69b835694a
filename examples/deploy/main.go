// Command deploy is a small deploy tool built on orch's public API alone,
// the way a program that embeds orch is built. It converges a static site:
//
//	go run ./examples/deploy -root /tmp/site [-check]
//
// It builds its inventory in code (this machine, over the local
// connection), registers a module of its own (deploy.release, a
// controller call the plan asks for the release), runs the plan embedded
// in the binary while printing events its own way, then converges one
// more file from Go without Starlark, and prints each report. Run it
// twice: the second run changes nothing.
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"testing/fstest"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/file"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/plan"
)

// release is what this program deploys.
const release = "1.4.2"

//go:embed site.star
var sitePlan []byte

func init() {
	modules.Register(modules.Info{ID: "deploy.release", New: func() any { return new(releaseCall) },
		Doc: "Returns the release the deploy program ships."})
}

// releaseCall is deploy.release(): a controller call without arguments.
type releaseCall struct{}

func (*releaseCall) Call(context.Context, *modules.Env) (any, error) { return release, nil }

func main() {
	root := flag.String("root", "", "folder to deploy the site into (required)")
	check := flag.Bool("check", false, "change nothing; say what would change")
	flag.Parse()
	if *root == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := deploy(ctx, os.Stdout, *root, *check); err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		os.Exit(1)
	}
}

// deploy converges the site under root and reports to out.
func deploy(ctx context.Context, out io.Writer, root string, check bool) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	inv := inventory.New()
	err = inv.Add(&inventory.Host{Name: "localhost", Connection: "local", Groups: []string{"web"}, Vars: map[string]any{"root": root}})
	if err != nil {
		return err
	}
	// The journal and run lock live beside the site, not in it.
	opts := engine.Options{Check: check, StateDir: root + ".state", OnEvent: func(e engine.Event) {
		switch e.Event {
		case "task":
			if e.Status != engine.OK {
				fmt.Fprintf(out, "  %-8s %s %s\n", e.Status, e.Module, path.Base(e.Task))
			}
		case "host_done":
			fmt.Fprintf(out, "  %s: %s, %d of %d tasks changed\n", e.Host, e.Status, e.TasksChanged, e.Tasks)
		}
	}}

	// 1. The plan, with the program's own module in it.
	p, err := plan.LoadFS(fstest.MapFS{"site.star": {Data: sitePlan}}, "site.star", "site.star")
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintln(out, "plan site.star:")
	rep, err := engine.Run(ctx, p, inv, opts)
	if err != nil {
		return err
	}
	summary(out, rep)

	// 2. One more file, converged from Go.
	fmt.Fprintln(out, "converge RELEASE:")
	content := release + "\n"
	tasks := []engine.Task{{Args: &file.File{Path: filepath.Join(root, "RELEASE"), Content: &content}}}
	rep, err = engine.Converge(ctx, inv.Hosts(), tasks, engine.ConvergeOptions{Options: opts, Name: "release"})
	if err != nil {
		return err
	}
	summary(out, rep)
	return nil
}

func summary(out io.Writer, rep *engine.Report) {
	s := rep.Summary
	fmt.Fprintf(out, "  hosts=%d changed=%d failed=%d unreachable=%d tasks_changed=%d\n", s.Hosts, s.Changed, s.Failed, s.Unreachable, s.TasksChanged)
}
