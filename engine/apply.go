package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/plan"
)

// Apply implements plan.Runner. It evaluates the role for every host
// first, so that a plan error is found before any host changes, then
// converges the hosts in batches of req.Serial, in parallel within a batch.
func (r *run) Apply(ctx context.Context, req plan.ApplyRequest) (plan.ApplyResult, error) {
	var res plan.ApplyResult
	r.emit(Event{Event: "apply_start", Role: req.Role, Count: len(req.Hosts)})
	if len(req.Hosts) == 0 {
		return res, nil
	}
	tasks, unreachable, err := r.evaluate(ctx, req)
	if err != nil {
		return res, err
	}
	r.mu.Lock()
	r.touched = true
	r.mu.Unlock()

	serial := req.Serial
	if serial <= 0 {
		serial = len(req.Hosts)
	}
	outcomes := make([]string, len(req.Hosts))
	reasons := make([]string, len(req.Hosts)) // why a host failed or was unreachable
	failures := 0
	for start := 0; start < len(req.Hosts); start += serial {
		if failures > req.MaxFail {
			break // no further batch starts
		}
		end := min(start+serial, len(req.Hosts))
		var wg sync.WaitGroup
		for i := start; i < end; i++ {
			h := req.Hosts[i]
			if err, ok := unreachable[h.Name]; ok {
				outcomes[i], reasons[i] = r.hostUnreachable(req.Role, h, err), err.Error()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.forks <- struct{}{}
				defer func() { <-r.forks }()
				outcomes[i], reasons[i] = r.converge(ctx, req.Role, h, tasks[h.Name])
			}()
		}
		wg.Wait()
		for i := start; i < end; i++ {
			if outcomes[i] == "failed" || outcomes[i] == "unreachable" {
				failures++
			}
		}
	}
	for i, h := range req.Hosts {
		switch outcomes[i] {
		case "changed":
			res.Changed = append(res.Changed, h)
			res.OK = append(res.OK, h)
		case "ok":
			res.OK = append(res.OK, h)
		case "failed":
			res.Failed = append(res.Failed, h)
		case "unreachable":
			res.Unreachable = append(res.Unreachable, h)
		}
	}
	if err := ctx.Err(); err != nil {
		return res, context.Cause(ctx)
	}
	if failures > req.MaxFail {
		var names []string
		first := ""
		for i, h := range req.Hosts {
			if outcomes[i] == "failed" || outcomes[i] == "unreachable" {
				names = append(names, h.Name)
				if first == "" {
					first = reasons[i]
				}
			}
		}
		return res, fmt.Errorf("%w: %d of %d (%s), more than max_fail=%d; first: %s",
			ErrTooManyFailures, failures, len(req.Hosts), strings.Join(names, ", "), req.MaxFail, first)
	}
	return res, nil
}

// evaluate runs the role for every host, in parallel. A host whose facts
// could not be gathered is unreachable; any other error is the plan's.
func (r *run) evaluate(ctx context.Context, req plan.ApplyRequest) (map[string][]plan.Task, map[string]error, error) {
	tasks := make(map[string][]plan.Task, len(req.Hosts))
	unreachable := map[string]error{}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	for _, h := range req.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.forks <- struct{}{}
			defer func() { <-r.forks }()
			ts, err := req.Eval(ctx, h)
			mu.Lock()
			defer mu.Unlock()
			var ue *UnreachableError
			switch {
			case errors.As(err, &ue):
				unreachable[h.Name] = ue
			case err != nil:
				if first == nil {
					first = fmt.Errorf("role %s for %s: %w", req.Role, h.Name, err)
				}
			default:
				tasks[h.Name] = ts
			}
		}()
	}
	wg.Wait()
	return tasks, unreachable, first
}

func (r *run) hostUnreachable(role string, h *inventory.Host, err error) string {
	r.mu.Lock()
	hr := r.hostReport(h.Name)
	hr.Status = "unreachable"
	if hr.Err == "" {
		hr.Err = err.Error()
	}
	r.mu.Unlock()
	r.emit(Event{Event: "host_done", Role: role, Host: h.Name, Status: "unreachable", Msg: err.Error()})
	return "unreachable"
}

// hostRun is one host's part of an apply.
type hostRun struct {
	r            *run
	role         string
	host         *inventory.Host
	tasks        []plan.Task
	changedPaths map[string]bool // paths changed by earlier tasks, for watchers
	done         Event           // the host_done event being filled in
}

// converge checks and applies one host's tasks and returns its outcome
// (ok, changed, failed or unreachable) and, unless ok or changed, why.
func (r *run) converge(ctx context.Context, role string, h *inventory.Host, tasks []plan.Task) (string, string) {
	r.emit(Event{Event: "host_start", Role: role, Host: h.Name, Tasks: len(tasks)})
	hr := &hostRun{r: r, role: role, host: h, tasks: tasks, changedPaths: map[string]bool{},
		done: Event{Event: "host_done", Role: role, Host: h.Name, Tasks: len(tasks)}}
	t0 := time.Now()
	c, err := r.pool.get(ctx, h)
	hr.done.ConnectMS = time.Since(t0).Milliseconds()
	if err != nil {
		return r.hostUnreachable(role, h, err), err.Error()
	}
	before := c.Exchanges()
	status, failure := hr.run(ctx)
	hr.done.Exchanges = c.Exchanges() - before
	hr.done.Status = status

	r.mu.Lock()
	rep := r.hostReport(h.Name)
	rep.Tasks += len(tasks)
	rep.TasksChanged += hr.done.TasksChanged
	switch {
	case status == "failed":
		rep.Status = "failed"
		if rep.Err == "" {
			rep.Err = failure
		}
	case status == "changed" && rep.Status == "ok":
		rep.Status = "changed"
	}
	r.mu.Unlock()
	hr.done.Msg = failure
	r.emit(hr.done)
	return status, failure
}

// plannedTask is a task with what its check decided.
type plannedTask struct {
	plan.Task
	resp modules.CheckResponse
}

// run checks the host's tasks in one exchange and applies the changes in
// another. A task whose facts an earlier change of the same round may have
// made stale (after a command that ran, or a change to an overlapping path)
// starts a new round, so every task is decided on the state its
// predecessors left: usually there is one round.
func (hr *hostRun) run(ctx context.Context) (status, failure string) {
	pending := hr.tasks
	for len(pending) > 0 {
		planned, err := hr.check(ctx, pending)
		if err != nil {
			return "failed", err.Error()
		}
		cut := staleFrom(planned)
		if hr.r.opts.Check {
			// Nothing runs, so nothing can be re-checked: a task decided on
			// facts a predecessor would change is reported as undecided.
			for i := cut; i < len(planned); i++ {
				if planned[i].resp.Err != nil {
					planned[i].resp = modules.CheckResponse{Changed: true, Reason: "decided only once the tasks before it have run: " + planned[i].resp.Err.Error()}
				}
			}
			cut = len(planned)
		}
		if status, failure := hr.round(ctx, planned[:cut]); status == "failed" {
			hr.skipRest(planned[cut:], "not run: an earlier task failed")
			return status, failure
		}
		pending = pending[cut:]
	}
	if hr.done.TasksChanged > 0 {
		return "changed", ""
	}
	return "ok", ""
}

// round reports, and unless in check mode applies, tasks checked together.
// Tasks after the first failed check do not run; the ones before it do.
func (hr *hostRun) round(ctx context.Context, planned []plannedTask) (status, failure string) {
	stop := len(planned)
	for i, p := range planned {
		if p.resp.Err != nil {
			stop = i
			break
		}
	}
	changes := 0
	for _, p := range planned[:stop] {
		if p.resp.Changed {
			changes++
		}
	}
	if hr.r.opts.Check || changes == 0 {
		for _, p := range planned[:stop] {
			st := "ok"
			if p.resp.Changed {
				st = "changed"
				hr.done.TasksChanged++
			}
			hr.taskEvent(p, st, p.resp.Reason, "")
		}
	} else if status, failure := hr.apply(ctx, planned[:stop]); status == "failed" {
		hr.skipRest(planned[stop:], "not run: an earlier task failed")
		return status, failure
	}
	if stop < len(planned) {
		p := planned[stop]
		msg := hr.taskError(p, p.resp.Err)
		hr.taskEvent(p, "failed", msg, "")
		hr.skipRest(planned[stop+1:], "not run: an earlier task failed")
		return "failed", msg
	}
	return "", ""
}

// staleFrom returns the index of the first task whose check may be stale
// once the changes planned before it are applied, or len(planned).
func staleFrom(planned []plannedTask) int {
	var changed []string // paths changed so far
	opaque := false      // a change with unknown effects (a command) comes first
	for j, p := range planned {
		if (opaque || overlaps(changed, readPaths(p.Impl))) && dependsOnState(p.Impl) {
			return j
		}
		if !p.resp.Changed {
			continue
		}
		if pa, ok := p.Impl.(modules.Pather); ok {
			changed = append(changed, pa.Paths()...)
		} else {
			opaque = true
		}
	}
	return len(planned)
}

// dependsOnState reports whether a task's decision reads the host at all.
func dependsOnState(t modules.Task) bool {
	_, reads := t.(modules.FactReader)
	return reads || t.Probe(modules.ProbeRequest{}) != ""
}

// readPaths lists the paths a task's decision depends on.
func readPaths(t modules.Task) []string {
	var out []string
	if pa, ok := t.(modules.Pather); ok {
		out = append(out, pa.Paths()...)
	}
	if fr, ok := t.(modules.FactReader); ok {
		for _, k := range fr.Facts() {
			out = append(out, k.Key)
		}
	}
	return out
}

// overlaps reports whether a read path is a changed one or, for a changed
// path that stands for a whole tree (it ends in "/"), lies in it.
func overlaps(changed, read []string) bool {
	for _, c := range changed {
		tree, ok := strings.CutSuffix(c, "/")
		for _, r := range read {
			if r == c || ok && (r == tree || strings.HasPrefix(r, c)) {
				return true
			}
		}
	}
	return false
}

// check gathers the shared facts and runs the probes of tasks, all in one
// exchange, and lets each task decide.
func (hr *hostRun) check(ctx context.Context, tasks []plan.Task) ([]plannedTask, error) {
	t0 := time.Now()
	defer func() { hr.done.CheckMS += time.Since(t0).Milliseconds() }()
	diff := hr.r.opts.Diff
	b := newBatch()
	wanted := wantedFacts(tasks)
	for i, w := range wanted {
		b.add(-1-i, w.fact.Script(w.keys), false)
	}
	for i, t := range tasks {
		if probe := t.Impl.Probe(modules.ProbeRequest{Diff: diff}); probe != "" {
			b.add(i, probe, false)
		}
	}
	sections := map[int]*section{}
	if !b.empty() {
		res, err := hr.r.pool.exec(ctx, hr.host, b.script.String())
		if err != nil {
			return nil, err
		}
		if sections, err = b.parse(res.Stdout); err != nil {
			return nil, fmt.Errorf("checking %s: %w (exit %d: %s)", hr.host.Name, err, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
		}
	}
	facts := map[modules.FactKey]any{}
	for i, w := range wanted {
		vals, err := w.fact.Parse(sections[-1-i].output, w.keys)
		if err != nil {
			return nil, fmt.Errorf("gathering %s facts on %s: %w", w.name, hr.host.Name, err)
		}
		for k, v := range vals {
			facts[modules.FactKey{Fact: w.name, Key: k}] = v
		}
	}
	planned := make([]plannedTask, len(tasks))
	for i, t := range tasks {
		req := modules.CheckRequest{Diff: diff, Facts: facts}
		if s := sections[i]; s != nil {
			req.Output, req.ProbeCode = s.output, s.code
		}
		if w, ok := t.Impl.(modules.Watcher); ok {
			for _, p := range w.Watches() {
				req.Triggered = req.Triggered || hr.changedPaths[p]
			}
		}
		planned[i].Task = t
		t.Impl.Check(req, &planned[i].resp)
		if pa, ok := t.Impl.(modules.Pather); ok && planned[i].resp.Changed {
			for _, p := range pa.Paths() {
				hr.changedPaths[strings.TrimSuffix(p, "/")] = true
			}
		}
	}
	return planned, nil
}

// factRequest is one shared fact and the keys a host's tasks want of it.
type factRequest struct {
	name string
	fact modules.Fact
	keys []string
}

// wantedFacts collects the shared facts that tasks read, each key once, in
// the order tasks ask for them.
func wantedFacts(tasks []plan.Task) []factRequest {
	var out []factRequest
	index := map[string]int{}
	seen := map[modules.FactKey]bool{}
	for _, t := range tasks {
		fr, ok := t.Impl.(modules.FactReader)
		if !ok {
			continue
		}
		for _, k := range fr.Facts() {
			if seen[k] {
				continue
			}
			seen[k] = true
			i, ok := index[k.Fact]
			if !ok {
				f, found := modules.LookupFact(k.Fact)
				if !found {
					panic(fmt.Sprintf("engine: task %s reads unregistered fact %q", t.Name(), k.Fact))
				}
				i = len(out)
				index[k.Fact] = i
				out = append(out, factRequest{name: k.Fact, fact: f})
			}
			out[i].keys = append(out[i].keys, k.Key)
		}
	}
	return out
}

// apply runs the Apply snippets of the changed tasks in order, in one
// exchange unless uploads split it; a script stops at its first failing
// snippet.
func (hr *hostRun) apply(ctx context.Context, planned []plannedTask) (status, failure string) {
	t0 := time.Now()
	defer func() { hr.done.ApplyMS += time.Since(t0).Milliseconds() }()
	// A task with an upload starts a batch of its own: its content goes over
	// SFTP once the tasks before it (which may create its directory) ran.
	for start := 0; start < len(planned); {
		end := start + 1
		for end < len(planned) && !(planned[end].resp.Changed && planned[end].resp.Upload != nil) {
			end++
		}
		if status, failure := hr.applyBatch(ctx, planned[start:end]); status == "failed" {
			hr.skipRest(planned[end:], "not run: an earlier task failed")
			return status, failure
		}
		start = end
	}
	return "", ""
}

// applyBatch runs the Apply snippets of changed tasks in one exchange,
// after the first task's upload, if it has one.
func (hr *hostRun) applyBatch(ctx context.Context, planned []plannedTask) (status, failure string) {
	if p := planned[0]; p.resp.Changed && p.resp.Upload != nil {
		if err := hr.upload(ctx, p.resp.Upload); err != nil {
			msg := hr.taskError(p, err)
			hr.taskEvent(p, "failed", msg, "")
			hr.skipRest(planned[1:], "not run: an earlier task failed")
			return "failed", msg
		}
	}
	b := newBatch()
	for i, p := range planned {
		if p.resp.Changed {
			b.add(i, p.resp.Apply, true)
		}
	}
	res, err := hr.r.pool.exec(ctx, hr.host, b.script.String())
	var sections map[int]*section
	if err == nil {
		sections, err = b.parse(res.Stdout)
		if err != nil {
			err = fmt.Errorf("%w (exit %d: %s)", err, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
		}
	}
	for i, p := range planned {
		if !p.resp.Changed {
			hr.taskEvent(p, "ok", p.resp.Reason, "")
			continue
		}
		switch s := sections[i]; {
		case err != nil:
			msg := hr.taskError(p, err)
			hr.taskEvent(p, "failed", msg, "")
			hr.skipRest(planned[i+1:], "not run: the host's apply failed")
			return "failed", msg
		case !s.ran:
			hr.taskEvent(p, "skipped", "not run: an earlier task failed", "")
		case s.code != 0:
			msg := hr.taskError(p, fmt.Errorf("exit status %d", s.code))
			hr.taskEvent(p, "failed", msg, string(s.output))
			hr.skipRest(planned[i+1:], "not run: an earlier task failed")
			return "failed", msg
		case s.noChange != "":
			hr.taskEvent(p, "ok", s.noChange, string(s.output))
		default:
			hr.done.TasksChanged++
			hr.taskEvent(p, "changed", p.resp.Reason, string(s.output))
		}
	}
	return "", ""
}

func (hr *hostRun) upload(ctx context.Context, up *modules.Upload) error {
	c, err := hr.r.pool.get(ctx, hr.host)
	if err != nil {
		return err
	}
	return c.WriteFile(ctx, up.Path, up.Data, up.Mode)
}

// taskError names the task, its plan position and the host.
func (hr *hostRun) taskError(p plannedTask, err error) string {
	return fmt.Sprintf("%s (%s) on %s: %v", p.Name(), p.Pos, hr.host.Name, err)
}

func (hr *hostRun) skipRest(rest []plannedTask, why string) {
	for _, p := range rest {
		hr.taskEvent(p, "skipped", why, "")
	}
}

func (hr *hostRun) taskEvent(p plannedTask, status, msg, output string) {
	e := Event{Event: "task", Role: hr.role, Host: hr.host.Name, Task: p.Name(), Module: p.Module,
		Pos: p.Pos.String(), Status: status, Msg: msg}
	if hr.r.opts.Diff && status == "changed" {
		e.Diff = p.resp.Diff
	}
	if status == "failed" {
		e.Output = output
	}
	if s, ok := p.Impl.(modules.Secret); ok && s.IsSecret() {
		e.Output = "" // a secret task's output may echo its content
	}
	hr.r.emit(e)
}
