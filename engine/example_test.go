package engine_test

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"testing/fstest"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules/command"
	"github.com/orch-dev/orch/modules/file"
	_ "github.com/orch-dev/orch/modules/standard" // every module a plan may call
	"github.com/orch-dev/orch/plan"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// exampleFleet starts real sshd servers on loopback, standing in for a
// fleet, and returns them with a scratch directory; stop cleans both up.
func exampleFleet(n int) (fleet *sshdtest.Fleet, dir string, stop func(), err error) {
	dir, err = os.MkdirTemp("", "orch-example-")
	if err != nil {
		return nil, "", nil, err
	}
	fleet, err = sshdtest.StartFleet(context.Background(), filepath.Join(dir, "sshd"), n, sshdtest.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	return fleet, dir, func() { fleet.Stop(); os.RemoveAll(dir) }, nil
}

// sitePlan is the plan ExampleRun runs; a plan can as well be a file on
// disk (plan.Load) or in an embed.FS.
const sitePlan = `
def site(h):
    root = h.vars["root"]
    file(path = root, state = "directory")
    file(path = root + "/index.html", content = "<h1>%s</h1>\n" % h.name)

def main(ctx):
    res = ctx.apply("web", site)
    print("changed:", sorted([h.name for h in res.changed]))
`

// Run a plan from Go with an inventory built in code, stream its typed
// events to the program's own UI, and read the structured report.
func ExampleRun() {
	fleet, dir, stop, err := exampleFleet(2)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	inv := inventory.New()
	for _, h := range fleet.Hosts {
		err := inv.Add(&inventory.Host{
			Name: "web-" + h.Name, Address: h.IP, Port: h.Port, User: fleet.User, Key: fleet.ClientKey,
			Groups: []string{"web"}, Vars: map[string]any{"root": filepath.Join(dir, h.Name, "site")},
		})
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	p, err := plan.LoadFS(fstest.MapFS{"site.star": {Data: []byte(sitePlan)}}, "site.star", "site.star")
	if err != nil {
		fmt.Println(err) // a *plan.Error or plan.Errors, with file:line:col
		return
	}
	defer p.Close()

	opts := engine.Options{
		StateDir: filepath.Join(dir, "state"),
		SSH:      engine.SSHOptions{KnownHosts: []string{fleet.KnownHosts}, HostKeyCheck: "strict", NoSSHConfig: true},
		// The program's own UI. Events arrive one at a time, in order;
		// hosts work in parallel, so their events interleave.
		OnEvent: func(e engine.Event) {
			switch e.Event {
			case "task":
				fmt.Printf("%s: %s %s: %s\n", e.Host, e.Module, path.Base(e.Task), e.Status)
			case "host_done":
				fmt.Printf("%s: done, %d of %d tasks changed\n", e.Host, e.TasksChanged, e.Tasks)
			case "print":
				fmt.Println("plan says", e.Msg)
			}
		},
	}
	rep, err := engine.Run(context.Background(), p, inv, opts)
	if err != nil {
		fmt.Println("run failed:", err, "touched:", rep.Touched)
		return
	}
	fmt.Printf("summary: hosts=%d changed=%d tasks_changed=%d\n", rep.Summary.Hosts, rep.Summary.Changed, rep.Summary.TasksChanged)

	// The second run changes nothing, in one exchange per host.
	opts.OnEvent = nil
	rep, err = engine.Run(context.Background(), p, inv, opts)
	if err != nil {
		fmt.Println("rerun failed:", err)
		return
	}
	for _, h := range rep.Hosts {
		fmt.Printf("rerun %s: %s, %d exchange\n", h.Name, h.Status, h.Exchanges)
	}
	// Unordered output:
	// web-h1: file site: changed
	// web-h1: file index.html: changed
	// web-h1: done, 2 of 2 tasks changed
	// web-h2: file site: changed
	// web-h2: file index.html: changed
	// web-h2: done, 2 of 2 tasks changed
	// plan says changed: ["web-h1", "web-h2"]
	// summary: hosts=2 changed=2 tasks_changed=4
	// rerun web-h1: ok, 1 exchange
	// rerun web-h2: ok, 1 exchange
}

// Converge hosts from Go without Starlark: tasks are the modules' argument
// structs, applied with the same batching, check mode, events and report
// as a plan's ctx.apply.
func ExampleConverge() {
	fleet, dir, stop, err := exampleFleet(2)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	var hosts []*inventory.Host
	for _, h := range fleet.Hosts {
		hosts = append(hosts, &inventory.Host{Name: h.Name, Address: h.IP, Port: h.Port, User: fleet.User, Key: fleet.ClientKey})
	}
	// Every sshd here shares one file system, so each host gets a folder
	// of its own; on a real fleet the paths would be the same everywhere.
	root := func(h *inventory.Host) string { return filepath.Join(dir, h.Name) }
	motd := "managed from Go\n"
	opts := engine.ConvergeOptions{
		Options: engine.Options{
			StateDir: filepath.Join(dir, "state"),
			SSH:      engine.SSHOptions{KnownHosts: []string{fleet.KnownHosts}, HostKeyCheck: "strict", NoSSHConfig: true},
		},
		Name:   "motd",
		Serial: 1, // one host at a time, as ctx.apply(serial = 1)
		PerHost: func(h *inventory.Host) ([]engine.Task, error) {
			return []engine.Task{
				{Args: &file.File{Path: root(h), State: "directory", Mode: "0755"}},
				{Args: &file.File{Path: root(h) + "/motd", Content: &motd}}, // State: "file", the default
				{Args: &command.Command{Cmd: "date > " + root(h) + "/stamp", Creates: root(h) + "/stamp"}},
			}, nil
		},
	}
	report := func(what string, rep *engine.Report, err error) {
		if err != nil {
			fmt.Println(what, "failed:", err)
			return
		}
		s := rep.Summary
		fmt.Printf("%s: hosts=%d changed=%d tasks_changed=%d exchanges=%d\n", what, s.Hosts, s.Changed, s.TasksChanged, s.Exchanges)
	}

	opts.Check = true // change nothing; say what would change
	rep, err := engine.Converge(context.Background(), hosts, nil, opts)
	report("check", rep, err)
	if _, err := os.Stat(root(hosts[0])); os.IsNotExist(err) {
		fmt.Println("check mode created nothing")
	}

	opts.Check = false
	rep, err = engine.Converge(context.Background(), hosts, nil, opts)
	report("apply", rep, err)

	rep, err = engine.Converge(context.Background(), hosts, nil, opts)
	report("again", rep, err)

	// Arguments are checked on the controller, before any host is touched.
	bad := []engine.Task{{Args: &file.File{Path: "relative/motd"}}}
	rep, err = engine.Converge(context.Background(), hosts[:1], bad, opts)
	fmt.Println("touched:", rep.Touched, "error:", err)
	// Output:
	// check: hosts=2 changed=2 tasks_changed=6 exchanges=2
	// check mode created nothing
	// apply: hosts=2 changed=2 tasks_changed=6 exchanges=4
	// again: hosts=2 changed=0 tasks_changed=0 exchanges=2
	// touched: false error: role motd for h1: file (tasks[0]): path "relative/motd" must be absolute and clean, without newlines
}
