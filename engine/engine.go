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
	"github.com/orch-dev/orch/modules"
	_ "github.com/orch-dev/orch/modules/hostfacts" // the host facts every run can read
	"github.com/orch-dev/orch/plan"
)

// Options configure a run. The zero value changes hosts (no check mode),
// journals under DefaultStateDir and connects with the default SSH
// settings. The engine reads no flags and no environment variables: every
// setting is here, and cmd/orch fills them in. (The ssh connection still
// reads what OpenSSH reads unless told otherwise: ~/.ssh/config unless
// SSH.NoSSHConfig, the agent at $SSH_AUTH_SOCK, ~/.ssh/known_hosts when
// SSH.KnownHosts is empty.)
type Options struct {
	Check bool              // change nothing; report what would change
	Diff  bool              // include diffs in task events
	Forks int               // hosts worked on at once; 0 means 100
	Limit string            // host pattern every apply is restricted to
	Args  map[string]string // -e k=v, as ctx.args

	StateDir string // journal and locks; "" means DefaultStateDir
	// Inventories name the inventory's sources, for the journal and the
	// run lock: runs of one plan with the same Inventories and StateDir
	// exclude each other (*LockedError). Name an inventory built in code
	// here when such runs may overlap.
	Inventories []string
	Resume      string // run ID whose completed steps are skipped
	RunID       string // "" means a new ID

	// Event is the webhook delivery that started the run (orch serve),
	// which the plan sees as ctx.event.
	Event *plan.Event

	// Dial opens the connection to a host. nil dials by each host's
	// connection type (ssh when unset), through the dialers registered
	// with conn.Register. An error that is not a *conn.UnreachableError
	// is wrapped in one.
	Dial func(ctx context.Context, h *inventory.Host) (conn.Conn, error)
	SSH  SSHOptions
	// DockerHost is the Docker Engine the docker connection talks to;
	// "" means unix:///var/run/docker.sock.
	DockerHost string
	// Endpoints are the APIs controller-side modules call, by provider
	// (linode.Provider, digitalocean.Provider), as modules.Env.Endpoints.
	Endpoints map[string]modules.Endpoint

	// BecomePassword is the sudo password for tasks that become another
	// user; "" means sudo must not ask for one. It never reaches events or
	// the journal.
	BecomePassword string
	// ExecTimeout bounds every remote exchange; an exchange that takes
	// longer fails and its processes on the host are ended. 0 means none.
	ExecTimeout time.Duration
	// Timeout bounds the whole run; 0 means none.
	Timeout time.Duration

	// OnEvent receives every event in order, from the run's goroutines;
	// calls never overlap, and the run waits for each to return. nil drops
	// them (the journal keeps them).
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
	Status       Status // OK, Changed, Failed or Unreachable
	Tasks        int
	TasksChanged int
	Exchanges    int64
	Err          string // the first failure, if any
}

// Run executes plan against inv; inv may be nil (no hosts), and Run adds
// the hosts the plan creates to it. Run returns a non-nil report even when
// it fails. The error is the plan's failure: a *plan.Error or plan.Errors,
// a *plan.RuntimeError, a failed apply (wrapping ErrTooManyFailures), a
// failed step, or the cause of ctx's end. Before anything ran it can also
// be a setup failure: a *LockedError (another run holds the plan's lock),
// a bad Limit, or a journal that cannot be written. Report.Touched tells
// whether anything was done before the error.
//
// Hosts that fail or cannot be reached are in the report (Status Failed,
// Unreachable) and fail the run only when an apply allows fewer failures.
// Runs share no state beyond their StateDir: many may run at once in one
// process.
func Run(ctx context.Context, p *plan.Plan, inv *inventory.Inventory, opts Options) (*Report, error) {
	ctx, cancel := withRunTimeout(ctx, opts.Timeout)
	defer cancel()
	r, err := newRun(p, inv, opts)
	if err != nil {
		return &Report{}, err
	}
	r.emit(Event{Event: "run_start", RunID: r.id, Plan: p.Path, Check: opts.Check})
	err = p.Run(ctx, r, plan.RunOptions{Check: opts.Check, Args: opts.Args, Vars: allVars(inv), RunID: r.id, Event: opts.Event, Endpoints: opts.Endpoints})
	return r.finish(err)
}

func withRunTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the run took longer than its timeout of %s", timeout))
}

// finish ends a run that started: it closes the connections, emits the
// summary, closes the journal and returns the report with the run's error.
func (r *run) finish(err error) (*Report, error) {
	defer r.pool.close()
	if err == nil {
		err = r.journalErr()
	}
	rep := r.report()
	r.emit(Event{Event: "summary", Summary: &rep.Summary})
	if ferr := r.j.finish(err); err == nil && ferr != nil {
		err = ferr
	}
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
	id     string
	plan   *plan.Plan
	inv    *inventory.Inventory
	opts   Options
	start  time.Time
	pool   *pool
	shared conn.Shared // what the run's connections share (jump hosts)
	forks  chan struct{}
	j      *journal

	mu      sync.Mutex // guards the fields below and orders events
	hosts   map[string]*HostReport
	order   []string
	touched bool
	guards  map[string]GuardSummary
	bootIDs map[string]string // the boot ID last seen of each host
	warned  map[string]bool
	jerr    error // the first journal write error
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
		plan:    p,
		inv:     inv,
		opts:    opts,
		start:   time.Now(),
		forks:   make(chan struct{}, forks),
		hosts:   map[string]*HostReport{},
		guards:  map[string]GuardSummary{},
		bootIDs: map[string]string{},
		warned:  map[string]bool{},
	}
	j, err := openJournal(p, opts)
	if err != nil {
		return nil, err
	}
	r.j, r.id = j, j.id
	dial := opts.Dial
	if dial == nil {
		dial = r.dialHost
	}
	r.pool = newPool(dial)
	return r, nil
}

// parent gives layered connections (a jail's) their host's connection.
func (r *run) parent(ctx context.Context, name string) (conn.Conn, error) {
	h, ok := r.inv.Host(name)
	if !ok {
		return nil, fmt.Errorf("no host %q in the inventory", name)
	}
	return r.pool.get(ctx, h)
}

func (r *run) emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.j.event(e); err != nil && r.jerr == nil {
		r.jerr = err
	}
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(e)
	}
}

// warn emits a warning once per run, however many hosts raise it.
func (r *run) warn(msg string) {
	r.mu.Lock()
	dup := r.warned[msg]
	r.warned[msg] = true
	r.mu.Unlock()
	if !dup {
		r.emit(Event{Event: "warning", Msg: msg})
	}
}

func (r *run) journalErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.jerr != nil {
		return fmt.Errorf("the run's journal could not be written, so it cannot be resumed: %w", r.jerr)
	}
	return nil
}

func (r *run) setTouched() {
	r.mu.Lock()
	r.touched = true
	r.mu.Unlock()
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
		case Failed:
			s.Failed++
		case Unreachable:
			s.Unreachable++
		case Changed:
			s.Changed++
			s.OK++
		default:
			s.OK++
		}
		s.TasksChanged += h.TasksChanged
	}
	for _, name := range sortedKeys(r.guards) {
		s.Guards = append(s.Guards, r.guards[name])
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
		h = &HostReport{Name: name, Status: OK}
		r.hosts[name] = h
		r.order = append(r.order, name)
	}
	return h
}

// Hosts implements plan.Runner.
func (r *run) Hosts(pattern string) ([]*inventory.Host, error) { return r.inv.Match(pattern) }

// Print implements plan.Runner.
func (r *run) Print(host, msg string) { r.emit(Event{Event: "print", Host: host, Msg: msg}) }

// CheckTry implements plan.Runner.
func (r *run) CheckTry(t modules.CheckTry) {
	r.emit(Event{Event: "check", Module: t.Check, Target: t.Target, Try: t.Try, Status: Status(t.Status), Msg: t.Msg})
}

// AddHost implements plan.Runner: a host created at run time joins the
// inventory, and its pinned host key is recorded for strict verification.
// A host that replaces one of the same name (a renamed machine) gets a
// fresh connection and fresh facts.
func (r *run) AddHost(h *inventory.Host, knownHostsLine string) error {
	if knownHostsLine != "" {
		if err := r.j.pinKey(knownHostsLine); err != nil {
			return err
		}
	}
	r.pool.drop(h.Name)
	return r.inv.Add(h)
}

// Touch implements plan.Runner.
func (r *run) Touch() { r.setTouched() }

// RemoveHost implements plan.Runner: a deleted machine leaves the
// inventory and its connection is closed.
func (r *run) RemoveHost(name string) {
	r.inv.Remove(name)
	r.pool.drop(name)
}

// StepDone implements plan.Runner.
func (r *run) StepDone(name string) (json.RawMessage, bool) { return r.j.stepDone(name) }

// Step implements plan.Runner: it journals the step (synced to disk, so a
// killed run forgets no completed step) and emits step_start or step_end.
// A journal that cannot be written fails the step: resuming would be
// impossible.
func (r *run) Step(e plan.StepEvent) error {
	r.setTouched()
	if err := r.j.step(e.Name, string(e.Status), e.Result); err != nil {
		return fmt.Errorf("journaling step %q: %w", e.Name, err)
	}
	ev := Event{Event: "step_end", Step: e.Name, Status: Status(e.Status), DurationMS: e.Duration.Milliseconds(), Irreversible: e.Irreversible}
	if e.Status == plan.StepStart {
		ev = Event{Event: "step_start", Step: e.Name, Irreversible: e.Irreversible}
	}
	if e.Err != nil {
		ev.Msg = e.Err.Error()
	}
	r.emit(ev)
	return nil
}

// Guard implements plan.Runner.
func (r *run) Guard(g plan.GuardReport) {
	s := GuardSummary{Name: g.Name, Probes: g.Probes, Failed: g.Failed, MaxFail: g.MaxFail}
	r.mu.Lock()
	r.guards[g.Name] = s
	r.mu.Unlock()
	status := OK
	if g.Failing || g.Stopped && g.Failed > 0 {
		status = Failed
	}
	e := Event{Event: "guard", Guard: g.Name, Status: status, Probes: g.Probes, FailedProbes: g.Failed, Msg: g.LastError}
	if g.Stopped {
		e.Event = "guard_done"
	}
	r.emit(e)
}

// ErrTooManyFailures is wrapped by the error an apply returns when more
// hosts failed than its max_fail allows.
var ErrTooManyFailures = errors.New("too many hosts failed")
