// Package haproxy is the haproxy.server module: one server of a HAProxy
// backend, added, set ready, drained, put in maintenance, reweighted or
// deleted live through the runtime API on the admin socket, and kept in
// the config file so that a reload keeps what the runtime API did.
package haproxy

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/orch-dev/orch/modules"
)

func init() {
	modules.Register(modules.Info{ID: "haproxy.server", New: func() any { return new(Server) }, Doc: `Manages one server of a HAProxy backend through the runtime API: ready, drain, maint or absent.

The change is made live on the admin socket (socket=, a "stats socket …
level admin" of the running HAProxy), spoken to with socat on the host, so
no reload is needed and no connection is dropped: add server (HAProxy 2.6
or later, no experimental mode; it needs a backend with a dynamic
balance algorithm such as roundrobin, leastconn, random or consistent
hashing), enable health for an added server with check=True, set server …
state ready|drain|maint, set server … weight, set server … addr, and del
server. A server is deleted by putting it in maintenance first (no new
requests reach it, the ones in flight finish), then retrying del server
every 0.2 s until HAProxy has no connection left on it (HAProxy 2.6 also
refuses while idle keep-alive connections remain, and closes those only
when the server's address changes, so orch moves its port and back: no
request is touched). The wait is bounded by drain_timeout, after which the
sessions left are shut down and the delete is tried for 5 more seconds
before the task fails with HAProxy's answer.

With config=, the server's line in that backend (or listen) section of the
config file is kept as the runtime has it: address, weight, check, and
"disabled" for maint (drain is a runtime state: a reload makes the server
ready again, unless the config loads a server-state-file). Other words of
an existing line (maxconn 100, inter 2s) are kept. The new file is checked
with haproxy -c before it is renamed over the old one, so the file a reload
reads is always valid: a server added at runtime is there after a reload.
A backend whose balance algorithm takes no servers at runtime (static-rr,
or hashing that is not consistent, as the config says) gets a new server
through the config and one reload, after the host's other tasks, through
the master CLI (master=, the -S socket of haproxy -W; Debian's
haproxy.service runs -S /run/haproxy-master.sock): the config is checked
with haproxy -c first, the master hands the listening sockets to the new
worker, so the reload drops no connection, and the task waits until the
new worker answers. With config= and HAProxy not running, only the config
is written; without config=, HAProxy must be running.

A plan reads the whole state with h.fact("haproxy", "rt:SOCKET") ({"running",
"problem", "backends": {BACKEND: {SERVER: {"address", "state", "weight",
"up"}}}}) or h.fact("haproxy", "cfg:CONFIG") ({"exists", "backends":
{BACKEND: {SERVER: "ADDRESS WORDS…"}}}), as plans/stacks.star does.

The admin socket is usually root's (mode 600): run the task with
become=True, or give the socket to a group (stats socket … mode 660 group
G). socat must be installed on the host; haproxy too, for -c on configs.

Facts: one "show backend;show servers state" per socket and one read per
config file, for all of a host's haproxy.server tasks, in the probe
exchange, so a rerun that changes nothing is one exchange per host. --check
changes nothing and says what would change; --diff shows the server's old
and new runtime state and config line.

Backend and server names are checked on the controller: the runtime API
splits a line on ";" and words on spaces, so a name holding either would
run another command. Names are letters, digits and "-_.:".

What Ansible's community.general.haproxy module lacks, and orch does
instead: it cannot add or delete servers (only enable, disable, drain and
weight existing ones), so a new backend server means a template and a
reload; orch adds and deletes them live and keeps the config in step. It
has no check mode and no diff; orch has both. Its drain-and-wait polls
until the server shows no sessions with no useful bound, and has hung or
timed out for years (ansible#37591, community.general#1913, #8092,
#12286); orch's wait is HAProxy's own answer to del server, bounded by
drain_timeout, and ends in a clear error or a shutdown of the sessions
left.

Effects: haproxy:rt:SOCKET#BACKEND/SERVER, haproxy:cfg:CONFIG#BACKEND/SERVER
and path:CONFIG.`})
}

// Server is the argument struct of haproxy.server().
type Server struct {
	Backend      string        `arg:"backend,required" doc:"the backend (or listen section) the server belongs to"`
	Name         string        `arg:"name,required" doc:"the server's name in the backend"`
	Address      *string       `arg:"address" doc:"IP:PORT ([IPv6]:PORT); needed to add a server, None keeps an existing server's"`
	State        string        `arg:"state" default:"ready" doc:"ready | drain | maint | absent"`
	Weight       *int          `arg:"weight" doc:"0-256; None keeps the server's weight (1 for a new one)"`
	Socket       string        `arg:"socket" default:"/run/haproxy/admin.sock" doc:"the admin socket (stats socket … level admin)"`
	Config       string        `arg:"config" doc:"the config file to keep the server's line in, so a reload keeps it"`
	HealthCheck  bool          `arg:"check" default:"False" doc:"health-check the server (check, and enable health for a server added at runtime)"`
	Master       string        `arg:"master" default:"/run/haproxy-master.sock" doc:"the master CLI socket (haproxy -W -S …), for the reloads a runtime change cannot spare"`
	DrainTimeout time.Duration `arg:"drain_timeout" default:"30s" doc:"how long a delete waits for the server's connections to end before shutting them down"`

	addr netip.AddrPort // parsed Address
}

var (
	_ modules.Task       = (*Server)(nil)
	_ modules.Validator  = (*Server)(nil)
	_ modules.FactReader = (*Server)(nil)
	_ modules.Effector   = (*Server)(nil)
	_ modules.Describer  = (*Server)(nil)
)

var validName = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// validPath accepts absolute, clean paths that socat and the fact keys
// can carry: no spaces, commas, colons or "#".
func validPath(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p && !strings.ContainsAny(p, " \t\n,:#;|\\\"'")
}

func (s *Server) Describe() string { return "haproxy.server " + s.Backend + "/" + s.Name }

func (s *Server) Validate(*modules.Env) error {
	for what, v := range map[string]string{"backend": s.Backend, "name": s.Name} {
		if !validName.MatchString(v) {
			return fmt.Errorf("%s %q: HAProxy names are letters, digits and -_.: (the runtime API splits commands on \";\" and words on spaces)", what, v)
		}
	}
	switch s.State {
	case "ready", "drain", "maint", "absent":
	default:
		return fmt.Errorf("state %q is not one of ready, drain, maint, absent", s.State)
	}
	if s.Address != nil {
		ap, err := netip.ParseAddrPort(*s.Address)
		if err != nil || ap.Port() == 0 {
			return fmt.Errorf("address %q is not IP:PORT or [IPv6]:PORT (the runtime API resolves no names)", *s.Address)
		}
		s.addr = ap
	}
	if s.Weight != nil && (*s.Weight < 0 || *s.Weight > 256) {
		return fmt.Errorf("weight %d is not between 0 and 256", *s.Weight)
	}
	for what, p := range map[string]string{"socket": s.Socket, "master": s.Master} {
		if !validPath(p) {
			return fmt.Errorf("%s %q must be an absolute path without spaces, commas, colons or quotes", what, p)
		}
	}
	if s.Config != "" && !validPath(s.Config) {
		return fmt.Errorf("config %q must be an absolute path without spaces, commas, colons or quotes", s.Config)
	}
	if s.DrainTimeout <= 0 {
		return fmt.Errorf("drain_timeout must be positive")
	}
	return nil
}

func (s *Server) Facts() []modules.FactKey {
	keys := []modules.FactKey{RuntimeKey(s.Socket, s.Backend, s.Name)}
	if s.Config != "" {
		keys = append(keys, ConfigKey(s.Config, s.Backend, s.Name))
	}
	return keys
}

func (s *Server) Effects() []string {
	out := []string{RuntimeKey(s.Socket, s.Backend, s.Name).StateKey()}
	if s.Config != "" {
		out = append(out, ConfigKey(s.Config, s.Backend, s.Name).StateKey(), modules.PathKey(s.Config))
	}
	return out
}

// Probe is empty: everything comes from the shared haproxy fact.
func (s *Server) Probe(modules.ProbeRequest) string { return "" }

func (s *Server) id() string { return s.Backend + "/" + s.Name }

func (s *Server) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	rt, _ := req.Facts[RuntimeKey(s.Socket, s.Backend, s.Name)].(*Runtime)
	if rt == nil {
		resp.Err = fmt.Errorf("no haproxy facts gathered for %s", s.Socket)
		return
	}
	var cfg *ConfigLine
	if s.Config != "" {
		c, _ := req.Facts[ConfigKey(s.Config, s.Backend, s.Name)].(ConfigLine)
		switch {
		case !c.Exists:
			resp.Err = fmt.Errorf("config %s does not exist", s.Config)
			return
		case !c.BackendExists:
			resp.Err = fmt.Errorf("config %s has no backend or listen section %q", s.Config, s.Backend)
			return
		}
		cfg = &c
	}
	var cur *ServerState // the server as the runtime has it
	if rt.Answered {
		servers, ok := rt.Backends[s.Backend]
		if !ok {
			resp.Err = fmt.Errorf("HAProxy on %s has no backend %q (it has %s)", s.Socket, s.Backend, strings.Join(sortedKeys(rt.Backends), ", "))
			return
		}
		if st, ok := servers[s.Name]; ok {
			cur = &st
		}
	} else if cfg == nil {
		resp.Err = fmt.Errorf("%s", rt.Problem)
		return
	}

	var b applyBuilder
	var reasons []string
	var diff strings.Builder
	reload := rt.Answered && cfg != nil && !cfg.Dynamic && cur == nil && s.State != "absent"
	if reload {
		// add server refuses a backend with a static algorithm: the
		// config goes live with a reload instead.
		reasons = append(reasons, fmt.Sprintf("add server %s through a reload (the balance algorithm of %s takes no servers at runtime)", s.id(), s.Backend))
		fmt.Fprintf(&diff, "--- %s on %s\n+++ %s on %s\n-absent\n+%s (after the reload)\n", s.id(), s.Socket, s.id(), s.Socket, s.describeWanted(cur))
	} else if rt.Answered {
		ops, why, err := s.runtimeOps(cur)
		if err != nil {
			resp.Err = err
			return
		}
		if len(ops) > 0 {
			reasons = append(reasons, why)
			fmt.Fprintf(&diff, "--- %s on %s\n+++ %s on %s\n-%s\n+%s\n", s.id(), s.Socket, s.id(), s.Socket, describe(cur), s.describeWanted(cur))
			b.runtime = ops
		}
	}
	if cfg != nil {
		words, err := s.configWords(cfg.Words, cur)
		if err != nil {
			resp.Err = err
			return
		}
		if words != cfg.Words {
			b.config = true
			b.line = ""
			if words != "" {
				b.line = "server " + s.Name + " " + words
			}
			switch {
			case cfg.Words == "":
				reasons = append(reasons, "add its line to "+s.Config)
			case words == "":
				reasons = append(reasons, "remove its line from "+s.Config)
			default:
				reasons = append(reasons, "update its line in "+s.Config)
			}
			fmt.Fprintf(&diff, "--- %s\n+++ %s\n@@ backend %s @@\n", s.Config, s.Config, s.Backend)
			if cfg.Words != "" {
				fmt.Fprintf(&diff, "-    server %s %s\n", s.Name, cfg.Words)
			}
			if words != "" {
				fmt.Fprintf(&diff, "+    server %s %s\n", s.Name, words)
			}
		}
	}
	if len(reasons) == 0 {
		resp.Reason = fmt.Sprintf("server %s is %s, as wanted", s.id(), describe(cur))
		if cur == nil && !rt.Answered {
			resp.Reason = fmt.Sprintf("server %s is in %s as wanted (HAProxy is not running: %s)", s.id(), s.Config, rt.Problem)
		}
		return
	}
	resp.Changed = true
	resp.Reason = s.id() + ": " + strings.Join(reasons, "; ")
	if !rt.Answered {
		resp.Reason += " (HAProxy is not running, so the config only)"
	}
	resp.Diff = diff.String()
	resp.Apply = s.applyScript(b)
	if reload {
		resp.Notify = []modules.Handler{s.reloadHandler()}
	}
}

// runtimeOps lists the runtime API commands that bring the server from
// cur (nil: not there) to the wanted state, and says why.
func (s *Server) runtimeOps(cur *ServerState) ([]op, string, error) {
	id := s.id()
	if s.State == "absent" {
		if cur == nil {
			return nil, "", nil
		}
		return []op{{cmd: "set server " + id + " state maint"}, {del: true, addr: cur.Addr, port: cur.Port}},
			fmt.Sprintf("delete server %s (%s): maint, wait for its connections to end (at most %s), del server", id, cur.Address(), s.DrainTimeout), nil
	}
	if cur == nil {
		if s.Address == nil {
			return nil, "", fmt.Errorf("server %s is not in HAProxy on %s, and address= is needed to add it", id, s.Socket)
		}
		add := "add server " + id + " " + s.addr.String()
		if s.Weight != nil {
			add += " weight " + strconv.Itoa(*s.Weight)
		}
		if s.HealthCheck {
			add += " check"
		}
		ops := []op{{cmd: add, expect: "New server registered."}}
		if s.HealthCheck {
			ops = append(ops, op{cmd: "enable health " + id})
		}
		if s.State != "maint" { // an added server starts in maintenance
			ops = append(ops, op{cmd: "set server " + id + " state " + s.State})
		}
		return ops, fmt.Sprintf("add server %s %s (%s)", id, s.addr, s.State), nil
	}
	var ops []op
	var what []string
	if s.Address != nil && cur.Address() != s.addr.String() {
		ops = append(ops, op{cmd: fmt.Sprintf("set server %s addr %s port %d", id, s.addr.Addr(), s.addr.Port())})
		what = append(what, "address "+cur.Address()+" -> "+s.addr.String())
	}
	if s.Weight != nil && cur.Weight != *s.Weight {
		ops = append(ops, op{cmd: fmt.Sprintf("set server %s weight %d", id, *s.Weight)})
		what = append(what, fmt.Sprintf("weight %d -> %d", cur.Weight, *s.Weight))
	}
	if cur.AdminState() != s.State {
		ops = append(ops, op{cmd: "set server " + id + " state " + s.State})
		what = append(what, cur.AdminState()+" -> "+s.State)
	}
	if len(ops) == 0 {
		return nil, "", nil
	}
	return ops, "set server " + id + " " + strings.Join(what, ", "), nil
}

// configWords is the server's wanted config line after its name, from its
// current words (kept where the module does not manage them); "" removes
// the line.
func (s *Server) configWords(curWords string, rt *ServerState) (string, error) {
	if s.State == "absent" {
		return "", nil
	}
	words := strings.Fields(curWords)
	addr := ""
	switch {
	case s.Address != nil:
		addr = s.addr.String()
	case len(words) > 0:
		addr = words[0]
	case rt != nil:
		addr = rt.Address()
	default:
		return "", fmt.Errorf("server %s is not in %s, and address= is needed to add it", s.id(), s.Config)
	}
	out := []string{addr}
	keepWeight := s.Weight == nil
	for i := 1; i < len(words); i++ {
		switch w := words[i]; {
		case w == "weight" && i+1 < len(words):
			if keepWeight {
				out = append(out, w, words[i+1])
			}
			i++
		case w == "disabled" || w == "enabled":
		case w == "check" && s.HealthCheck:
		default:
			out = append(out, w)
		}
	}
	if s.Weight != nil {
		out = append(out, "weight", strconv.Itoa(*s.Weight))
	}
	if s.HealthCheck {
		out = append(out, "check")
	}
	if s.State == "maint" {
		out = append(out, "disabled")
	}
	return strings.Join(out, " "), nil
}

func describe(cur *ServerState) string {
	if cur == nil {
		return "absent"
	}
	return fmt.Sprintf("%s weight %d (%s)", cur.Address(), cur.Weight, cur.AdminState())
}

func (s *Server) describeWanted(cur *ServerState) string {
	if s.State == "absent" {
		return "absent"
	}
	addr, weight := "", 1
	if cur != nil {
		addr, weight = cur.Address(), cur.Weight
	}
	if s.Address != nil {
		addr = s.addr.String()
	}
	if s.Weight != nil {
		weight = *s.Weight
	}
	return fmt.Sprintf("%s weight %d (%s)", addr, weight, s.State)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
