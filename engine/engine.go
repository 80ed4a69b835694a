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
	"os"
	"path/filepath"
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
	// SecretArgs names the Args whose values are secrets: masked in
	// run.json, and never in events, the journal or errors.
	SecretArgs []string

	StateDir    string   // journal, locks, pinned host keys; "" means DefaultStateDir
	Inventories []string // inventory sources, for the journal and the plan's lock
	RunID       string   // "" means a new ID

	// Resume is the ID of a run whose completed steps are skipped. The
	// run refuses, before touching anything, when the plan's files or the
	// resolved inventory changed since that run (a *ResumeChangedError),
	// unless ResumeForce is set.
	Resume      string
	ResumeForce bool

	// Journals keeps the run's journal and Locks its locks; nil means
	// FileStore and FileLocks under StateDir. See store.go for the
	// contracts a shared store (etcd, Consul) would implement.
	Journals JournalStore
	Locks    LockStore

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
	// Secrets are further values that must never reach events, the
	// journal or errors (cloud tokens, say): every occurrence is masked.
	Secrets []string
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
	// Touched is true once any host was contacted or a controller-side
	// call acted. A plan error (or a held lock) with Touched false was
	// found before anything changed.
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
// process. When ctx ends (Ctrl-C), remote commands are ended, the
// journal records the interruption, the undos of completed steps run and
// the locks are released before Run returns.
func Run(ctx context.Context, p *plan.Plan, inv *inventory.Inventory, opts Options) (*Report, error) {
	ctx, cancel := withRunTimeout(ctx, opts.Timeout)
	defer cancel()
	r, err := newRun(p, inv, opts)
	if err != nil {
		return &Report{}, r.secrets.err(err)
	}
	return r.execute(ctx, func(ctx context.Context) error {
		return p.Run(ctx, lockingRunner{r}, plan.RunOptions{Check: opts.Check, Args: opts.Args, Vars: allVars(r.full),
			RunID: r.id, Event: opts.Event, Endpoints: opts.Endpoints})
	})
}

func withRunTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the run took longer than its timeout of %s", timeout))
}

// execute runs body as the run: it emits run_start, records an
// interruption when ctx ends (body's undos then still run), and at the
// end closes the connections and locks, emits the summary and closes the
// journal, returning the report with the run's error.
func (r *run) execute(ctx context.Context, body func(context.Context) error) (*Report, error) {
	defer r.locks.Close() // after the connections close, below
	defer r.pool.close()
	r.emit(Event{Event: "run_start", RunID: r.id, Plan: r.plan.Path, Check: r.opts.Check})
	r.noteStale(r.stale)

	interrupted := make(chan struct{})
	stopWatch := context.AfterFunc(ctx, func() {
		defer close(interrupted)
		msg := context.Cause(ctx).Error()
		r.mu.Lock()
		r.interrupted = msg
		r.mu.Unlock()
		r.emit(Event{Event: "interrupted", Msg: msg + ": ending remote commands, then running the undos of completed steps"})
	})
	err := body(ctx)
	if !stopWatch() {
		<-interrupted
	}
	if err == nil {
		err = r.journalErr()
	}
	err = r.secrets.err(err)
	rep := r.report()
	r.emit(Event{Event: "summary", Summary: &rep.Summary})
	res := Result{OK: err == nil, Interrupted: r.interrupted, Finished: time.Now().UTC()}
	if err != nil {
		res.Error = err.Error()
	}
	if ferr := r.j.Finish(res); err == nil && ferr != nil {
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
	id      string
	plan    *plan.Plan
	full    *inventory.Inventory // as given, before --limit
	inv     *inventory.Inventory // within --limit; hosts join and leave
	opts    Options
	state   string // the state directory: pinned keys, pending handlers
	start   time.Time
	pool    *pool
	shared  conn.Shared // what the run's connections share (jump hosts)
	forks   chan struct{}
	j       Journal
	locks   LockSession
	stale   []StaleLock                // locks taken over at the start
	done    map[string]json.RawMessage // the resumed run's completed steps
	secrets redactor

	mu          sync.Mutex // guards the fields below, orders events and journal writes
	hosts       map[string]*HostReport
	order       []string
	touched     bool
	guards      map[string]GuardSummary
	bootIDs     map[string]string // the boot ID last seen of each host
	warned      map[string]bool
	jerr        error           // the first journal write error
	noted       map[string]bool // plan files whose digest is journaled
	hostNotes   map[string]string
	interrupted string // why ctx ended, once it did
	pinMu       sync.Mutex
}

func newRun(p *plan.Plan, inv *inventory.Inventory, opts Options) (*run, error) {
	if inv == nil {
		inv = inventory.New()
	}
	full := inv
	if opts.Limit != "" {
		limited, err := inv.Limit(opts.Limit)
		if err != nil {
			return &run{}, fmt.Errorf("--limit: %w", err)
		}
		inv = limited
	}
	forks := opts.Forks
	if forks <= 0 {
		forks = 100 // all hosts, up to 100, hosts created at run time included
	}
	state := opts.StateDir
	if state == "" {
		state = ".orch"
	}
	r := &run{
		id:        opts.RunID,
		plan:      p,
		full:      full,
		inv:       inv,
		opts:      opts,
		state:     state,
		start:     time.Now(),
		forks:     make(chan struct{}, forks),
		secrets:   newRedactor(secretValues(opts)),
		hosts:     map[string]*HostReport{},
		guards:    map[string]GuardSummary{},
		bootIDs:   map[string]string{},
		warned:    map[string]bool{},
		noted:     map[string]bool{},
		hostNotes: map[string]string{},
	}
	if r.id == "" {
		r.id = newRunID()
	}
	if err := r.open(); err != nil {
		return r, err
	}
	dial := opts.Dial
	if dial == nil {
		dial = r.dialHost
	}
	r.pool = newPool(dial)
	r.pool.beforeDial = func(h *inventory.Host) error { return r.lockHosts([]*inventory.Host{h}) }
	r.pool.afterDial = r.replaceInjectedKey
	return r, nil
}

// open takes the plan's lock, checks a resumed run's inputs, and starts
// the journal.
func (r *run) open() error {
	opts := r.opts
	journals, locks := opts.Journals, opts.Locks
	if journals == nil {
		journals = FileStore{Dir: r.state}
	}
	if locks == nil {
		locks = FileLocks{Dir: filepath.Join(r.state, "locks")}
	}
	controller, _ := os.Hostname()
	sess, err := locks.Session(LockHolder{RunID: r.id, PID: os.Getpid(), User: currentUser(), Host: controller, Since: time.Now().UTC()})
	if err != nil {
		return err
	}
	r.locks = sess
	fail := func(err error) error {
		sess.Close()
		return err
	}
	if r.stale, err = sess.Lock([]string{planLockKey(r.plan.Path, opts.Inventories)}); err != nil {
		var le *LockedError
		if errors.As(err, &le) {
			le.What = "this plan with the same inventory"
		}
		return fail(err)
	}
	rec := RunRecord{ID: r.id, Plan: r.plan.Path, Inventories: opts.Inventories, Args: maskArgs(opts.Args, opts.SecretArgs),
		SecretArgs: opts.SecretArgs, BecomePassword: opts.BecomePassword != "",
		Check: opts.Check, Diff: opts.Diff, Limit: opts.Limit, Forks: opts.Forks, ExecTimeout: opts.ExecTimeout,
		KnownHosts: opts.SSH.KnownHosts, HostKeyCheck: opts.SSH.HostKeyCheck, ConnectTimeout: opts.SSH.ConnectTimeout,
		ResumedFrom: opts.Resume, Started: time.Now().UTC(), Inventory: digestInventory(r.full)}
	if abs, err := filepath.Abs(r.plan.Path); err == nil && fileExists(r.plan.Path) {
		rec.Plan = abs
	}
	var carried map[string]string
	if opts.Resume != "" {
		hist, err := journals.Load(opts.Resume)
		if err != nil {
			return fail(fmt.Errorf("resume %s: %w", opts.Resume, err))
		}
		if changes := resumeChanges(hist, r.plan, r.full); len(changes) > 0 && !opts.ResumeForce {
			return fail(&ResumeChangedError{RunID: opts.Resume, Changes: changes})
		}
		r.done, carried = hist.Done, hist.Files
	}
	// The files the resumed run's completed steps read stay part of what a
	// later resume checks, since their steps are not run again.
	if rec.PlanFiles, err = r.digestFiles(append(r.plan.FilesRead(), sortedKeys(carried)...)); err != nil {
		return fail(fmt.Errorf("journal: %w", err))
	}
	for name := range rec.PlanFiles {
		r.noted[name] = true
	}
	if r.j, err = journals.Create(rec); err != nil {
		return fail(err)
	}
	return nil
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
	e = r.secrets.event(e)
	r.mu.Lock()
	var durable func() error
	var err error
	if fj, ok := r.j.(*fileJournal); ok && e.Event == "host_done" {
		durable, err = fj.hostDone(e) // synced below, outside the lock
	} else {
		err = r.j.Event(e)
	}
	r.journalFailed(err)
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(e)
	}
	r.mu.Unlock()
	if durable == nil {
		return
	}
	if err := durable(); err != nil {
		r.mu.Lock()
		r.journalFailed(err)
		r.mu.Unlock()
	}
}

// journalFailed keeps the first journal error. Callers hold r.mu.
func (r *run) journalFailed(err error) {
	if err != nil && r.jerr == nil {
		r.jerr = err
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
// inventory, and its pinned host key is recorded for strict verification
// (and replaced at the first connection, see hostkey.go). A host that
// replaces one of the same name (a renamed machine) gets a fresh
// connection and fresh facts.
func (r *run) AddHost(h *inventory.Host, knownHostsLine string) error {
	if knownHostsLine != "" {
		if err := r.pinKey(knownHostsLine); err != nil {
			return err
		}
	}
	if err := r.noteHost(h.Name, "added"); err != nil {
		return err
	}
	r.pool.drop(h.Name)
	return r.inv.Add(h)
}

// Touch implements plan.Runner.
func (r *run) Touch() { r.setTouched() }

// RemoveHost implements plan.Runner: a deleted machine leaves the
// inventory and its connection is closed.
func (r *run) RemoveHost(name string) {
	if err := r.noteHost(name, "removed"); err != nil {
		r.mu.Lock()
		if r.jerr == nil {
			r.jerr = err
		}
		r.mu.Unlock()
	}
	r.inv.Remove(name)
	r.pool.drop(name)
}

// StepDone implements plan.Runner.
func (r *run) StepDone(name string) (json.RawMessage, bool) {
	res, ok := r.done[name]
	return res, ok
}

// Step implements plan.Runner: it journals the step (synced to disk, so a
// killed run forgets no completed step) and emits step_start or step_end.
// Before a step is journaled as done, the digests of the plan's files read
// so far are, so that a resume can tell whether what the step did still
// matches the plan. A journal that cannot be written fails the step:
// resuming would be impossible.
func (r *run) Step(e plan.StepEvent) error {
	status := string(e.Status)
	if e.Status == plan.StepSkipped {
		status = string(StepDone) // carried over from the resumed run
	}
	if e.Status == plan.StepDone || e.Status == plan.StepSkipped {
		if err := r.noteFiles(); err != nil {
			return fmt.Errorf("journaling step %q: %w", e.Name, err)
		}
	}
	rec := StepRecord{Step: e.Name, Status: status, Result: r.secrets.json(e.Result)}
	r.mu.Lock()
	err := r.j.Step(rec)
	r.mu.Unlock()
	if err != nil {
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
