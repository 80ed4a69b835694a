// Package engine runs plans: it schedules roles over hosts in parallel,
// keeps one connection per host, batches each host's checks and applies
// into single remote exchanges, journals the run and streams events. It is
// a library: it never prints and never exits.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// Options configure a run. The zero value checks nothing, journals under
// .orch and connects with the default SSH settings.
type Options struct {
	Check bool              // change nothing; report what would change
	Diff  bool              // include diffs in task events
	Forks int               // hosts worked on at once; 0 means 100
	Limit string            // host pattern every apply is restricted to
	Args  map[string]string // -e k=v, as ctx.args

	StateDir    string   // journal and locks; "" means .orch
	Inventories []string // inventory sources, for the journal and the run lock
	Resume      string   // run ID whose completed steps are skipped
	RunID       string   // "" means a new ID

	// Event is the webhook delivery that started the run (orch serve),
	// which the plan sees as ctx.event.
	Event *plan.Event

	// Dial opens the connection to a host. nil means DefaultDialer(SSH).
	Dial func(ctx context.Context, h *inventory.Host) (conn.Conn, error)
	SSH  SSHOptions

	// OnEvent receives every event in order. Calls never overlap.
	OnEvent func(Event)
}

// Report is the structured outcome of a run.
type Report struct {
	RunID   string
	Summary Summary
	Hosts   []HostReport // in the order hosts were first worked on
	// Touched is true once any host was contacted or any step started.
	// A plan error with Touched false was found before anything changed.
	Touched bool
}

// HostReport is one host's outcome over the whole run.
type HostReport struct {
	Name         string
	Status       string // ok, changed, failed or unreachable
	Tasks        int
	TasksChanged int
	Exchanges    int64
	Err          string // the first failure, if any
}

// Run executes plan against inv. It returns the report even when the run
// fails; the error is the plan's failure (a failed apply, a failed step, a
// Starlark error), or a setup failure such as a held lock.
func Run(ctx context.Context, p *plan.Plan, inv *inventory.Inventory, opts Options) (*Report, error) {
	r, err := newRun(p, inv, opts)
	if err != nil {
		return &Report{}, err
	}
	defer r.pool.close()
	r.emit(Event{Event: "run_start", RunID: r.id, Plan: p.Path, Check: opts.Check})
	err = p.Run(ctx, r, plan.RunOptions{Check: opts.Check, Args: opts.Args, Vars: allVars(inv), RunID: r.id, Event: opts.Event})
	rep := r.report()
	r.emit(Event{Event: "summary", Summary: &rep.Summary})
	r.j.finish(err)
	return rep, err
}

func allVars(inv *inventory.Inventory) map[string]any {
	if inv == nil {
		return nil
	}
	return inv.GroupVars("all")
}

// run is the state of one run; it implements plan.Runner.
type run struct {
	id    string
	p     *plan.Plan
	inv   *inventory.Inventory
	opts  Options
	start time.Time
	pool  *pool
	forks chan struct{}
	j     *journal

	mu      sync.Mutex // guards the fields below and orders events
	hosts   map[string]*HostReport
	order   []string
	touched bool
}

func newRun(p *plan.Plan, inv *inventory.Inventory, opts Options) (*run, error) {
	if inv == nil {
		inv = inventory.New()
	}
	if opts.Limit != "" {
		limited, err := inv.Limit(opts.Limit)
		if err != nil {
			return nil, fmt.Errorf("--limit: %w", err)
		}
		inv = limited
	}
	forks := opts.Forks
	if forks <= 0 {
		forks = 100 // all hosts, up to 100, hosts created at run time included
	}
	r := &run{
		p:     p,
		inv:   inv,
		opts:  opts,
		start: time.Now(),
		forks: make(chan struct{}, forks),
		hosts: map[string]*HostReport{},
	}
	j, err := openJournal(p, opts)
	if err != nil {
		return nil, err
	}
	r.j, r.id = j, j.id
	dial := opts.Dial
	if dial == nil {
		var warned sync.Map // each warning once, not once per host
		dial = DefaultDialer(opts.SSH, j.pinnedKeysFile(), func(msg string) {
			if _, dup := warned.LoadOrStore(msg, true); !dup {
				r.emit(Event{Event: "warning", Msg: msg})
			}
		})
	}
	r.pool = newPool(dial)
	return r, nil
}

func (r *run) emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.j.event(e)
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(e)
	}
}

func (r *run) report() *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{RunID: r.id, Touched: r.touched}
	s := &rep.Summary
	for _, name := range r.order {
		h := r.hosts[name]
		h.Exchanges = r.pool.exchanges(name)
		rep.Hosts = append(rep.Hosts, *h)
		s.Hosts++
		switch h.Status {
		case "failed":
			s.Failed++
		case "unreachable":
			s.Unreachable++
		case "changed":
			s.Changed++
			s.OK++
		default:
			s.OK++
		}
		s.TasksChanged += h.TasksChanged
	}
	s.Exchanges = r.pool.exchanges("")
	s.DurationMS = time.Since(r.start).Milliseconds()
	return rep
}

// hostReport returns the report entry of a host, creating it on first use.
// Callers hold r.mu.
func (r *run) hostReport(name string) *HostReport {
	h := r.hosts[name]
	if h == nil {
		h = &HostReport{Name: name, Status: "ok"}
		r.hosts[name] = h
		r.order = append(r.order, name)
	}
	return h
}

// Hosts implements plan.Runner.
func (r *run) Hosts(pattern string) ([]*inventory.Host, error) { return r.inv.Match(pattern) }

// Print implements plan.Runner.
func (r *run) Print(host, msg string) { r.emit(Event{Event: "print", Host: host, Msg: msg}) }

// AddHost implements plan.Runner: a host created at run time joins the
// inventory, and its pinned host key is recorded for strict verification.
func (r *run) AddHost(h *inventory.Host, knownHostsLine string) error {
	if knownHostsLine != "" {
		if err := r.j.pinKey(knownHostsLine); err != nil {
			return err
		}
	}
	return r.inv.Add(h)
}

// Touch implements plan.Runner.
func (r *run) Touch() {
	r.mu.Lock()
	r.touched = true
	r.mu.Unlock()
}

// RemoveHost implements plan.Runner: a deleted machine leaves the
// inventory and its connection is closed.
func (r *run) RemoveHost(name string) {
	r.inv.Remove(name)
	r.pool.drop(name)
}

// StepDone implements plan.Runner.
func (r *run) StepDone(name string) (json.RawMessage, bool) { return r.j.stepDone(name) }

// StepEvent implements plan.Runner.
func (r *run) StepEvent(name, status string, result json.RawMessage, err error) {
	r.mu.Lock()
	r.touched = true
	r.mu.Unlock()
	e := Event{Event: "step", Step: name, Status: status}
	if err != nil {
		e.Msg = err.Error()
	}
	r.j.step(name, status, result)
	r.emit(e)
}

// ErrTooManyFailures is wrapped by the error an apply returns when more
// hosts failed than its max_fail allows.
var ErrTooManyFailures = errors.New("too many hosts failed")
