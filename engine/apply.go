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
	"github.com/orch-dev/orch/plans"
)

// Apply implements plans.Runner. It evaluates the role for every host
// first, so that a plan error is found before any host changes, then
// converges the hosts in batches of req.Serial, in parallel within a batch.
func (r *run) Apply(ctx context.Context, req plans.ApplyRequest) (plans.ApplyResult, error) {
	var res plans.ApplyResult
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
func (r *run) evaluate(ctx context.Context, req plans.ApplyRequest) (map[string][]plans.Task, map[string]error, error) {
	tasks := make(map[string][]plans.Task, len(req.Hosts))
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
	r     *run
	role  string
	host  *inventory.Host
	tasks []plans.Task
	done  Event // the host_done event being filled in
}

// converge checks and applies one host's tasks and returns its outcome
// (ok, changed, failed or unreachable) and, unless ok or changed, why.
func (r *run) converge(ctx context.Context, role string, h *inventory.Host, tasks []plans.Task) (string, string) {
	r.emit(Event{Event: "host_start", Role: role, Host: h.Name, Tasks: len(tasks)})
	hr := &hostRun{r: r, role: role, host: h, tasks: tasks,
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
	plans.Task
	resp modules.CheckResponse
}

// run is the check phase (one exchange for all probes), then, unless in
// check mode, the apply phase (one exchange for all changes).
func (hr *hostRun) run(ctx context.Context) (status, failure string) {
	planned, err := hr.check(ctx)
	if err != nil {
		return "failed", err.Error()
	}
	// Tasks after the first failed check do not run; the ones before it do.
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
	if hr.done.TasksChanged > 0 {
		return "changed", ""
	}
	return "ok", ""
}

// check gathers the shared facts and runs every task's probe, all in one
// exchange, and lets each task decide.
func (hr *hostRun) check(ctx context.Context) ([]plannedTask, error) {
	t0 := time.Now()
	defer func() { hr.done.CheckMS = time.Since(t0).Milliseconds() }()
	diff := hr.r.opts.Diff
	b := newBatch()
	wanted := wantedFacts(hr.tasks)
	for i, w := range wanted {
		b.add(-1-i, w.fact.Script(w.keys), false)
	}
	for i, t := range hr.tasks {
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
	changedPaths := map[string]bool{}
	planned := make([]plannedTask, len(hr.tasks))
	for i, t := range hr.tasks {
		req := modules.CheckRequest{Diff: diff, Facts: facts}
		if s := sections[i]; s != nil {
			req.Output, req.ProbeCode = s.output, s.code
		}
		if w, ok := t.Impl.(modules.Watcher); ok {
			for _, p := range w.Watches() {
				req.Triggered = req.Triggered || changedPaths[p]
			}
		}
		planned[i].Task = t
		t.Impl.Check(req, &planned[i].resp)
		if pa, ok := t.Impl.(modules.Pather); ok && planned[i].resp.Changed {
			for _, p := range pa.Paths() {
				changedPaths[p] = true
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
func wantedFacts(tasks []plans.Task) []factRequest {
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
// exchange; the script stops at the first failing snippet.
func (hr *hostRun) apply(ctx context.Context, planned []plannedTask) (status, failure string) {
	t0 := time.Now()
	defer func() { hr.done.ApplyMS = time.Since(t0).Milliseconds() }()
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
