package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
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
	// Fact returns one fact of a host, gathered on first use.
	Fact(ctx context.Context, h *inventory.Host, name string) (any, error)
	// Print carries the plan's print() output; host is "" in main.
	Print(host, msg string)
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
	// StepEvent journals a step's progress: start, done, skipped, failed,
	// undone or undo_failed.
	StepEvent(name, status string, result json.RawMessage, err error)
}

// Task is one module call recorded while a role was evaluated for a host.
type Task struct {
	Module string // module ID, e.g. "file"
	Pos    syntax.Position
	Impl   modules.Task
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
	Serial  int // batch size; 0 means all hosts at once
	MaxFail int // hosts that may fail before no further batch starts
	// Eval evaluates the role for one host and returns its tasks. It is
	// safe to call concurrently.
	Eval func(ctx context.Context, h *inventory.Host) ([]Task, error)
}

// ApplyResult groups the hosts of an apply by outcome. Changed hosts are
// also in OK.
type ApplyResult struct {
	OK, Changed, Failed, Unreachable []*inventory.Host
}

// RunOptions are the plan-level inputs of a run.
type RunOptions struct {
	Check bool
	Args  map[string]string // -e k=v
	Vars  map[string]any    // inventory vars of "all"
	RunID string
	Event *Event // the webhook delivery that started the run; nil outside orch serve
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
	undos  []undo // completed steps' undo functions, in order
}

type undo struct {
	step   string
	fn     starlark.Callable
	result starlark.Value
}

func (rs *runState) env(h *inventory.Host) *modules.Env {
	return &modules.Env{Host: h, Files: rs.plan.Files, Check: rs.opts.Check, Hosts: rs.runner,
		Logf: func(format string, args ...any) { rs.runner.Print("", fmt.Sprintf(format, args...)) }}
}

// Run executes the plan's top level and then main(ctx).
func (p *Plan) Run(ctx context.Context, r Runner, opts RunOptions) error {
	rs := &runState{plan: p, runner: r, opts: opts, loaded: map[string]starlark.StringDict{}, steps: map[string]bool{}}
	th, done := rs.thread(ctx, "main", "")
	defer done()
	globals, err := rs.exec(th, p.name)
	if err != nil {
		return err
	}
	main, ok := globals["main"].(starlark.Callable)
	if !ok {
		return &Error{Pos: syntax.MakePosition(&p.Path, 1, 1), Msg: "the plan has no main(ctx) function"}
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
	g, err := rs.plan.progs[name].Init(th, predeclared())
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

// contextValue is the ctx passed to main.
func (rs *runState) contextValue() starlark.Value {
	args := starlark.NewDict(len(rs.opts.Args))
	for _, k := range sortedKeys(rs.opts.Args) {
		args.SetKey(starlark.String(k), starlark.String(rs.opts.Args[k]))
	}
	vars, err := plainStarlark(rs.opts.Vars)
	if err != nil || rs.opts.Vars == nil {
		vars = starlark.NewDict(0)
	}
	var event starlark.Value = starlark.None
	if e := rs.opts.Event; e != nil {
		payload, err := plainStarlark(e.Payload)
		if err != nil {
			payload = starlark.None
		}
		event = starlarkstruct.FromStringDict(starlark.String("event"), starlark.StringDict{
			"name": starlark.String(e.Name), "delivery": starlark.String(e.Delivery), "payload": payload})
	}
	args.Freeze()
	vars.Freeze()
	event.Freeze()
	return starlarkstruct.FromStringDict(starlark.String("ctx"), starlark.StringDict{
		"hosts":  starlark.NewBuiltin("ctx.hosts", rs.hosts),
		"apply":  starlark.NewBuiltin("ctx.apply", rs.apply),
		"step":   starlark.NewBuiltin("ctx.step", rs.step),
		"args":   args,
		"vars":   vars,
		"check":  starlark.Bool(rs.opts.Check),
		"run_id": starlark.String(rs.opts.RunID),
		"event":  event,
	})
}

// notInRole refuses ctx calls from a role reached through a closure: roles
// only record tasks, and an apply inside an apply would wait on itself.
func notInRole(th *starlark.Thread, b *starlark.Builtin) error {
	if th.Local(localRole) != nil {
		return fmt.Errorf("%s: cannot be called inside a role; roles only record tasks", b.Name())
	}
	return nil
}

func (rs *runState) hosts(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	pattern := "all"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "pattern?", &pattern); err != nil {
		return nil, err
	}
	hosts, err := rs.runner.Hosts(pattern)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return rs.hostList(hosts), nil
}

func (rs *runState) apply(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		targets starlark.Value
		role    starlark.Callable
		serial  int
		maxFail int
	)
	if err := notInRole(th, b); err != nil {
		return nil, err
	}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "targets", &targets, "role", &role, "serial?", &serial, "max_fail?", &maxFail); err != nil {
		return nil, err
	}
	if serial < 0 || maxFail < 0 {
		return nil, fmt.Errorf("%s: serial and max_fail cannot be negative", b.Name())
	}
	var hosts []*inventory.Host
	if pattern, ok := targets.(starlark.String); ok {
		var err error
		if hosts, err = rs.runner.Hosts(string(pattern)); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
	} else {
		var err error
		if hosts, err = hostList(targets); err != nil {
			return nil, fmt.Errorf("%s: targets: %w", b.Name(), err)
		}
	}
	role.(starlark.Value).Freeze() // role threads run in parallel
	name := role.Name()
	req := ApplyRequest{Role: name, Hosts: hosts, Serial: serial, MaxFail: maxFail}
	req.Eval = func(ctx context.Context, h *inventory.Host) ([]Task, error) {
		rth, done := rs.thread(ctx, "role "+name+" on "+h.Name, h.Name)
		defer done()
		state := &roleState{env: rs.env(h)}
		rth.SetLocal(localRole, state)
		if _, err := starlark.Call(rth, role, starlark.Tuple{rs.hostValue(h)}, nil); err != nil {
			return nil, posError(err)
		}
		return state.tasks, nil
	}
	res, err := rs.runner.Apply(contextFromThread(th), req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", b.Name(), name, err)
	}
	return starlarkstruct.FromStringDict(starlark.String("apply_result"), starlark.StringDict{
		"ok":          rs.hostList(res.OK),
		"changed":     rs.hostList(res.Changed),
		"failed":      rs.hostList(res.Failed),
		"unreachable": rs.hostList(res.Unreachable),
	}), nil
}

func (rs *runState) hostList(hosts []*inventory.Host) *starlark.List {
	l := make([]starlark.Value, len(hosts))
	for i, h := range hosts {
		l[i] = rs.hostValue(h)
	}
	return starlark.NewList(l)
}

// hostList accepts one host or a list of hosts.
func hostList(v starlark.Value) ([]*inventory.Host, error) {
	if h, ok := v.(*hostValue); ok {
		return []*inventory.Host{h.host}, nil
	}
	iter, ok := v.(starlark.Iterable)
	if !ok {
		return nil, fmt.Errorf("want a host, a list of hosts or a pattern, got %s", v.Type())
	}
	var out []*inventory.Host
	it := iter.Iterate()
	defer it.Done()
	var x starlark.Value
	for it.Next(&x) {
		h, ok := x.(*hostValue)
		if !ok {
			return nil, fmt.Errorf("want hosts, got an element of type %s", x.Type())
		}
		out = append(out, h.host)
	}
	return out, nil
}

// toStarlark converts a controller-side call's result.
func (rs *runState) toStarlark(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case *inventory.Host:
		return rs.hostValue(x), nil
	case []*inventory.Host:
		return rs.hostList(x), nil
	}
	return plainStarlark(v)
}

// step runs fn as a named, journaled step. When fn fails, the undo
// functions of the completed steps run in reverse order. In a resumed run,
// a step that completed before is skipped and returns its recorded result.
func (rs *runState) step(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name   string
		fn     starlark.Callable
		undoFn starlark.Value = starlark.None
	)
	if err := notInRole(th, b); err != nil {
		return nil, err
	}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "fn", &fn, "undo?", &undoFn); err != nil {
		return nil, err
	}
	var undoCall starlark.Callable
	if undoFn != starlark.None {
		c, ok := undoFn.(starlark.Callable)
		if !ok {
			return nil, fmt.Errorf("%s: undo must be callable, got %s", b.Name(), undoFn.Type())
		}
		undoCall = c
	}
	rs.mu.Lock()
	dup := rs.steps[name]
	rs.steps[name] = true
	rs.mu.Unlock()
	if dup {
		return nil, fmt.Errorf("%s: step %q already ran in this plan; step names must be unique", b.Name(), name)
	}
	if raw, ok := rs.runner.StepDone(name); ok {
		result, err := rs.decodeResult(raw)
		if err != nil {
			return nil, fmt.Errorf("%s %q: recorded result: %w", b.Name(), name, err)
		}
		rs.pushUndo(name, undoCall, result)
		rs.runner.StepEvent(name, "skipped", raw, nil)
		return result, nil
	}
	rs.runner.StepEvent(name, "start", nil, nil)
	result, err := starlark.Call(th, fn, nil, nil)
	if err != nil {
		err = posError(err)
		rs.runner.StepEvent(name, "failed", nil, err)
		rs.rollback(contextFromThread(th))
		return nil, &stepError{step: name, err: err}
	}
	raw, _ := encodeResult(result)
	rs.pushUndo(name, undoCall, result)
	rs.runner.StepEvent(name, "done", raw, nil)
	return result, nil
}

// stepError keeps the innermost plan position of a failed step.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return fmt.Sprintf("step %q failed: %v", e.step, e.err) }
func (e *stepError) Unwrap() error { return e.err }

func (rs *runState) pushUndo(step string, fn starlark.Callable, result starlark.Value) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.undos = append(rs.undos, undo{step: step, fn: fn, result: result})
}

// rollback runs the undo functions of completed steps, newest first. An undo
// that fails is journaled and the rest still run. Undos run on a thread of
// their own that a cancelled run does not stop: after Ctrl-C in the middle
// of a switch-over, putting things back is what the operator needs.
func (rs *runState) rollback(ctx context.Context) {
	th, done := rs.thread(context.WithoutCancel(ctx), "undo", "")
	defer done()
	rs.mu.Lock()
	undos := rs.undos
	rs.undos = nil
	rs.mu.Unlock()
	for i := len(undos) - 1; i >= 0; i-- {
		u := undos[i]
		if u.fn == nil {
			continue
		}
		var args starlark.Tuple
		if f, ok := u.fn.(*starlark.Function); ok && f.NumParams() == 1 {
			args = starlark.Tuple{u.result} // undo receives what its step returned
		}
		if _, err := starlark.Call(th, u.fn, args, nil); err != nil {
			rs.runner.StepEvent(u.step, "undo_failed", nil, posError(err))
			continue
		}
		rs.runner.StepEvent(u.step, "undone", nil, nil)
	}
}

// encodeResult records a step's result as JSON so that a resumed run can
// return it; hosts keep everything needed to reach them again. Values that
// are not data (functions, say) are recorded as null.
func encodeResult(v starlark.Value) (json.RawMessage, error) {
	g, err := plainGo(v)
	if err != nil {
		return json.RawMessage("null"), err
	}
	return json.Marshal(hostsToJSON(g))
}

func hostsToJSON(v any) any {
	switch x := v.(type) {
	case *inventory.Host:
		return map[string]any{"__host__": journaledHost(x)}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = hostsToJSON(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = hostsToJSON(e)
		}
		return out
	}
	return v
}

// journaledHost keeps what reaching a host again takes: its connection
// fields and its cloud IDs and tags. Other vars stay out of the journal,
// since inventories may hold passwords there.
func journaledHost(h *inventory.Host) *inventory.Host {
	j := *h
	j.Vars = map[string]any{}
	for k, v := range h.Vars {
		if strings.HasSuffix(k, "_id") || k == "tags" {
			j.Vars[k] = v
		}
	}
	return &j
}

func (rs *runState) decodeResult(raw json.RawMessage) (starlark.Value, error) {
	var g any
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, err
	}
	return rs.jsonToStarlark(g)
}

func (rs *runState) jsonToStarlark(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case []any:
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			sv, err := rs.jsonToStarlark(e)
			if err != nil {
				return nil, err
			}
			l[i] = sv
		}
		return starlark.NewList(l), nil
	case map[string]any:
		if raw, ok := x["__host__"]; ok && len(x) == 1 {
			b, _ := json.Marshal(raw)
			var h inventory.Host
			if err := json.Unmarshal(b, &h); err != nil {
				return nil, err
			}
			if known, err := rs.runner.Hosts(h.Name); err == nil && len(known) == 1 {
				return rs.hostValue(known[0]), nil
			}
			if err := rs.runner.AddHost(&h, ""); err != nil {
				return nil, err
			}
			return rs.hostValue(&h), nil
		}
		d := starlark.NewDict(len(x))
		for _, k := range sortedKeys(x) {
			sv, err := rs.jsonToStarlark(x[k])
			if err != nil {
				return nil, err
			}
			d.SetKey(starlark.String(k), sv)
		}
		return d, nil
	}
	return plainStarlark(v)
}

// hostValue is a host as plans see it: h.name, h.address, h.groups, h.vars
// and h.fact(name).
type hostValue struct {
	host *inventory.Host
	rs   *runState
}

var _ starlark.HasAttrs = (*hostValue)(nil)

func (rs *runState) hostValue(h *inventory.Host) *hostValue { return &hostValue{host: h, rs: rs} }

func (h *hostValue) String() string        { return fmt.Sprintf("host(%q)", h.host.Name) }
func (h *hostValue) Type() string          { return "host" }
func (h *hostValue) Freeze()               {}
func (h *hostValue) Truth() starlark.Bool  { return true }
func (h *hostValue) Hash() (uint32, error) { return starlark.String(h.host.Name).Hash() }
func (h *hostValue) AttrNames() []string {
	return []string{"address", "fact", "groups", "name", "vars"}
}

func (h *hostValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(h.host.Name), nil
	case "address":
		return starlark.String(h.host.Address), nil
	case "groups":
		groups := append([]string(nil), h.host.Groups...)
		sort.Strings(groups)
		v, _ := plainStarlark(groups)
		v.Freeze()
		return v, nil
	case "vars":
		v, err := plainStarlark(h.host.Vars)
		if err != nil || h.host.Vars == nil {
			v = starlark.NewDict(0)
		}
		v.Freeze()
		return v, nil
	case "fact":
		return starlark.NewBuiltin("fact", h.fact), nil
	}
	return nil, nil
}

func (h *hostValue) fact(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	v, err := h.rs.runner.Fact(contextFromThread(th), h.host, name)
	if err != nil {
		return nil, fmt.Errorf("fact %q of %s: %w", name, h.host.Name, err)
	}
	return plainStarlark(v)
}

// CompareSameType lets plans compare hosts with == and sort them by name.
func (h *hostValue) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	return starlark.CompareDepth(op, starlark.String(h.host.Name), starlark.String(y.(*hostValue).host.Name), depth)
}
