package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/orch-dev/orch/internal/starvalue"
	"github.com/orch-dev/orch/inventory"
)

type undo struct {
	step   string
	fn     starlark.Callable
	result starlark.Value
}

// activeStep is the step running now: a guard that fails cancels it.
type activeStep struct {
	name   string
	th     *starlark.Thread
	cancel context.CancelCauseFunc
}

// stepBuiltin is ctx.step(name, fn, undo=None, irreversible=False). It runs
// fn as a named, journaled step. When fn fails, the undo functions of the
// completed steps run in reverse order. An irreversible step is a point of
// no return: once it starts, earlier undos are dropped, and a failure from
// there on is reported, not rolled back (orch resume finishes the flow
// forward). In a resumed run, a step that completed before is skipped and
// returns its recorded result.
func (rs *runState) stepBuiltin(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name         string
		fn           starlark.Callable
		undoFn       starlark.Value = starlark.None
		irreversible bool
	)
	if err := notInRole(th, b); err != nil {
		return nil, err
	}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "fn", &fn, "undo?", &undoFn, "irreversible?", &irreversible); err != nil {
		return nil, err
	}
	var undoCall starlark.Callable
	if undoFn != starlark.None {
		c, ok := undoFn.(starlark.Callable)
		if !ok {
			return nil, fmt.Errorf("%s: undo must be callable, got %s", b.Name(), undoFn.Type())
		}
		if irreversible {
			return nil, fmt.Errorf("%s %q: an irreversible step has no undo", b.Name(), name)
		}
		undoCall = c
	}
	rs.mu.Lock()
	dup, nested := rs.steps[name], rs.step != nil
	rs.steps[name] = true
	rs.mu.Unlock()
	switch {
	case dup:
		return nil, fmt.Errorf("%s: step %q already ran in this plan; step names must be unique", b.Name(), name)
	case nested:
		return nil, fmt.Errorf("%s %q: steps cannot be nested", b.Name(), name)
	}
	if raw, ok := rs.runner.StepDone(name); ok {
		result, err := rs.decodeResult(raw)
		if err != nil {
			return nil, fmt.Errorf("%s %q: recorded result: %w", b.Name(), name, err)
		}
		if irreversible {
			rs.dropUndos(name)
		}
		rs.pushUndo(name, undoCall, result)
		if err := rs.runner.Step(StepEvent{Name: name, Status: StepSkipped, Irreversible: irreversible, Result: raw}); err != nil {
			return nil, err
		}
		return result, nil
	}
	if irreversible {
		rs.dropUndos(name)
	}
	if err := rs.runner.Step(StepEvent{Name: name, Status: StepStart, Irreversible: irreversible}); err != nil {
		return nil, err
	}
	start := time.Now()
	result, err := rs.runStep(th, name, fn)
	var raw json.RawMessage
	if err == nil {
		if raw, err = encodeResult(result); err != nil {
			err = fmt.Errorf("its result cannot be journaled, so a resumed run could not return it: %w (return None, bools, numbers, strings, lists, dicts or hosts)", err)
		}
	}
	if err != nil {
		rs.runner.Step(StepEvent{Name: name, Status: StepFailed, Irreversible: irreversible, Err: err, Duration: time.Since(start)})
		rs.rollback(contextFromThread(th))
		return nil, &stepError{step: name, err: err}
	}
	rs.pushUndo(name, undoCall, result)
	if err := rs.runner.Step(StepEvent{Name: name, Status: StepDone, Irreversible: irreversible, Result: raw, Duration: time.Since(start)}); err != nil {
		return nil, err
	}
	return result, nil
}

// runStep calls fn with a context of its own, which a failing guard
// cancels, so that an apply in flight stops too.
func (rs *runState) runStep(th *starlark.Thread, name string, fn starlark.Callable) (starlark.Value, error) {
	parent := contextFromThread(th)
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	th.SetLocal(localContext, ctx)
	defer th.SetLocal(localContext, parent)
	rs.mu.Lock()
	rs.step = &activeStep{name: name, th: th, cancel: cancel}
	rs.mu.Unlock()
	defer func() {
		rs.mu.Lock()
		rs.step = nil
		rs.mu.Unlock()
	}()
	result, err := starlark.Call(th, fn, nil, nil)
	if err != nil {
		var gf *GuardError
		if cause := context.Cause(ctx); errors.As(cause, &gf) {
			return nil, gf // the guard's verdict, not the cancellation it caused
		}
		return nil, posError(err)
	}
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

// dropUndos forgets the undos of the steps before an irreversible one.
func (rs *runState) dropUndos(step string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.undos = nil
	rs.noUndo = step
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
		start := time.Now()
		if _, err := starlark.Call(th, u.fn, args, nil); err != nil {
			rs.runner.Step(StepEvent{Name: u.step, Status: StepUndoFailed, Err: posError(err), Duration: time.Since(start)})
			continue
		}
		rs.runner.Step(StepEvent{Name: u.step, Status: StepUndone, Duration: time.Since(start)})
	}
}

// encodeResult records a step's result as JSON so that a resumed run can
// return it; hosts keep everything needed to reach them again.
func encodeResult(v starlark.Value) (json.RawMessage, error) {
	g, err := starvalue.ToGo(v)
	if err != nil {
		return nil, err
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
	return starvalue.FromGo(v)
}
