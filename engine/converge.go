package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/plan"
)

// hostRun is one host's part of an apply: its tasks, checked in one
// exchange and applied in a second, with the handlers they trigger.
type hostRun struct {
	r     *run
	role  string
	host  *inventory.Host
	items []*item
	done  Event // the host_done event being filled in

	pending []pendingHandler // handlers an earlier run of the host left to do
	ran     map[string]bool  // IDs of the handlers run in this apply
}

// item is one task of the host and where it stands.
type item struct {
	plan.Task
	id       int
	as       identity
	resp     modules.CheckResponse
	facts    map[modules.FactKey]any // what its check read, for the recheck
	output   []byte                  // its probe output, for the recheck
	code     int
	final    bool   // reported
	changed  bool   // its change was applied
	uploadTo string // where its upload goes under become
}

// queuedHandler is a handler some task asked for.
type queuedHandler struct {
	modules.Handler
	as      identity
	known   bool  // triggered by a change already applied (or pending from an earlier run)
	sources []int // tasks whose change, in the script being built, triggers it
}

// converge checks and applies one host's tasks and returns its outcome
// and, unless ok or changed, why.
func (r *run) converge(ctx context.Context, req plan.ApplyRequest, h *inventory.Host, tasks []plan.Task) (Status, string) {
	r.emit(Event{Event: "host_start", Role: req.Role, Host: h.Name, Tasks: len(tasks)})
	hr := &hostRun{r: r, role: req.Role, host: h, ran: map[string]bool{},
		done: Event{Event: "host_done", Role: req.Role, Host: h.Name, Tasks: len(tasks)}}
	for i, t := range tasks {
		hr.items = append(hr.items, &item{Task: t, id: i, as: resolveBecome(h, req.Become, t.Become)})
	}
	var status Status
	var failure string
	if h.IsPlaceholder() {
		status = hr.placeholder()
	} else {
		t0 := time.Now()
		c, err := r.pool.get(ctx, h)
		hr.done.ConnectMS = time.Since(t0).Milliseconds()
		if err != nil {
			return r.hostUnreachable(req.Role, h, err), err.Error()
		}
		before := c.Exchanges()
		status, failure = hr.run(ctx)
		hr.done.Exchanges = c.Exchanges() - before
	}
	hr.done.Status = status

	r.mu.Lock()
	rep := r.hostReport(h.Name)
	rep.Tasks += len(tasks)
	rep.TasksChanged += hr.done.TasksChanged
	switch {
	case status == Failed || status == Unreachable:
		rep.Status = status
		if rep.Err == "" {
			rep.Err = failure
		}
	case status == Changed && rep.Status == OK:
		rep.Status = Changed
	}
	r.mu.Unlock()
	hr.done.Msg = failure
	r.emit(hr.done)
	return status, failure
}

// placeholder reports the tasks of a host that --check has not created.
func (hr *hostRun) placeholder() Status {
	for _, it := range hr.items {
		hr.done.TasksChanged++
		hr.report(it, Changed, "would change (host not created yet)", "")
	}
	if len(hr.items) == 0 {
		return OK
	}
	return Changed
}

// run converges the host: each run of tasks with the same become identity
// (usually all of them) is a segment, checked in one exchange and applied
// in another. Handlers run once at the end.
func (hr *hostRun) run(ctx context.Context) (status Status, failure string) {
	hr.loadPending()
	for start := 0; start < len(hr.items); {
		end := start + 1
		for end < len(hr.items) && hr.items[end].as == hr.items[start].as {
			end++
		}
		last := end == len(hr.items)
		if failure = hr.segment(ctx, hr.items[start:end], last); failure != "" {
			hr.skip(hr.items[end:], "not run: an earlier task failed")
			hr.savePending()
			return hr.failedStatus(ctx), failure
		}
		start = end
	}
	if failure = hr.runHandlers(ctx); failure != "" {
		hr.savePending()
		return hr.failedStatus(ctx), failure
	}
	hr.clearPending()
	if hr.done.TasksChanged > 0 {
		return Changed, ""
	}
	return OK, ""
}

// failedStatus tells a host that failed from one whose connection was lost.
func (hr *hostRun) failedStatus(ctx context.Context) Status {
	if ctx.Err() == nil && hr.r.pool.lost(hr.host.Name) {
		return Unreachable
	}
	return Failed
}

// segment checks and applies tasks that share a become identity. It
// returns the failure, or "".
func (hr *hostRun) segment(ctx context.Context, items []*item, last bool) string {
	if err := hr.check(ctx, items); err != nil {
		msg := err.Error()
		hr.skip(items, "not run: checking the host failed: "+msg)
		return msg
	}
	if hr.r.opts.Check {
		return hr.reportCheck(items, last)
	}
	pending, carried := items, []string(nil)
	for len(pending) > 0 {
		var failure string
		if pending, carried, failure = hr.applyRound(ctx, pending, last, carried); failure != "" {
			return failure
		}
	}
	return ""
}

// reportCheck reports what check mode decided: nothing runs, so a task
// whose decision an earlier change would alter is reported as undecided.
func (hr *hostRun) reportCheck(items []*item, last bool) string {
	var effects []string
	for pos, it := range items {
		resp := it.resp
		if touches(effects, readsOf(it)) && resp.Err != nil {
			resp = modules.CheckResponse{Changed: true, Reason: "decided only once the tasks before it have run: " + resp.Err.Error()}
		}
		switch {
		case resp.Err != nil:
			msg := hr.taskError(it, resp.Err)
			hr.report(it, Failed, msg, "")
			hr.skip(items[pos+1:], "not run: an earlier task failed")
			return msg
		case resp.Changed:
			it.changed = true // as if: watchers and handlers report what they would do
			hr.done.TasksChanged++
			effects = append(effects, effectsOf(it)...)
			hr.report(it, Changed, resp.Reason, "")
		default:
			hr.report(it, OK, resp.Reason, "")
		}
	}
	if last {
		for _, q := range hr.handlerPlan(nil, nil) {
			hr.done.TasksChanged++
			hr.handlerEvent(q, Changed, "would "+q.Action, "")
		}
	}
	return ""
}

// effectsOf lists what a task may change; Anything for an opaque one.
func effectsOf(it *item) []string {
	if e, ok := it.Impl.(modules.Effector); ok {
		return e.Effects()
	}
	return []string{modules.Anything}
}

// readsOf lists the state a task's decision reads: its facts' keys, its
// declared reads and, for a probe that declares none, anything.
func readsOf(it *item) []string {
	var out []string
	if fr, ok := it.Impl.(modules.FactReader); ok {
		for _, k := range fr.Facts() {
			out = append(out, k.StateKey())
		}
	}
	if rd, ok := it.Impl.(modules.Reader); ok {
		out = append(out, rd.Reads()...)
	} else if it.Impl.Probe(modules.ProbeRequest{}) != "" {
		out = append(out, modules.Anything)
	}
	return out
}

// touches reports whether changes to effects may alter state that reads
// names.
func touches(effects, reads []string) bool {
	for _, e := range effects {
		if e == modules.Anything && len(reads) > 0 {
			return true
		}
	}
	for _, r := range reads {
		if r == modules.Anything && len(effects) > 0 {
			return true
		}
	}
	return modules.OverlapAny(effects, reads)
}

// applyRound applies decided tasks in one exchange. A task whose check an
// earlier change may have made stale (carried: changes applied since the
// tasks were checked) is rechecked on the host first; if its facts did
// change, the exchange stops there, gathers fresh facts for the rest, and
// returns those tasks, re-decided, for another round. A task whose facts
// cannot be rechecked on the host stops the exchange the same way before
// it runs, and a task with an upload starts a round of its own.
func (hr *hostRun) applyRound(ctx context.Context, items []*item, last bool, carried []string) (next []*item, nextCarried []string, failure string) {
	sc := newScript()
	effects := append([]string(nil), carried...)
	var entries []*item      // tasks up to where the script stops, in order
	stop, stale := -1, false // position where the script stops before running a task; whether that task needs fresh facts
	reprobeFrom := -1        // position of the first task that may need fresh facts
	var upload *item
	inScript := map[int]bool{}
	for pos, it := range items {
		recheck := ""
		if touches(effects, readsOf(it)) {
			if reprobeFrom < 0 {
				reprobeFrom = pos
			}
			var ok bool
			if recheck, ok = hr.recheckOf(it); !ok {
				stop, stale = pos, true
				sc.stopStatic(it.id)
				break
			}
		}
		if it.resp.Changed && it.resp.Upload != nil {
			if upload != nil || len(inScript) > 0 {
				stop = pos // its upload must wait for the tasks before it
				break
			}
			upload = it
		}
		entries = append(entries, it)
		e := applyEntry{id: it.id, recheck: recheck, fail: it.resp.Err != nil}
		if it.resp.Changed {
			e.apply, e.unless, e.timeout = it.resp.Apply, it.resp.Unless, it.Timeout.Seconds()
			if it.resp.Upload != nil {
				e.upload = hr.uploadPath(it)
			}
		}
		if e.apply == "" && e.recheck == "" && !e.fail {
			continue // decided unchanged and safe: nothing to run
		}
		sc.apply(e)
		inScript[it.id] = true
		if e.fail && recheck == "" {
			break // a check that failed on facts nothing changed: stop here
		}
		if it.resp.Changed {
			effects = append(effects, effectsOf(it)...)
		}
	}
	complete := stop < 0 && (len(entries) == 0 || entries[len(entries)-1].resp.Err == nil)
	var handlers []*queuedHandler
	if complete && last {
		handlers = hr.handlerPlan(inScript, &items[0].as)
		for i, q := range handlers {
			sc.handler(i, q.Handler, q.known, q.sources)
		}
	}
	if reprobeFrom >= 0 {
		sc.ifStale(func() { hr.addReads(sc, items[reprobeFrom:]) })
	}
	if len(inScript) == 0 && len(handlers) == 0 && !stale {
		for _, it := range entries {
			hr.report(it, OK, it.resp.Reason, "")
		}
		if stop >= 0 {
			return items[stop:], effects, ""
		}
		return nil, nil, ""
	}

	t0 := time.Now()
	defer func() { hr.done.ApplyMS += time.Since(t0).Milliseconds() }()
	if upload != nil {
		if err := hr.upload(ctx, upload); err != nil {
			msg := hr.taskError(upload, err)
			hr.report(upload, Failed, msg, "")
			hr.skip(items, "not run: an earlier task failed")
			return nil, nil, msg
		}
	}
	sections, err := hr.exec(ctx, sc, items[0].as)
	if err != nil {
		msg := hr.taskError(entries[0], err)
		hr.skip(items, "not run: the host's apply failed: "+err.Error())
		return nil, nil, msg
	}
	for pos, it := range entries {
		s := sections[sectionID{kindApply, it.id}]
		switch {
		case s != nil && s.stale:
			rest, failure := hr.refresh(items[pos:], sections)
			return rest, nil, failure
		case it.resp.Err != nil:
			msg := hr.taskError(it, it.resp.Err)
			hr.report(it, Failed, msg, "")
			hr.skip(items[pos+1:], "not run: an earlier task failed")
			return nil, nil, msg
		case !it.resp.Changed:
			hr.report(it, OK, it.resp.Reason, "")
		case s == nil:
			msg := hr.taskError(it, fmt.Errorf("the apply script ended before this task (exit %d)", sections[sectionID{}].code))
			hr.report(it, Failed, msg, "")
			hr.skip(items[pos+1:], "not run: an earlier task failed")
			return nil, nil, msg
		case s.code != 0:
			why := fmt.Errorf("exit status %d", s.code)
			if s.timedOut {
				why = fmt.Errorf("timed out after %s; its processes were ended", it.Timeout)
			}
			msg := hr.taskError(it, withOutput(why, s.output, it))
			hr.report(it, Failed, msg, string(s.output))
			hr.skip(items[pos+1:], "not run: an earlier task failed")
			return nil, nil, msg
		case s.noChange != "":
			hr.report(it, OK, s.noChange, string(s.output))
		default:
			it.changed = true
			hr.done.TasksChanged++
			hr.report(it, Changed, it.resp.Reason, string(s.output))
		}
	}
	if failure := hr.handlersRan(handlers, sections); failure != "" {
		return nil, nil, failure
	}
	switch {
	case stale:
		rest, failure := hr.refresh(items[stop:], sections)
		return rest, nil, failure
	case stop >= 0:
		return items[stop:], effects, ""
	}
	return nil, nil, ""
}

// withOutput adds the last lines of a failed task's output to its error,
// so the reason (a validator's message, say) shows with the failure.
func withOutput(err error, output []byte, it *item) error {
	if s, ok := it.Impl.(modules.Secret); ok && s.IsSecret() {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(output)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	tail := strings.TrimSpace(strings.Join(lines, "\n"))
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, tail)
}

// refresh re-decides tasks from the fresh facts and probes an exchange
// gathered after it stopped for a stale task.
func (hr *hostRun) refresh(rest []*item, sections map[sectionID]*section) ([]*item, string) {
	if err := hr.decide(rest, sections); err != nil {
		msg := hr.taskError(rest[0], err)
		hr.skip(rest, "not run: checking the host failed: "+err.Error())
		return nil, msg
	}
	return rest, ""
}

// skip reports tasks that did not run.
func (hr *hostRun) skip(items []*item, why string) {
	for _, it := range items {
		if !it.final {
			hr.report(it, Skipped, why, "")
		}
	}
}

// taskError names the task, its plan position and the host.
func (hr *hostRun) taskError(it *item, err error) string {
	return fmt.Sprintf("%s (%s) on %s: %v", it.Name(), it.Pos, hr.host.Name, err)
}

func (hr *hostRun) report(it *item, status Status, msg, output string) {
	if it.final {
		return
	}
	it.final = true
	e := Event{Event: "task", Role: hr.role, Host: hr.host.Name, Task: it.Name(), Module: it.Module,
		Pos: it.Pos.String(), Status: status, Msg: msg}
	if hr.r.opts.Diff && status == Changed {
		e.Diff = it.resp.Diff
	}
	if status == Failed {
		e.Output = output
	}
	if s, ok := it.Impl.(modules.Secret); ok && s.IsSecret() {
		e.Output = "" // a secret task's output may echo its content
	}
	hr.r.emit(e)
}
