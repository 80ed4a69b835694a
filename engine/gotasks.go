package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"reflect"
	"slices"
	"time"

	"go.starlark.net/syntax"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/plan"
)

// Task is one host module call built in Go, for Converge: a module's
// argument struct and the arguments every host module call takes.
type Task struct {
	// Args is the module's argument struct, a pointer, as its package
	// declares it: &file.File{Path: "/etc/motd", Content: &motd}. Fields
	// left zero get their tag's default (modules.Prepare). Converge copies
	// it for every host, so one Task serves many hosts.
	Args modules.Task
	// Become is this task's become=; nil inherits ConvergeOptions.Become
	// and the host's become vars.
	Become *plan.Become
	// Timeout ends the task's change on the host after this long (its
	// timeout=); 0 means none.
	Timeout time.Duration
}

// ConvergeOptions configure Converge. The embedded Options are the run's
// (check mode, SSH, forks, events, journal); their plan-only fields Args,
// Event and Resume are not used. The other fields are what ctx.apply's
// arguments are to a plan.
type ConvergeOptions struct {
	Options
	// Name names the apply in events (as a role) and, with the hosts'
	// names, the run's journal and lock: two Converge calls with the same
	// Name, StateDir and hosts do not run at once. "" means "converge".
	Name    string
	Serial  int          // hosts per batch; 0 means all at once
	MaxFail int          // hosts that may fail or be unreachable before no further batch starts
	Become  *plan.Become // become for every task; nil leaves it to the tasks and the hosts
	// PerHost, if set, builds tasks of one host from what the program knows
	// of it; they follow the tasks given to Converge. It is called once
	// per host, concurrently, before any host is touched; an error fails
	// the run there.
	PerHost func(h *inventory.Host) ([]Task, error)
	// Files is where src= and template= paths are read; nil means
	// nowhere (such a task fails before any host is touched).
	Files fs.FS
}

// Converge applies tasks to hosts without a plan: it prepares each task for
// each host as a plan's module call is prepared (tag defaults, then
// Validate, on the controller), and then converges the hosts exactly as a
// plan's ctx.apply does: in batches of Serial, in parallel up to Forks, one
// exchange for all of a host's checks and one for its changes, in check
// mode when Check is set, with the same events, journal and report as Run.
//
// It returns a non-nil report even when it fails. The error is a task that
// cannot be prepared for a host (Report.Touched is false then: no host was
// contacted), more hosts failed or unreachable than MaxFail allows
// (wrapping ErrTooManyFailures), the cause of ctx's end, or a setup failure
// before anything ran: a host given twice or that the inventory refuses, a
// bad Limit, a *LockedError, a journal that cannot be written. The hosts
// given are not changed; many Converge calls may share them.
func Converge(ctx context.Context, hosts []*inventory.Host, tasks []Task, opts ConvergeOptions) (*Report, error) {
	ctx, cancel := withRunTimeout(ctx, opts.Timeout)
	defer cancel()
	name := opts.Name
	if name == "" {
		name = "converge"
	}
	inv := inventory.New()
	names := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if _, dup := inv.Host(h.Name); dup {
			return &Report{}, fmt.Errorf("converge: host %q given twice", h.Name)
		}
		c := *h // the caller's hosts stay as they are (Add resolves in place)
		c.Groups, c.Vars = slices.Clone(h.Groups), maps.Clone(h.Vars)
		if err := inv.Add(&c); err != nil {
			return &Report{}, fmt.Errorf("converge: %w", err)
		}
		names = append(names, h.Name)
	}
	slices.Sort(names)
	o := opts.Options
	o.Args, o.Event, o.Resume = nil, nil, ""
	o.Inventories = append(o.Inventories[:len(o.Inventories):len(o.Inventories)], names...)
	pseudo := &plan.Plan{Path: "converge:" + name} // names the journal's run and lock
	r, err := newRun(pseudo, inv, o)
	if err != nil {
		return &Report{}, r.secrets.err(err)
	}

	var targets []*inventory.Host
	for _, h := range hosts {
		if limited, ok := r.inv.Host(h.Name); ok { // within Limit
			targets = append(targets, limited)
		}
	}
	files := opts.Files
	if files == nil {
		files = noFiles{}
	}
	req := plan.ApplyRequest{Role: name, Hosts: targets, Serial: opts.Serial, MaxFail: opts.MaxFail, Become: opts.Become,
		Eval: func(ctx context.Context, h *inventory.Host) ([]plan.Task, error) {
			env := &modules.Env{Host: h, Files: files, Check: o.Check, Hosts: r, Endpoints: o.Endpoints,
				Logf:     func(format string, args ...any) { r.Print(h.Name, fmt.Sprintf(format, args...)) },
				CheckTry: r.CheckTry}
			all := tasks
			if opts.PerHost != nil {
				more, err := opts.PerHost(h)
				if err != nil {
					return nil, err
				}
				all = append(tasks[:len(tasks):len(tasks)], more...)
			}
			return prepareTasks(all, env)
		}}
	return r.execute(ctx, func(ctx context.Context) error {
		_, err := lockingRunner{r}.Apply(ctx, req)
		return err
	})
}

// prepareTasks makes one host's plan tasks from Go tasks, each with a copy
// of its arguments, prepared for the host.
func prepareTasks(tasks []Task, env *modules.Env) ([]plan.Task, error) {
	out := make([]plan.Task, 0, len(tasks))
	for i, t := range tasks {
		where := fmt.Sprintf("tasks[%d]", i)
		args, err := copyArgs(t.Args)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		id, ok := modules.IDOf(args)
		if !ok {
			id = reflect.TypeOf(args).Elem().String() // a module nobody registered still runs
		}
		if err := modules.Prepare(args, env); err != nil {
			return nil, fmt.Errorf("%s (%s): %w", id, where, err)
		}
		if t.Timeout < 0 {
			return nil, fmt.Errorf("%s (%s): timeout must be positive", id, where)
		}
		out = append(out, plan.Task{Module: id, Pos: syntax.MakePosition(&where, 0, 0), Impl: args, Become: t.Become, Timeout: t.Timeout})
	}
	return out, nil
}

// copyArgs copies an argument struct (shallowly: maps and pointers it
// holds are shared, and modules only read them), so that preparing it for
// one host leaves the caller's and the other hosts' untouched.
func copyArgs(args modules.Task) (modules.Task, error) {
	v := reflect.ValueOf(args)
	if args == nil || v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("Args must be a pointer to a module's argument struct, not %T", args)
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	return c.Interface().(modules.Task), nil
}

// noFiles is the folder of a Converge without Files: it has none.
type noFiles struct{}

var errNoFiles = errors.New("no files to read: set ConvergeOptions.Files")

func (noFiles) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: errNoFiles}
}
