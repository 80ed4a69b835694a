package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// runFlags are the flags of `orch run` and `orch resume`.
type runFlags struct {
	inventories    listFlag
	extra          listFlag
	secretArgs     listFlag
	knownHosts     listFlag
	check, diff    bool
	limit          string
	forks          int
	json           bool
	lab            bool
	verbose        bool
	hostKeyCheck   string
	connectTimeout time.Duration
	execTimeout    time.Duration
	askBecomePass  bool
	force          bool // resume: even when the plan or inventory changed

	becomePassword string            // from the prompt or $ORCH_BECOME_PASS
	resumedArgs    map[string]string // resume: the args of the resumed run
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
	fs.Var(&f.secretArgs, "secret-arg", "the -e arg `K` is a secret: masked in output and the journal (repeatable)")
	fs.Var(&f.knownHosts, "known-hosts", "known_hosts file (repeatable); default ~/.ssh/known_hosts")
	fs.BoolVar(&f.check, "check", false, "change nothing; report what would change")
	fs.StringVar(&f.limit, "limit", "", "restrict every apply to hosts matching `PATTERN`")
	fs.IntVar(&f.forks, "forks", 0, "hosts worked on at once (default: all, up to 100)")
	fs.StringVar(&f.hostKeyCheck, "host-key-check", "accept-new", "strict, accept-new or off")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", 10*time.Second, "per-host SSH connect timeout")
	fs.DurationVar(&f.execTimeout, "timeout", 0, "bound on every remote exchange: one that takes longer fails and its processes are ended (default: none)")
	fs.BoolVar(&f.askBecomePass, "ask-become-pass", false, "ask for the sudo password of become tasks (else $"+becomePassEnv+")")
}

// becomePassEnv holds the become password when --ask-become-pass is not given.
const becomePassEnv = "ORCH_BECOME_PASS"

// engineOptions checks the flags and turns them into the options of a run.
func (f runFlags) engineOptions() (engine.Options, error) {
	switch f.hostKeyCheck {
	case "", "strict", "accept-new", "off":
	default:
		return engine.Options{}, &usageError{msg: fmt.Sprintf("--host-key-check %q: want strict, accept-new or off", f.hostKeyCheck)}
	}
	if f.execTimeout < 0 {
		return engine.Options{}, &usageError{msg: fmt.Sprintf("--timeout %s: want a positive duration", f.execTimeout)}
	}
	extra := map[string]string{}
	for k, v := range f.resumedArgs {
		extra[k] = v
	}
	for _, kv := range f.extra {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return engine.Options{}, &usageError{msg: fmt.Sprintf("-e %q: want K=V", kv)}
		}
		extra[k] = v
	}
	for _, k := range f.secretArgs {
		if _, ok := extra[k]; !ok {
			return engine.Options{}, &usageError{msg: fmt.Sprintf("--secret-arg %s: no -e %s=… was given", k, k)}
		}
	}
	return engine.Options{
		Check: f.check, Diff: f.diff, Forks: f.forks, Limit: f.limit, Args: extra, SecretArgs: f.secretArgs,
		ExecTimeout: f.execTimeout, BecomePassword: f.becomePassword,
		SSH:      engine.SSHOptions{KnownHosts: f.knownHosts, HostKeyCheck: f.hostKeyCheck, ConnectTimeout: f.connectTimeout},
		StateDir: stateDir(), Endpoints: cloudEndpoints(os.Getenv), DockerHost: dockerHost(),
	}, nil
}

// readBecomePassword fills in the become password: asked for on the
// terminal with --ask-become-pass (or when a resumed run had one and
// $ORCH_BECOME_PASS is unset), else from $ORCH_BECOME_PASS.
func (c *cli) readBecomePassword(f *runFlags, needed bool) error {
	if !f.askBecomePass {
		f.becomePassword = os.Getenv(becomePassEnv)
		if f.becomePassword != "" || !needed {
			return nil
		}
	}
	pw, err := c.askSecret("BECOME password: ")
	if err != nil {
		return &usageError{msg: "--ask-become-pass: " + err.Error(), hint: "set " + becomePassEnv + " instead where there is no terminal"}
	}
	f.becomePassword = pw
	return nil
}

// askSecret reads a line from the terminal without echoing it.
func (c *cli) askSecret(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("no terminal to ask on: %w", err)
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (c *cli) resume(ctx context.Context, args []string) (int, error) {
	var f runFlags
	fs := newFlagSet("resume", c.stderr)
	fs.BoolVar(&f.json, "json", false, "print JSON Lines events on stdout")
	fs.BoolVar(&f.verbose, "v", false, "show unchanged tasks too")
	fs.BoolVar(&f.force, "force", false, "resume even though the plan's files or the inventory changed since the run started")
	fs.Var(&f.extra, "e", "K=V: a secret arg of the resumed run, given again (repeatable; else $ORCH_ARG_K, else asked for)")
	fs.Var(&f.knownHosts, "known-hosts", "known_hosts file (repeatable); default: the resumed run's")
	fs.StringVar(&f.hostKeyCheck, "host-key-check", "", "strict, accept-new or off; default: the resumed run's")
	fs.DurationVar(&f.execTimeout, "timeout", -1, "bound on every remote exchange; default: the resumed run's")
	fs.BoolVar(&f.askBecomePass, "ask-become-pass", false, "ask for the sudo password (else $"+becomePassEnv+"; asked for anyway when the resumed run had one and it is unset)")
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
	// given again here; secret args and the become password, which the
	// journal does not keep, are given again.
	f.inventories = rec.Inventories
	f.check, f.diff, f.limit, f.forks = rec.Check, rec.Diff, rec.Limit, rec.Forks
	f.connectTimeout = rec.ConnectTimeout
	if f.execTimeout < 0 {
		f.execTimeout = rec.ExecTimeout
	}
	if len(f.knownHosts) == 0 {
		f.knownHosts = rec.KnownHosts
	}
	if f.hostKeyCheck == "" {
		f.hostKeyCheck = rec.HostKeyCheck
	}
	if f.resumedArgs, err = c.resumedArgs(rec, f.extra); err != nil {
		return exitUsage, err
	}
	f.extra, f.secretArgs = nil, rec.SecretArgs
	if err := c.readBecomePassword(&f, rec.BecomePassword); err != nil {
		return exitUsage, err
	}
	f.lab = len(rec.Inventories) == 1 && rec.Inventories[0] == labInventoryName
	if f.lab {
		f.inventories = nil
	}
	return c.execute(ctx, rec.Plan, f, rec.ID)
}

// resumedArgs are the args of a resumed run, with its secret ones, which
// run.json keeps masked, given again: by -e K=V, else $ORCH_ARG_K, else
// asked for on the terminal.
func (c *cli) resumedArgs(rec engine.RunRecord, given []string) (map[string]string, error) {
	args := map[string]string{}
	for k, v := range rec.Args {
		args[k] = v
	}
	again := map[string]string{}
	for _, kv := range given {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, &usageError{msg: fmt.Sprintf("-e %q: want K=V", kv)}
		}
		if !slices.Contains(rec.SecretArgs, k) {
			return nil, &usageError{msg: fmt.Sprintf("-e %s: run %s had no secret arg %s; a resume runs with the args of the run it resumes", k, rec.ID, k),
				hint: "to run with other args, start a new run"}
		}
		again[k] = v
	}
	for _, k := range rec.SecretArgs {
		if _, ok := rec.Args[k]; !ok {
			continue
		}
		v, ok := again[k]
		if !ok {
			v, ok = os.LookupEnv("ORCH_ARG_" + k)
		}
		if !ok {
			var err error
			if v, err = c.askSecret(fmt.Sprintf("-e %s (secret arg of run %s): ", k, rec.ID)); err != nil {
				return nil, &usageError{msg: fmt.Sprintf("run %s had the secret arg %s, which its journal does not keep: %v", rec.ID, k, err),
					hint: fmt.Sprintf("give it again: orch resume %s -e %s=… (or set ORCH_ARG_%s)", rec.ID, k, k)}
			}
		}
		args[k] = v
	}
	return args, nil
}

// execute loads the plan and inventory, runs, and maps the outcome to an
// exit code.
func (c *cli) execute(ctx context.Context, planPath string, f runFlags, resume string) (int, error) {
	if resume == "" {
		if err := c.readBecomePassword(&f, false); err != nil {
			return exitUsage, err
		}
	}
	opts, err := f.engineOptions()
	if err != nil {
		return exitUsage, err
	}
	opts.Resume, opts.ResumeForce = resume, f.force
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

	opts.Secrets = cloudTokens()
	out := newRenderer(c.stdout, f.json, f.verbose, f.diff)
	opts.OnEvent = out.event
	rep, err := engine.Run(ctx, p, inv, opts)
	out.close(rep)
	switch {
	case err != nil && !rep.Touched:
		var locked *engine.LockedError
		var changed *engine.ResumeChangedError
		switch {
		case errors.As(err, &locked):
			return exitUsage, &usageError{msg: err.Error(), hint: "wait for that run to end; a lock whose run died is taken over by the next run"}
		case errors.As(err, &changed):
			return exitUsage, &usageError{msg: err.Error(), hint: "orch resume " + resume + " --force resumes with the plan and inventory as they are now"}
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

// cloudTokens are the tokens the cloud modules read from the environment:
// secrets that no event, journal or error may show.
func cloudTokens() []string {
	var out []string
	for _, name := range []string{"LINODE_TOKEN", "DIGITALOCEAN_TOKEN"} {
		if v := os.Getenv(name); v != "" {
			out = append(out, v)
		}
	}
	return out
}
