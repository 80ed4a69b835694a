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

// Fact implements plan.Runner. The first host fact a plan reads of a host
// gathers every registered host fact in one exchange; they are kept for the
// connection's life. A keyed fact is gathered for that key alone.
func (r *run) Fact(ctx context.Context, h *inventory.Host, name, key string) (any, error) {
	f, ok := modules.LookupFact(name)
	if !ok {
		return nil, fmt.Errorf("unknown fact; host facts are %s", strings.Join(modules.HostFacts(), ", "))
	}
	_, isHost := f.(*modules.HostFact)
	switch {
	case isHost && key != "":
		return nil, fmt.Errorf("%s is a fact of the whole host; it takes no key", name)
	case !isHost && key == "":
		return nil, fmt.Errorf("%s is a keyed fact: name the key, as in h.fact(%q, KEY)", name, name)
	}
	if h.IsPlaceholder() {
		return inventory.NotCreated, nil
	}
	if isHost {
		if v, ok := r.pool.hostFact(h.Name, name); ok {
			return v, nil
		}
		if err := r.gatherHostFacts(ctx, h); err != nil {
			return nil, err
		}
		v, _ := r.pool.hostFact(h.Name, name)
		return v, nil
	}
	sc := newScript()
	sc.read(kindFact, 0, f.Script([]string{key}))
	vals, err := r.readFacts(ctx, h, sc, []string{name}, [][]string{{key}})
	if err != nil {
		return nil, err
	}
	return vals[0][key], nil
}

// gatherHostFacts gathers every registered host fact of h in one exchange.
func (r *run) gatherHostFacts(ctx context.Context, h *inventory.Host) error {
	names := modules.HostFacts()
	sc := newScript()
	keys := make([][]string, len(names))
	for i, n := range names {
		f, _ := modules.LookupFact(n)
		sc.read(kindFact, i, f.Script(nil))
		keys[i] = []string{""}
	}
	vals, err := r.readFacts(ctx, h, sc, names, keys)
	if err != nil {
		return err
	}
	for i, n := range names {
		r.pool.setHostFact(h.Name, n, vals[i][""])
	}
	r.noteBootID(h.Name)
	return nil
}

// readFacts runs a script of fact sections (ids 0…) and parses each.
func (r *run) readFacts(ctx context.Context, h *inventory.Host, sc *script, names []string, keys [][]string) ([]map[string]any, error) {
	res, err := r.execAs(ctx, h, identity{}, sc.take())
	if err != nil {
		return nil, err
	}
	sections, err := sc.parse(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("gathering facts: %w (exit %d: %s)", err, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	out := make([]map[string]any, len(names))
	for i, n := range names {
		s := sections[sectionID{kindFact, i}]
		if s == nil {
			return nil, fmt.Errorf("gathering fact %s: no output (exit %d: %s)", n, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
		}
		f, _ := modules.LookupFact(n)
		vals, err := f.Parse(s.output, keys[i])
		if err != nil {
			return nil, fmt.Errorf("fact %s: %w", n, err)
		}
		out[i] = vals
	}
	return out, nil
}

// noteBootID remembers the boot ID gathered for a host, for WaitHost.
func (r *run) noteBootID(host string) {
	if v, ok := r.pool.hostFact(host, "boot_id"); ok {
		r.mu.Lock()
		r.bootIDs[host] = fmt.Sprint(v)
		r.mu.Unlock()
	}
}

// WaitHost implements plan.Runner: it drops the host's connection and dials
// again until the host answers, within timeout. With rebooted, it waits
// until the host's boot ID differs from the one this run saw before.
func (r *run) WaitHost(ctx context.Context, h *inventory.Host, timeout time.Duration, rebooted bool) (plan.WaitResult, error) {
	r.mu.Lock()
	before, known := r.bootIDs[h.Name]
	r.mu.Unlock()
	if rebooted && !known {
		return plan.WaitResult{}, fmt.Errorf("no boot ID of %s was seen before; read h.fact(\"boot_id\") before the reboot", h.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		r.pool.forget(h.Name)
		if _, err := r.pool.get(ctx, h); err != nil {
			last = err
		} else if err := r.gatherHostFacts(ctx, h); err != nil {
			last = err
		} else {
			v, _ := r.pool.hostFact(h.Name, "boot_id")
			id := fmt.Sprint(v)
			if !rebooted || id != before {
				return plan.WaitResult{BootID: id, Rebooted: known && id != before}, nil
			}
			last = fmt.Errorf("it still runs the boot it ran before (boot ID %s)", id)
		}
		select {
		case <-ctx.Done():
			if context.Cause(ctx) != nil && ctx.Err() == context.DeadlineExceeded {
				return plan.WaitResult{}, fmt.Errorf("%s did not come back within %s: %v", h.Name, timeout, last)
			}
			return plan.WaitResult{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
