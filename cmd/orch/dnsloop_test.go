package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/rogpeppe/go-internal/testscript"
)

// dnsLoop is an independent resolver loop: it queries a name through every
// lab load balancer, over UDP and TCP, until stopped, and counts the
// queries that failed (no answer, an error, or an answer that is not one
// of the accepted record sets). Like every stub resolver (glibc's
// "options timeout:1 attempts:2", say) it sends a query again when the
// first try brings no good answer within a second: nginx drops the UDP
// sessions an old worker has in flight when a reload ends it, and a
// resolver's resend is how DNS over UDP recovers any lost datagram. The
// resends are counted too.
type dnsLoop struct {
	stop                    chan struct{}
	wg                      sync.WaitGroup
	queries, fails, resends atomic.Int64
	mu                      sync.Mutex
	last                    string
}

var loops sync.Map // script work dir -> *dnsLoop

// dnsloopCmd: dnsloop start NAME ACCEPTED[,ACCEPTED…] | dnsloop stop.
// stop prints "dnsloop: N queries, M failed" and fails the script when M
// is not 0 (! dnsloop stop expects failures).
func dnsloopCmd(ts *testscript.TestScript, neg bool, args []string) {
	key := ts.Getenv("WORK")
	switch {
	case len(args) == 3 && args[0] == "start":
		lbs := labAddresses(ts, "lb")
		if len(lbs) == 0 {
			ts.Fatalf("dnsloop: no load balancers in the lab")
		}
		l := &dnsLoop{stop: make(chan struct{})}
		accepted := strings.Split(args[2], ",")
		for _, lb := range lbs {
			for _, netw := range []string{"udp", "tcp"} {
				l.wg.Add(1)
				go l.run(netw, net.JoinHostPort(lb, "53"), dns.Fqdn(args[1]), accepted)
			}
		}
		loops.Store(key, l)
	case len(args) == 1 && args[0] == "stop":
		v, ok := loops.LoadAndDelete(key)
		if !ok {
			ts.Fatalf("dnsloop: not started")
		}
		l := v.(*dnsLoop)
		close(l.stop)
		l.wg.Wait()
		fmt.Fprintf(ts.Stdout(), "dnsloop: %d queries, %d failed (%d sent twice)\n", l.queries.Load(), l.fails.Load(), l.resends.Load())
		if l.queries.Load() == 0 {
			ts.Fatalf("dnsloop: sent no queries")
		}
		if failed := l.fails.Load() > 0; failed != neg {
			ts.Fatalf("dnsloop: %d of %d queries failed (last: %s)", l.fails.Load(), l.queries.Load(), l.last)
		}
	default:
		ts.Fatalf("usage: dnsloop start NAME ACCEPTED[,ACCEPTED…] | dnsloop stop")
	}
}

func (l *dnsLoop) run(netw, server, name string, accepted []string) {
	defer l.wg.Done()
	c := &dns.Client{Net: netw, Timeout: time.Second}
	for {
		select {
		case <-l.stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		l.queries.Add(1)
		why := l.try(c, server, name, accepted)
		if why != "" {
			l.resends.Add(1)
			why = l.try(c, server, name, accepted)
		}
		if why != "" {
			l.fails.Add(1)
			l.mu.Lock()
			l.last = fmt.Sprintf("%s %s: %s", netw, server, why)
			l.mu.Unlock()
		}
	}
}

// try sends the query once and says what was wrong with the answer, or "".
func (l *dnsLoop) try(c *dns.Client, server, name string, accepted []string) string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := c.Exchange(m, server)
	{
		why := ""
		switch {
		case err != nil:
			why = err.Error()
		case r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0:
			why = fmt.Sprintf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
		default:
			var got []string
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok {
					got = append(got, a.A.String())
				}
			}
			sort.Strings(got)
			ok := false
			for _, want := range accepted {
				ok = ok || strings.Join(got, " ") == want
			}
			if !ok {
				why = fmt.Sprintf("answer %v", got)
			}
		}
		return why
	}
}

// labAddresses lists the addresses of the lab's hosts in group.
func labAddresses(ts *testscript.TestScript, group string) []string {
	out, err := orchCommand(ts, "lab", "status", "--json").Output()
	if err != nil {
		ts.Fatalf("orch lab status: %v", err)
	}
	var hosts []struct {
		Name, Address string
		Groups        []string
	}
	if err := json.Unmarshal(out, &hosts); err != nil {
		ts.Fatalf("orch lab status: %v", err)
	}
	var addrs []string
	for _, h := range hosts {
		for _, g := range h.Groups {
			if g == group {
				addrs = append(addrs, h.Address)
			}
		}
	}
	return addrs
}

// orchCommand is the script's orch, with the script's environment.
func orchCommand(ts *testscript.TestScript, args ...string) *exec.Cmd {
	cmd := exec.Command("orch", args...)
	for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
		if p := filepath.Join(dir, "orch"); fileExists(p) {
			cmd.Path = p
			break
		}
	}
	cmd.Dir = ts.Getenv("WORK")
	for _, k := range []string{"HOME", "PATH", "ORCH_STATE", "ORCH_LAB_PREFIX", "ORCH_LAB_STATE", "TMPDIR"} {
		cmd.Env = append(cmd.Env, k+"="+ts.Getenv(k))
	}
	return cmd
}

// waitforCmd: waitfor GLOB REGEXP waits (up to a minute) until a file
// matching GLOB holds a match, for killing a run at a chosen point (its
// journal's events.jsonl, say).
func waitforCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitfor GLOB REGEXP")
	}
	re := regexp.MustCompile(args[1])
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		files, _ := filepath.Glob(ts.MkAbs(args[0]))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && re.Match(b) {
				return
			}
		}
	}
	ts.Fatalf("waitfor: no %q in %s after a minute", args[1], args[0])
}

// lastrunCmd: lastrun VAR sets VAR to the ID of the newest run journaled
// under $ORCH_STATE/runs.
func lastrunCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: lastrun VAR")
	}
	entries, err := os.ReadDir(filepath.Join(ts.Getenv("ORCH_STATE"), "runs"))
	if err != nil || len(entries) == 0 {
		ts.Fatalf("lastrun: no runs: %v", err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	sort.Strings(names) // IDs start with the UTC time
	ts.Setenv(args[0], names[len(names)-1])
}
