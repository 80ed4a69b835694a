// Package localrun runs a plan's source through the engine in the test's
// own process, against this machine (Run: one host, "local", over the
// local connection) or a given inventory (RunPlan), so that module tests
// can assert what changed and in how many exchanges.
package localrun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// Run runs src (a plan whose main applies roles to "all") with --diff, and
// with --check when check is set. It returns the summary, every event,
// and the run's error.
func Run(t testing.TB, src string, check bool) (engine.Summary, []engine.Event, error) {
	t.Helper()
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: "local", Address: "localhost", Connection: "local"}); err != nil {
		t.Fatal(err)
	}
	rep, events, err := RunPlan(t, src, inv, engine.Options{Check: check, Diff: true})
	return rep.Summary, events, err
}

// RunPlan runs src against inv with opts, in this process, within five
// minutes: the plan is written to a temporary directory, which is also the
// run's state dir unless opts names one, and every event is collected (and
// passed on to opts.OnEvent, if set).
func RunPlan(t testing.TB, src string, inv *inventory.Inventory, opts engine.Options) (*engine.Report, []engine.Event, error) {
	t.Helper()
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.star")
	if err := os.WriteFile(planFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Load(planFile)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if opts.StateDir == "" {
		opts.StateDir = dir
	}
	var mu sync.Mutex
	var events []engine.Event
	pass := opts.OnEvent
	opts.OnEvent = func(e engine.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
		if pass != nil {
			pass(e)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := engine.Run(ctx, p, inv, opts)
	mu.Lock()
	defer mu.Unlock()
	return rep, events, err
}

// MustRun is Run for a run that must succeed.
func MustRun(t testing.TB, src string, check bool) (engine.Summary, []engine.Event) {
	t.Helper()
	s, events, err := Run(t, src, check)
	if err != nil {
		t.Fatalf("run: %v%s", err, Tasks(events))
	}
	return s, events
}

// Tasks renders the task events, one per line, for failure messages.
func Tasks(events []engine.Event) string {
	var b strings.Builder
	for _, e := range events {
		if e.Event == "task" {
			fmt.Fprintf(&b, "\n  %s %s %s: %s %s", e.Host, e.Task, e.Status, e.Msg, strings.TrimSpace(e.Output))
		}
	}
	return b.String()
}
