package engine

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/engine/conn/sshconn"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// TestConcurrentRuns: two runs at once in one process, on two sshd fleets,
// share nothing: each gets the report and the events of its own hosts,
// its own run ID and journal, and its own warnings (a warning one run
// gave does not silence it in the other). Run with -race.
func TestConcurrentRuns(t *testing.T) {
	fleets := map[string]*sshdtest.Fleet{
		"a": sshdtest.Start(t, 3, sshdtest.Options{}),
		"b": sshdtest.Start(t, 2, sshdtest.Options{}),
	}
	state := t.TempDir() // one state dir: the runs lock and journal apart
	sshConfig := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(sshConfig, []byte("Host *\n    Compression yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Load("testdata/site.star")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	type result struct {
		rep  *Report
		rec  *recorder
		err  error
		dir  string
		want []string // host names
	}
	results := map[string]*result{}
	var start, wg sync.WaitGroup
	start.Add(1)
	for name, fleet := range fleets {
		res := &result{rec: &recorder{}, dir: t.TempDir()}
		results[name] = res
		inv := inventory.New()
		for _, h := range fleet.Hosts {
			hn := name + "-" + h.Name
			res.want = append(res.want, hn)
			err := inv.Add(&inventory.Host{Name: hn, Address: h.IP, Port: h.Port, User: fleet.User, Key: fleet.ClientKey,
				Vars: map[string]any{"root": filepath.Join(res.dir, hn)}})
			if err != nil {
				t.Fatal(err)
			}
		}
		opts := Options{StateDir: state, Inventories: []string{"fleet-" + name}, OnEvent: res.rec.on,
			SSH: SSHOptions{KnownHosts: []string{fleet.KnownHosts}, HostKeyCheck: "strict", SSHConfig: sshConfig}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			res.rep, res.err = Run(context.Background(), p, inv, opts)
		}()
	}
	start.Done()
	wg.Wait()

	ids := map[string]bool{}
	for name, res := range results {
		if res.err != nil {
			t.Fatalf("run %s: %v", name, res.err)
		}
		ids[res.rep.RunID] = true
		n := len(res.want)
		if s := res.rep.Summary; s.Hosts != n || s.Changed != n || s.TasksChanged != 21*n || s.Exchanges != int64(2*n) {
			t.Errorf("run %s: summary %+v, want %d hosts changed, %d tasks, %d exchanges", name, s, n, 21*n, 2*n)
		}
		var got []string
		for _, h := range res.rep.Hosts {
			got = append(got, h.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, res.want) {
			t.Errorf("run %s reports hosts %v, want %v", name, got, res.want)
		}
		for _, e := range res.rec.events {
			if e.Host != "" && !slices.Contains(res.want, e.Host) {
				t.Errorf("run %s got an event of another run's host: %+v", name, e)
			}
		}
		if starts := res.rec.of("run_start"); len(starts) != 1 || starts[0].RunID != res.rep.RunID {
			t.Errorf("run %s: run_start events %+v, want one with run ID %s", name, starts, res.rep.RunID)
		}
		if last := res.rec.events[len(res.rec.events)-1]; last.Event != "summary" || last.Summary.Hosts != n {
			t.Errorf("run %s: last event %+v, want its summary", name, last)
		}
		if tasks := res.rec.of("task"); len(tasks) != 21*n {
			t.Errorf("run %s: %d task events, want %d", name, len(tasks), 21*n)
		}
		warned := 0
		for _, e := range res.rec.of("warning") {
			if strings.Contains(e.Msg, "ignores") && strings.Contains(strings.ToLower(e.Msg), "compression") {
				warned++
			}
		}
		if warned != 1 {
			t.Errorf("run %s: the ssh config warning came %d times, want once: %+v", name, warned, res.rec.of("warning"))
		}
		for _, hn := range res.want {
			b, err := os.ReadFile(filepath.Join(res.dir, hn, "f7.txt"))
			if want := fmt.Sprintf("file 7 on %s\n", hn); err != nil || string(b) != want {
				t.Errorf("run %s: %s/f7.txt = %q, %v; want %q", name, hn, b, err, want)
			}
		}
		journal, err := os.ReadFile(filepath.Join(state, "runs", res.rep.RunID, "events.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		other := "b-"
		if name == "b" {
			other = "a-"
		}
		if strings.Contains(string(journal), `"host":"`+other) {
			t.Errorf("run %s's journal holds another run's hosts", name)
		}
	}
	if len(ids) != 2 {
		t.Errorf("the runs share a run ID: %v", ids)
	}
}

// jumpDials counts, by run (the first letter of the host name), the TCP
// connections the "counted-ssh" connection opens: with a ProxyJump, those
// are the connections to the jump host.
var jumpDials = struct {
	sync.Mutex
	byRun map[string]int
}{byRun: map[string]int{}}

func init() {
	conn.Register("counted-ssh", func(ctx context.Context, req conn.DialRequest) (conn.Conn, error) {
		cfg := sshconn.ConfigFor(req)
		run := req.Host.Name[:1]
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			jumpDials.Lock()
			jumpDials.byRun[run]++
			jumpDials.Unlock()
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		return sshconn.Dial(ctx, cfg)
	})
}

// TestRunsShareTheirJumpHostConnectionOnly: the hosts of one run behind
// one bastion share one connection to it, and two runs at once, with the
// same trust settings, each make their own.
func TestRunsShareTheirJumpHostConnectionOnly(t *testing.T) {
	fleet := sshdtest.Start(t, 5, sshdtest.Options{})
	bastion := fleet.Hosts[0]
	jumpDials.Lock()
	clear(jumpDials.byRun)
	jumpDials.Unlock()
	p, err := plan.Load("testdata/site.star")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dir, state := t.TempDir(), t.TempDir() // one state dir: the same trust for both runs
	var wg sync.WaitGroup
	reps := map[string]*Report{}
	var mu sync.Mutex
	for i, run := range []string{"a", "b"} {
		inv := inventory.New()
		for _, h := range fleet.Hosts[1+2*i : 3+2*i] {
			name := run + "-" + h.Name
			err := inv.Add(&inventory.Host{Name: name, Address: h.IP, Port: h.Port, User: fleet.User, Key: fleet.ClientKey, Connection: "counted-ssh",
				Vars: map[string]any{"root": filepath.Join(dir, name), "ansible_ssh_common_args": fmt.Sprintf("-J %s@%s:%d", fleet.User, bastion.IP, bastion.Port)}})
			if err != nil {
				t.Fatal(err)
			}
		}
		opts := Options{StateDir: state, Inventories: []string{run},
			SSH: SSHOptions{KnownHosts: []string{fleet.KnownHosts}, HostKeyCheck: "strict", NoSSHConfig: true}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := Run(context.Background(), p, inv, opts)
			if err != nil {
				t.Errorf("run %s: %v", run, err)
			}
			mu.Lock()
			reps[run] = rep
			mu.Unlock()
		}()
	}
	wg.Wait()
	for run, rep := range reps {
		if rep.Summary.Changed != 2 {
			t.Errorf("run %s: %+v", run, rep.Summary)
		}
	}
	jumpDials.Lock()
	defer jumpDials.Unlock()
	if a, b := jumpDials.byRun["a"], jumpDials.byRun["b"]; a != 1 || b != 1 {
		t.Errorf("connections to the bastion: run a %d, run b %d; want one each", a, b)
	}
}
