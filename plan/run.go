package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
)

// Runner is what a running plan asks of the engine. The engine implements
// it; the plan never touches a host itself.
type Runner interface {
	// Hosts returns the inventory hosts matching pattern, within --limit.
	Hosts(pattern string) ([]*inventory.Host, error)
	// Apply evaluates a role for each host and converges them.
	Apply(ctx context.Context, req ApplyRequest) (ApplyResult, error)
	// Fact returns a host fact (key "") or one key of a keyed fact,
	// gathered on first use.
	Fact(ctx context.Context, h *inventory.Host, name, key string) (any, error)
	// WaitHost reconnects to a host, waiting up to timeout for it to come
	// back (after a reboot, say); with rebooted, it waits until the host's
	// boot ID differs from the one this run saw before.
	WaitHost(ctx context.Context, h *inventory.Host, timeout time.Duration, rebooted bool) (WaitResult, error)
	// Print carries the plan's print() output; host is "" in main.
	Print(host, msg string)
	// CheckTry reports one try of a controller-side check.
	CheckTry(t modules.CheckTry)
	// AddHost makes a host created at run time reachable, and pins its key.
	AddHost(h *inventory.Host, knownHostsLine string) error
	// RemoveHost forgets a host deleted at run time.
	RemoveHost(name string)
	// Touch records that the plan is about to act on the world (a
	// controller-side call outside check mode), so a later plan error is
	// no longer one "found before anything changed".
	Touch()
	// StepDone returns the recorded result of a step that completed in the
	// run being resumed.
	StepDone(name string) (result json.RawMessage, ok bool)
	// Step journals a step's progress.
	Step(e StepEvent) error
	// Guard reports a guard's probes.
	Guard(g GuardReport)
}

// WaitResult is what WaitHost found.
type WaitResult struct {
	BootID   string
	Rebooted bool // the boot ID differs from the one seen earlier in the run
}

// StepStatus is where a step is.
type StepStatus string

// Step statuses, in the order a step may pass through them.
const (
	StepStart      StepStatus = "start"
	StepDone       StepStatus = "done"
	StepSkipped    StepStatus = "skipped" // completed in the run being resumed
	StepFailed     StepStatus = "failed"
	StepUndone     StepStatus = "undone"
	StepUndoFailed StepStatus = "undo_failed"
)

// StepEvent is one change of a step's status.
type StepEvent struct {
	Name         string
	Status       StepStatus
	Irreversible bool
	Result       json.RawMessage // StepDone: the journaled result
	Err          error           // StepFailed, StepUndoFailed
	Duration     time.Duration   // StepDone, StepFailed, StepUndone
}

// GuardReport is a guard's tally so far.
type GuardReport struct {
	Name      string
	Probes    int
	Failed    int
	MaxFail   int
	LastError string
	Failing   bool // this report is for a probe that failed
	Stopped   bool
}

// Task is one module call recorded while a role was evaluated for a host.
type Task struct {
	Module  string // module ID, e.g. "file"
	Pos     syntax.Position
	Impl    modules.Task
	Become  *Become       // the call's become=; nil inherits the apply's and the host's
	Timeout time.Duration // the call's timeout=; 0 means none
}

// Become says whether, and as whom, tasks run with privilege.
type Become struct {
	Enabled bool
	User    string // "" means the host's become_user, else root
}

// Name describes the task for output: `file /etc/motd`.
func (t Task) Name() string {
	if d, ok := t.Impl.(modules.Describer); ok {
		return d.Describe()
	}
	return t.Module
}

// ApplyRequest asks the engine to run a role on hosts.
type ApplyRequest struct {
	Role    string // the role function's name, for output
	Hosts   []*inventory.Host
	Serial  int     // batch size; 0 means all hosts at once
	MaxFail int     // hosts that may fail before no further batch starts
	Become  *Become // ctx.apply's become=; nil leaves it to the tasks and hosts
	// Eval evaluates the role for one host and returns its tasks. It is
	// safe to call concurrently.
	Eval func(ctx context.Context, h *inventory.Host) ([]Task, error)
}

// ApplyResult groups the hosts of an apply by outcome. Changed hosts are
// also in OK. NotStarted are the hosts of batches that never started
// because earlier batches failed.
type ApplyResult struct {
	OK, Changed, Failed, Unreachable, NotStarted []*inventory.Host
}

// RunOptions are the plan-level inputs of a run.
type RunOptions struct {
	Check bool
	Args  map[string]string // -e k=v
	Vars  map[string]any    // inventory vars of "all"
	RunID string
	Event *Event // the webhook delivery that started the run; nil outside orch serve
	// Endpoints are the APIs of controller-side modules (modules.Env.Endpoints).
	Endpoints map[string]modules.Endpoint
}

// Event is a webhook delivery, as ctx.event: struct(name, delivery, payload).
type Event struct {
	Name     string // X-GitHub-Event, e.g. "push"
	Delivery string // X-GitHub-Delivery
	Payload  any    // the JSON body, decoded
}

const (
	localContext = "orch.context"
	localRun     = "orch.run"
	localRole    = "orch.role"
)

func contextFromThread(th *starlark.Thread) context.Context {
	if ctx, ok := th.Local(localContext).(context.Context); ok {
		return ctx
	}
	return context.Background()
}

func runFromThread(th *starlark.Thread) *runState {
	rs, _ := th.Local(localRun).(*runState)
	return rs
}

// roleState collects the tasks one role evaluation records.
type roleState struct {
	env   *modules.Env
	tasks []Task
}

// runState is the per-run state shared by main and every role thread.
type runState struct {
	plan   *Plan
	runner Runner
	opts   RunOptions

	mu     sync.Mutex
	loaded map[string]starlark.StringDict
	steps  map[string]bool
	undos  []undo      // completed steps' undo functions, in order
	step   *activeStep // the step running now, if any
	guards []*guard    // every guard started, for the end of the plan
	noUndo string      // the irreversible step that dropped the undos, once one started
}

func (rs *runState) env(h *inventory.Host) *modules.Env {
	return &modules.Env{Host: h, Files: rs.plan.Files, Check: rs.opts.Check, Hosts: rs.runner,
		Logf:     func(format string, args ...any) { rs.runner.Print("", fmt.Sprintf(format, args...)) },
		CheckTry: rs.runner.CheckTry, Endpoints: rs.opts.Endpoints}
}

// Run executes the plan's top level and then main(ctx). Guards still
// running when main returns are stopped, and a guard that saw more failures
// than it allows fails the run.
func (p *Plan) Run(ctx context.Context, r Runner, opts RunOptions) error {
	rs := &runState{plan: p, runner: r, opts: opts, loaded: map[string]starlark.StringDict{}, steps: map[string]bool{}}
	th, done := rs.thread(ctx, "main", "")
	defer done()
	err := rs.runMain(th)
	if gerr := rs.stopGuards(); err == nil {
		err = gerr
	}
	return err
}

func (rs *runState) runMain(th *starlark.Thread) error {
	globals, err := rs.exec(th, rs.plan.name)
	if err != nil {
		return err
	}
	main, ok := globals["main"].(starlark.Callable)
	if !ok {
		return &Error{Pos: syntax.MakePosition(&rs.plan.Path, 1, 1), Msg: "the plan has no main(ctx) function"}
	}
	if _, err := starlark.Call(th, main, starlark.Tuple{rs.contextValue()}, nil); err != nil {
		return posError(err)
	}
	return nil
}

func (rs *runState) thread(ctx context.Context, name, host string) (*starlark.Thread, func()) {
	th, done := newThread(ctx, name)
	th.SetLocal(localRun, rs)
	th.Print = func(_ *starlark.Thread, msg string) { rs.runner.Print(host, msg) }
	th.Load = rs.load
	return th, done
}

// exec runs one compiled file once and caches its frozen globals.
func (rs *runState) exec(th *starlark.Thread, name string) (starlark.StringDict, error) {
	rs.mu.Lock()
	g, ok := rs.loaded[name]
	rs.mu.Unlock()
	if ok {
		if g == nil {
			return nil, fmt.Errorf("load cycle through %s", name)
		}
		return g, nil
	}
	rs.mu.Lock()
	rs.loaded[name] = nil // in progress
	rs.mu.Unlock()
	g, err := rs.plan.progs[name].Init(th, rs.plan.env)
	if err != nil {
		return nil, posError(err)
	}
	g.Freeze()
	rs.mu.Lock()
	rs.loaded[name] = g
	rs.mu.Unlock()
	return g, nil
}

func (rs *runState) load(th *starlark.Thread, module string) (starlark.StringDict, error) {
	from := strings.TrimPrefix(th.CallFrame(0).Pos.Filename(), rs.plan.display)
	dep, err := rs.plan.resolveLoad(from, module)
	if err != nil {
		return nil, err
	}
	if _, ok := rs.plan.progs[dep]; !ok {
		return nil, fmt.Errorf("cannot load %q: not found in the plan's folder", module)
	}
	return rs.exec(th, dep)
}
