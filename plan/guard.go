package plan

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// guard calls a check again and again in the background while a flow
// runs, so that the flow proves in its own output that a switch dropped
// nothing: ctx.guard(name, fn, interval="200ms", max_fail=0).
type guard struct {
	rs       *runState
	name     string
	fn       starlark.Callable
	interval time.Duration
	maxFail  int

	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	probes  int
	failed  int
	lastErr string
	tripped bool // more than maxFail calls failed
}

// guardProgressEvery is how often, in probes, a guard reports its tally
// while nothing fails, for live progress.
const guardProgressEvery = 25

// GuardError is how a step fails when one of the plan's guards saw more
// failed probes than it allows.
type GuardError struct {
	Guard   string
	Failed  int
	Probes  int
	MaxFail int
	Last    string
}

func (e *GuardError) Error() string {
	return fmt.Sprintf("guard %q: %d of %d probes failed (max_fail=%d); last: %s", e.Guard, e.Failed, e.Probes, e.MaxFail, e.Last)
}

func (rs *runState) guardBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name     string
		fn       starlark.Callable
		interval = "200ms"
		maxFail  int
	)
	if err := notInRole(th, b); err != nil {
		return nil, err
	}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "fn", &fn, "interval?", &interval, "max_fail?", &maxFail); err != nil {
		return nil, err
	}
	d, err := time.ParseDuration(interval)
	if err != nil || d <= 0 {
		return nil, fmt.Errorf("%s: interval %q is not a duration like \"200ms\"", b.Name(), interval)
	}
	if maxFail < 0 {
		return nil, fmt.Errorf("%s: max_fail cannot be negative", b.Name())
	}
	fn.(starlark.Value).Freeze() // it runs on a thread of its own
	g := &guard{rs: rs, name: name, fn: fn, interval: d, maxFail: maxFail, stop: make(chan struct{}), done: make(chan struct{})}
	rs.mu.Lock()
	for _, other := range rs.guards {
		if other.name == name {
			rs.mu.Unlock()
			return nil, fmt.Errorf("%s: a guard named %q already runs in this plan", b.Name(), name)
		}
	}
	rs.guards = append(rs.guards, g)
	rs.mu.Unlock()
	go g.loop(contextFromThread(th))
	return starlarkstruct.FromStringDict(starlark.String("guard"), starlark.StringDict{
		"name": starlark.String(name),
		"stop": starlark.NewBuiltin("stop", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			probes, failed := g.halt()
			return starlarkstruct.FromStringDict(starlark.String("guard_result"), starlark.StringDict{
				"probes": starlark.MakeInt(probes), "failed": starlark.MakeInt(failed)}), nil
		}),
	}), nil
}

func (g *guard) loop(ctx context.Context) {
	defer close(g.done)
	tick := time.NewTicker(g.interval)
	defer tick.Stop()
	for {
		g.probe(ctx)
		select {
		case <-g.stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probe calls fn once, on a fresh thread; an error or a False result is
// a failed probe.
func (g *guard) probe(ctx context.Context) {
	th, done := g.rs.thread(ctx, "guard "+g.name, "")
	v, err := starlark.Call(th, g.fn, nil, nil)
	done()
	select {
	case <-g.stop:
		return // stopped while probing: the probe may have been cut short
	default:
	}
	if ctx.Err() != nil {
		return
	}
	if err == nil && v == starlark.False {
		err = fmt.Errorf("returned False")
	}
	g.mu.Lock()
	g.probes++
	if err != nil {
		g.failed++
		g.lastErr = posError(err).Error()
	}
	trip := g.failed > g.maxFail && !g.tripped
	g.tripped = g.tripped || trip
	rep := g.report(false)
	rep.Failing = err != nil
	g.mu.Unlock()
	if err != nil || rep.Probes%guardProgressEvery == 0 {
		g.rs.runner.Guard(rep) // every failure, and progress now and then
	}
	if trip {
		g.rs.failStep(&GuardError{Guard: g.name, Failed: rep.Failed, Probes: rep.Probes, MaxFail: g.maxFail, Last: rep.LastError})
	}
}

// report is the tally; callers hold g.mu.
func (g *guard) report(stopped bool) GuardReport {
	return GuardReport{Name: g.name, Probes: g.probes, Failed: g.failed, MaxFail: g.maxFail, LastError: g.lastErr, Stopped: stopped}
}

// halt stops the guard, waits for its last probe, reports and returns the
// tally. It is safe to call more than once.
func (g *guard) halt() (probes, failed int) {
	g.once.Do(func() {
		close(g.stop)
		<-g.done
		g.mu.Lock()
		rep := g.report(true)
		g.mu.Unlock()
		g.rs.runner.Guard(rep)
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.probes, g.failed
}

// failStep fails the step running now, if any, with the guard's verdict.
func (rs *runState) failStep(err *GuardError) {
	rs.mu.Lock()
	st := rs.step
	rs.mu.Unlock()
	if st == nil {
		return // between steps: the end of the plan reports it
	}
	st.cancel(err)
	st.th.Cancel(err.Error())
}

// stopGuards stops every guard still running when the plan ends. A guard
// that saw more failures than it allows fails the run, even when no step
// was running to fail.
func (rs *runState) stopGuards() error {
	rs.mu.Lock()
	guards := rs.guards
	rs.mu.Unlock()
	var first error
	for _, g := range guards {
		g.halt()
		g.mu.Lock()
		if g.failed > g.maxFail && first == nil {
			first = &GuardError{Guard: g.name, Failed: g.failed, Probes: g.probes, MaxFail: g.maxFail, Last: g.lastErr}
		}
		g.mu.Unlock()
	}
	return first
}
