package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// Apply implements plan.Runner. It evaluates the role for every host
// first, so that a plan error is found before any host changes, then
// converges the hosts in batches of req.Serial, in parallel within a batch.
// Once more than req.MaxFail hosts failed or were unreachable, no further
// batch starts, and the hosts of those batches are reported as not started.
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
	r.setTouched()

	serial := req.Serial
	if serial <= 0 {
		serial = len(req.Hosts)
	}
	outcomes := make([]Status, len(req.Hosts))
	reasons := make([]string, len(req.Hosts)) // why a host failed or was unreachable
	failures := 0
	for start := 0; start < len(req.Hosts); start += serial {
		if failures > req.MaxFail || ctx.Err() != nil {
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
				outcomes[i], reasons[i] = r.converge(ctx, req, h, tasks[h.Name])
			}()
		}
		wg.Wait()
		for i := start; i < end; i++ {
			if outcomes[i].Bad() {
				failures++
			}
		}
	}
	var notStarted []string
	for i, h := range req.Hosts {
		switch outcomes[i] {
		case Changed:
			res.Changed = append(res.Changed, h)
			res.OK = append(res.OK, h)
		case OK:
			res.OK = append(res.OK, h)
		case Failed:
			res.Failed = append(res.Failed, h)
		case Unreachable:
			res.Unreachable = append(res.Unreachable, h)
		default:
			res.NotStarted = append(res.NotStarted, h)
			notStarted = append(notStarted, h.Name)
		}
	}
	if len(notStarted) > 0 {
		r.emit(Event{Event: "warning", Role: req.Role, Msg: fmt.Sprintf("%s: %d hosts never started: %s", req.Role, len(notStarted), strings.Join(notStarted, ", "))})
	}
	if err := ctx.Err(); err != nil {
		return res, context.Cause(ctx)
	}
	if failures > req.MaxFail {
		var names []string
		first := ""
		for i, h := range req.Hosts {
			if outcomes[i].Bad() {
				names = append(names, h.Name)
				if first == "" {
					first = reasons[i]
				}
			}
		}
		msg := fmt.Sprintf("%d of %d (%s), more than max_fail=%d", failures, len(req.Hosts), strings.Join(names, ", "), req.MaxFail)
		if len(notStarted) > 0 {
			msg += fmt.Sprintf("; never started: %s", strings.Join(notStarted, ", "))
		}
		return res, fmt.Errorf("%w: %s; first: %s", ErrTooManyFailures, msg, first)
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

func (r *run) hostUnreachable(role string, h *inventory.Host, err error) Status {
	r.mu.Lock()
	hr := r.hostReport(h.Name)
	hr.Status = Unreachable
	if hr.Err == "" {
		hr.Err = err.Error()
	}
	r.mu.Unlock()
	r.emit(Event{Event: "host_done", Role: role, Host: h.Name, Status: Unreachable, Msg: err.Error()})
	return Unreachable
}
