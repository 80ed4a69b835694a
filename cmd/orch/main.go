// Command orch runs deploy plans written in Starlark against an inventory
// of hosts, over SSH, in parallel.
//
// It is a thin layer over the engine: it parses flags, loads the plan and
// the inventory, renders events, and maps outcomes to exit codes:
// 0 all good, 1 a host or step failed, 2 bad usage, plan or inventory found
// before anything changed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/charmbracelet/log"

	_ "github.com/orch-dev/orch/modules/standard"
)

const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	usageHeader = `orch: agentless push orchestration with Starlark plans

Usage:
  orch run PLAN [-i INV]... [--check] [--diff] [--limit PATTERN] [--forks N] [-e K=V]... [--secret-arg K]...
               [--timeout D] [--ask-become-pass] [--json] [--lab]
  orch inventory [-i INV]... [--limit PATTERN] [--json] [--lab]
  orch modules [NAME]
  orch resume RUN_ID [--force] [-e K=V]... [--json]
  orch serve --listen ADDR --plan PLAN [-i INV]... --secret-env VAR [-e K=V]... [--run-timeout 30m] [--queue 8]
  orch lab up|down|status [--json]|env

Run 'orch COMMAND -h' for the flags of a command.
`
)

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) }

// usageError is bad usage: exit 2 with the message and a hint.
type usageError struct {
	msg, hint string
}

func (e *usageError) Error() string { return e.msg }

// Main runs orch with args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	// Wrapped so the logger does not see a terminal: it would query the
	// terminal's colours, and the answer can land in the user's shell.
	logger := log.NewWithOptions(struct{ io.Writer }{stderr}, log.Options{Prefix: "orch"})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first Ctrl-C cancels the run (and lets undos put things back); a
	// second one, with the default handling restored, ends orch at once.
	context.AfterFunc(ctx, stop)
	if len(args) == 0 {
		fmt.Fprint(stderr, usageHeader)
		return exitUsage
	}
	cli := &cli{stdout: stdout, stderr: stderr, log: logger}
	var err error
	code := exitOK
	switch args[0] {
	case "run":
		code, err = cli.run(ctx, args[1:])
	case "resume":
		code, err = cli.resume(ctx, args[1:])
	case "inventory":
		err = cli.inventory(ctx, args[1:])
	case "modules":
		err = cli.modules(args[1:])
	case "lab":
		err = cli.lab(ctx, args[1:])
	case "serve":
		err = cli.serve(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageHeader)
	default:
		err = &usageError{msg: fmt.Sprintf("unknown command %q", args[0]), hint: "commands are run, inventory, modules, resume, serve and lab"}
	}
	if err == nil {
		return code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		logger.Error(ue.msg)
		if ue.hint != "" {
			logger.Info("hint: " + ue.hint)
		}
		return exitUsage
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitUsage
	}
	logger.Error(err.Error())
	if code == exitOK {
		code = exitFailed
	}
	return code
}

type cli struct {
	stdout, stderr io.Writer
	log            *log.Logger
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// parse parses flags and positional arguments in any order, as users of
// ssh and ansible expect (`orch run plan.star -i inv --check`).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("orch "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// flagError turns a flag parsing error into a usage error.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{msg: err.Error()}
}
