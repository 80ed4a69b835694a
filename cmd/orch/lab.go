package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab"
)

// labInventoryName stands for the lab in run journals, so `orch resume`
// knows to use the lab again.
const labInventoryName = "lab"

// labDir is the lab's state folder: one lab per machine, whatever the
// working directory. $ORCH_LAB_STATE, else $XDG_STATE_HOME/orch/lab, else
// ~/.local/state/orch/lab.
func labDir() (string, error) {
	if d := os.Getenv("ORCH_LAB_STATE"); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) { // the spec ignores relative paths
		return filepath.Join(d, "orch", "lab"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no place for the lab's state: %w (set ORCH_LAB_STATE)", err)
	}
	return filepath.Join(home, ".local", "state", "orch", "lab"), nil
}

// labOptions aims lab commands at the machine's lab. ORCH_LAB_PREFIX names
// another lab's network and containers, so that several labs (a test's and
// yours) can run side by side; give each its own ORCH_LAB_STATE.
func (c *cli) labOptions() (lab.Options, error) {
	dir, err := labDir()
	if err != nil {
		return lab.Options{}, err
	}
	return lab.Options{Dir: dir, Prefix: os.Getenv("ORCH_LAB_PREFIX"), Logf: func(format string, args ...any) {
		c.log.Info(fmt.Sprintf(format, args...))
	}}, nil
}

func (c *cli) lab(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "orch lab needs a command", hint: "orch lab up | down | status [--json] | env"}
	}
	fs := newFlagSet("lab "+args[0], c.stderr)
	asJSON := fs.Bool("json", false, "print JSON (status)")
	state := fs.String("state", "", "state dir (serve-cloud)")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return flagError(err)
	}
	if len(pos) > 0 {
		return &usageError{msg: fmt.Sprintf("orch lab %s takes no arguments", args[0])}
	}
	opts, err := c.labOptions()
	if err != nil {
		return err
	}
	switch args[0] {
	case "up":
		l, err := lab.Up(ctx, opts)
		if err != nil {
			return err
		}
		return c.labStatus(ctx, l, false)
	case "down":
		return lab.Down(ctx, opts)
	case "status":
		l, err := lab.Open(opts.Dir)
		if err != nil {
			if *asJSON {
				fmt.Fprintln(c.stdout, "[]")
				return nil
			}
			return fmt.Errorf("%w (start it with: orch lab up)", err)
		}
		return c.labStatus(ctx, l, *asJSON)
	case "env":
		l, err := lab.Open(opts.Dir)
		if err != nil {
			return fmt.Errorf("%w (start it with: orch lab up)", err)
		}
		for _, line := range l.EnvLines() {
			fmt.Fprintln(c.stdout, line)
		}
		return nil
	case "image":
		tag, err := lab.EnsureImage(ctx, opts.Logf)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, tag)
		return nil
	case "serve-cloud": // started in the background by `orch lab up`
		if *state == "" {
			*state = opts.Dir
		}
		return lab.ServeCloud(ctx, *state)
	}
	return &usageError{msg: fmt.Sprintf("unknown lab command %q", args[0]), hint: "orch lab up | down | status [--json] | env | image"}
}

func (c *cli) labStatus(ctx context.Context, l *lab.Lab, asJSON bool) error {
	hosts, err := l.Status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if hosts == nil {
			hosts = []lab.HostStatus{}
		}
		return json.NewEncoder(c.stdout).Encode(hosts)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tGROUPS")
	for _, h := range hosts {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", h.Name, h.Address, strings.Join(h.Groups, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "cloud: %s (set -a; eval \"$(orch lab env)\"; set +a to use it from other tools)\n", l.CloudURL())
	return nil
}

// labInventory starts the lab if needed and aims the run at it: its hosts,
// its known_hosts with strict checking, its key for machines created at run
// time, and its cloud for the linode and digitalocean modules.
func (c *cli) labInventory(ctx context.Context, opts *engine.Options) (*inventory.Inventory, error) {
	labOpts, err := c.labOptions()
	if err != nil {
		return nil, err
	}
	l, err := lab.Up(ctx, labOpts)
	if err != nil {
		return nil, err
	}
	hosts, err := l.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	inv := inventory.New()
	for _, h := range hosts {
		if err := inv.Add(h); err != nil {
			return nil, err
		}
	}
	// The lab's first reserved IP, for plans that move one (the
	// floating-IP swap): what an operator passes with -e ip= elsewhere.
	if ips := l.Machines().ReservedIPs(); len(ips) > 0 {
		vars, err := inventory.Parse("lab.yaml", []byte("groups:\n  all:\n    vars:\n      floating_ip: "+ips[0]+"\n"))
		if err == nil {
			err = inv.Merge(vars)
		}
		if err != nil {
			return nil, err
		}
	}
	opts.SSH.KnownHosts = []string{l.KnownHostsPath()}
	opts.SSH.HostKeyCheck = "strict"
	opts.SSH.NoSSHConfig = true
	opts.SSH.IdentityFiles = []string{l.KeyPath()}
	labEnv := l.Env()
	opts.Endpoints = cloudEndpoints(func(k string) string { return labEnv[k] })
	return inv, nil
}
