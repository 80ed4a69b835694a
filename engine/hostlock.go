package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// When a run locks its hosts. Hosts are known only as the plan runs (a
// cloud call adds the machines it creates), so a run cannot lock them all
// up front. Instead:
//
//   - at its start, a run locks its plan with its inventories, so the same
//     plan never runs twice at once (two DNS swaps would create, and undo,
//     the same machines);
//   - ctx.apply locks every target host, all or none, before it evaluates
//     the role on any of them: a host that another run holds refuses the
//     whole apply at once, naming the holder, and nothing of that apply is
//     touched;
//   - any other first contact with a host (a fact read in main,
//     ctx.wait_for_host, a layered connection's parent) locks that host
//     first.
//
// Locks are held until the run ends. Hosts not created yet (--check
// placeholders) lock nothing.

// lockingRunner is the run as the plan sees it: applies lock their hosts
// before anything else.
type lockingRunner struct{ *run }

// Apply implements plan.Runner.
func (l lockingRunner) Apply(ctx context.Context, req plan.ApplyRequest) (plan.ApplyResult, error) {
	if err := l.lockHosts(req.Hosts); err != nil {
		return plan.ApplyResult{}, err
	}
	return l.run.Apply(ctx, req)
}

// lockHosts locks hosts for the run, all or none.
func (r *run) lockHosts(hosts []*inventory.Host) error {
	var keys []string
	names := map[string]string{}
	for _, h := range hosts {
		if h.IsPlaceholder() {
			continue
		}
		key := hostLockKey(h)
		if _, dup := names[key]; !dup {
			names[key] = h.Name
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	stale, err := r.locks.Lock(keys)
	if err != nil {
		var le *LockedError
		if errors.As(err, &le) {
			le.What = fmt.Sprintf("host %s (%s)", names[le.Key], strings.TrimPrefix(le.Key, "host "))
		}
		return err
	}
	r.noteStale(stale)
	return nil
}

// noteStale warns about locks taken over from runs that ended without
// releasing them.
func (r *run) noteStale(stale []StaleLock) {
	for _, s := range stale {
		h := s.Holder
		r.warn(fmt.Sprintf("took over the lock of %s from run %s (pid %d, by %s on %s since %s), which ended without releasing it; check what it left half-done, or resume it with orch resume %s",
			s.Key, h.RunID, h.PID, h.User, h.Host, h.Since.Local().Format(time.RFC3339), h.RunID))
	}
}
