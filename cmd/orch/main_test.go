package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/orch-dev/orch/testkit/require"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"orch": func() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) },
		// orch-exit N ARGS… runs orch and succeeds only if it exits with N,
		// since the exact code (0, 1 or 2) is part of the contract.
		"orch-exit": func() {
			want, _ := strconv.Atoi(os.Args[1])
			if got := Main(os.Args[2:], os.Stdout, os.Stderr); got != want {
				fmt.Fprintf(os.Stderr, "orch exited %d, want %d\n", got, want)
				os.Exit(1)
			}
			os.Exit(0)
		},
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("ORCH_STATE", filepath.Join(env.WorkDir, ".orch"))
			env.Setenv("HOME", env.WorkDir) // no ~/.ssh/config or known_hosts of the machine
			// A lab of the tests' own, beside any lab the developer runs. Its
			// state goes where a user's would, under $HOME/.local/state.
			env.Setenv("ORCH_LAB_PREFIX", fmt.Sprintf("orch-labtest-cli-%d", os.Getpid()))
			return nil
		},
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"fleet":    fleetCmd,
			"dnsloop":  dnsloopCmd,
			"httploop": httploopCmd,
			"waitfor":  waitforCmd,
			"lastrun":  lastrunCmd,
			// defer-lab-down removes the script's lab when the script ends.
			"defer-lab-down": func(ts *testscript.TestScript, neg bool, args []string) {
				ts.Defer(func() {
					if err := ts.Exec("orch", "lab", "down"); err != nil {
						ts.Logf("lab down: %v", err)
					}
				})
			},
		},
		Condition: func(cond string) (bool, error) {
			// Where ORCH_TEST_REQUIRE is set, a missing prerequisite fails
			// the script instead of skipping it.
			switch cond {
			case "docker":
				if exec.Command("docker", "info").Run() == nil {
					return true, nil
				}
				if require.Strict() {
					return false, fmt.Errorf("no Docker engine (docker info failed; %s is set)", require.Env)
				}
				return false, nil
			case "sshd":
				why := sshdtest.Available()
				if why != "" && require.Strict() {
					return false, fmt.Errorf("%s (%s is set)", why, require.Env)
				}
				return why == "", nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// fleetCmd manages real sshd servers for a script:
//
//	fleet start N   start N hosts; write inventory.ini and known_hosts in $WORK
//	fleet stop NAME stop one host
//	fleet rotate NAME give one host a new host key
func fleetCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fleet start N | fleet stop NAME | fleet rotate NAME")
	}
	switch args[0] {
	case "start":
		if why := sshdtest.Available(); why != "" {
			ts.Fatalf("%s (guard the script with [!sshd] skip)", why)
		}
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		work := ts.Getenv("WORK")
		dir := filepath.Join(work, ".fleet")
		ts.Check(os.MkdirAll(dir, 0o700))
		f, err := sshdtest.StartFleet(context.Background(), dir, n, sshdtest.Options{})
		ts.Check(err)
		ts.Defer(func() { f.Stop() })
		fleetsMu.Lock()
		fleets[work] = f
		fleetsMu.Unlock()
		var inv strings.Builder
		inv.WriteString("[web]\n")
		for _, h := range f.Hosts {
			fmt.Fprintf(&inv, "%s ansible_host=%s ansible_port=%d ansible_user=%s ansible_ssh_private_key_file=%s root=%s\n",
				h.Name, h.IP, h.Port, f.User, f.ClientKey, filepath.Join(work, "hosts", h.Name))
		}
		ts.Check(os.WriteFile(filepath.Join(work, "inventory.ini"), []byte(inv.String()), 0o644))
		ts.Check(f.WriteKnownHosts(filepath.Join(work, "known_hosts")))
		for _, h := range f.Hosts {
			ts.Setenv("FP_"+h.Name, h.Fingerprint)
		}
	case "stop", "rotate":
		fleetsMu.Lock()
		f := fleets[ts.Getenv("WORK")]
		fleetsMu.Unlock()
		if f == nil {
			ts.Fatalf("no fleet started")
		}
		for _, h := range f.Hosts {
			if h.Name != args[1] {
				continue
			}
			if args[0] == "stop" {
				h.Stop()
				return
			}
			fp, err := h.RotateKey(context.Background())
			ts.Check(err)
			ts.Setenv("NEWFP_"+h.Name, fp)
			return
		}
		ts.Fatalf("no host %s", args[1])
	default:
		ts.Fatalf("unknown fleet command %q", args[0])
	}
}

// fleets maps a script's work directory to its fleet. Scripts run in
// parallel, each with its own work directory.
var (
	fleetsMu sync.Mutex
	fleets   = map[string]*sshdtest.Fleet{}
)
