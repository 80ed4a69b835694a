package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// runFlags are the flags of `orch run` and `orch resume`.
type runFlags struct {
	inventories  listFlag
	extra        listFlag
	knownHosts   listFlag
	check, diff  bool
	limit        string
	forks        int
	json         bool
	lab          bool
	verbose      bool
	hostKeyCheck string
	timeout      time.Duration
}

func (c *cli) run(ctx context.Context, args []string) (int, error) {
	var f runFlags
	fs := newFlagSet("run", c.stderr)
	f.register(fs)
	fs.BoolVar(&f.diff, "diff", false, "show what changes in each file")
	fs.BoolVar(&f.json, "json", false, "print JSON Lines events on stdout")
	fs.BoolVar(&f.lab, "lab", false, "run against the local lab, starting it if needed")
	fs.BoolVar(&f.verbose, "v", false, "show unchanged tasks too")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage, flagError(err)
	}
	if len(pos) != 1 {
		return exitUsage, &usageError{msg: "orch run takes exactly one plan", hint: "orch run plans/quickstart.star -i inventory.ini"}
	}
	return c.execute(ctx, pos[0], f, "")
}

// register adds the flags that orch run and orch serve share.
func (f *runFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.inventories, "i", "inventory file or directory (repeatable); default: inventory.{star,yaml,yml,ini} or hosts in the working directory, else localhost")
	fs.Var(&f.extra, "e", "K=V passed to the plan as ctx.args (repeatable)")
	fs.Var(&f.knownHosts, "known-hosts", "known_hosts file (repeatable); default ~/.ssh/known_hosts")
	fs.BoolVar(&f.check, "check", false, "change nothing; report what would change")
	fs.StringVar(&f.limit, "limit", "", "restrict every apply to hosts matching `PATTERN`")
	fs.IntVar(&f.forks, "forks", 0, "hosts worked on at once (default: all, up to 100)")
	fs.StringVar(&f.hostKeyCheck, "host-key-check", "accept-new", "strict, accept-new or off")
	fs.DurationVar(&f.timeout, "connect-timeout", 10*time.Second, "per-host SSH connect timeout")
}

// engineOptions checks the flags and turns them into the options of a run.
func (f runFlags) engineOptions() (engine.Options, error) {
	switch f.hostKeyCheck {
	case "", "strict", "accept-new", "off":
	default:
		return engine.Options{}, &usageError{msg: fmt.Sprintf("--host-key-check %q: want strict, accept-new or off", f.hostKeyCheck)}
	}
	extra := map[string]string{}
	for _, kv := range f.extra {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return engine.Options{}, &usageError{msg: fmt.Sprintf("-e %q: want K=V", kv)}
		}
		extra[k] = v
	}
	return engine.Options{
		Check: f.check, Diff: f.diff, Forks: f.forks, Limit: f.limit, Args: extra,
		SSH:      engine.SSHOptions{KnownHosts: f.knownHosts, HostKeyCheck: f.hostKeyCheck, ConnectTimeout: f.timeout},
		StateDir: stateDir(), Endpoints: cloudEndpoints(os.Getenv), DockerHost: dockerHost(),
	}, nil
}

func (c *cli) resume(ctx context.Context, args []string) (int, error) {
	var f runFlags
	fs := newFlagSet("resume", c.stderr)
	fs.BoolVar(&f.json, "json", false, "print JSON Lines events on stdout")
	fs.BoolVar(&f.verbose, "v", false, "show unchanged tasks too")
	fs.Var(&f.knownHosts, "known-hosts", "known_hosts file (repeatable); default: the resumed run's")
	fs.StringVar(&f.hostKeyCheck, "host-key-check", "", "strict, accept-new or off; default: the resumed run's")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage, flagError(err)
	}
	if len(pos) != 1 {
		return exitUsage, &usageError{msg: "orch resume takes exactly one run ID", hint: "run IDs are the folder names under " + filepath.Join(stateDir(), "runs")}
	}
	rec, err := engine.ReadRunRecord(stateDir(), pos[0])
	if err != nil {
		return exitUsage, &usageError{msg: err.Error()}
	}
	// Everything as the resumed run had it, SSH trust included, unless
	// given again here.
	f.inventories = rec.Inventories
	f.check, f.diff, f.limit, f.forks = rec.Check, rec.Diff, rec.Limit, rec.Forks
	f.timeout = rec.ConnectTimeout
	if len(f.knownHosts) == 0 {
		f.knownHosts = rec.KnownHosts
	}
	if f.hostKeyCheck == "" {
		f.hostKeyCheck = rec.HostKeyCheck
	}
	for k, v := range rec.Args {
		f.extra = append(f.extra, k+"="+v)
	}
	f.lab = len(rec.Inventories) == 1 && rec.Inventories[0] == labInventoryName
	if f.lab {
		f.inventories = nil
	}
	return c.execute(ctx, rec.Plan, f, rec.ID)
}

// execute loads the plan and inventory, runs, and maps the outcome to an
// exit code.
func (c *cli) execute(ctx context.Context, planPath string, f runFlags, resume string) (int, error) {
	opts, err := f.engineOptions()
	if err != nil {
		return exitUsage, err
	}
	opts.Resume = resume
	p, err := plan.Load(planPath)
	if err != nil {
		return exitUsage, planError(err)
	}
	defer p.Close()

	var inv *inventory.Inventory
	if f.lab {
		if inv, err = c.labInventory(ctx, &opts); err != nil {
			return exitFailed, err
		}
		opts.Inventories = []string{labInventoryName}
	} else {
		if inv, opts.Inventories, err = c.loadInventories(ctx, f.inventories, playbookDir(planPath)); err != nil {
			return exitUsage, &usageError{msg: err.Error()}
		}
	}
	if f.hostKeyCheck == "off" {
		c.log.Warn("host key checking is off: any machine can pose as your hosts")
	}

	out := newRenderer(c.stdout, f.json, f.verbose, f.diff)
	opts.OnEvent = out.event
	rep, err := engine.Run(ctx, p, inv, opts)
	out.close(rep)
	switch {
	case err != nil && !rep.Touched:
		var locked *engine.LockedError
		if errors.As(err, &locked) {
			return exitUsage, &usageError{msg: err.Error(), hint: "wait for that run, or remove the lock if it is gone"}
		}
		return exitUsage, planError(err)
	case err != nil:
		return exitFailed, err
	case rep.Summary.Failed > 0 || rep.Summary.Unreachable > 0:
		return exitFailed, nil
	}
	return exitOK, nil
}

// planError is a plan problem found before anything changed: exit 2.
func planError(err error) error { return &usageError{msg: err.Error()} }

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
