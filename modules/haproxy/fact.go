package haproxy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/orch-dev/orch/modules"
)

// FactName is the registered name of the shared haproxy fact. Its keys are
//
//	rt:SOCKET                  what HAProxy answers on an admin socket: every backend and server
//	rt:SOCKET#BACKEND/SERVER   the same, read by one task about one server
//	cfg:CONFIG#BACKEND/SERVER  that server's line in a config file
//	cfg:CONFIG                 every backend's server lines, for plans
//
// Every key of one socket is read with one `show backend;show servers
// state` on it, and every key of one config file with one awk over it,
// whatever the number of tasks. The keys are also the tasks' effects, so
// tasks about different servers never make each other stale.
const FactName = "haproxy"

func init() { modules.RegisterFact(FactName, fact{}) }

// RuntimeKey is the fact key of a server as the runtime API shows it, or
// of the whole socket when backend is "".
func RuntimeKey(socket, backend, server string) modules.FactKey {
	k := "rt:" + socket
	if backend != "" {
		k += "#" + backend + "/" + server
	}
	return modules.FactKey{Fact: FactName, Key: k}
}

// ConfigKey is the fact key of a server's line in a config file.
func ConfigKey(config, backend, server string) modules.FactKey {
	return modules.FactKey{Fact: FactName, Key: "cfg:" + config + "#" + backend + "/" + server}
}

// key is a parsed fact key.
type key struct {
	kind            string // rt | cfg
	file            string // the socket or config path
	backend, server string // "" for a whole socket
}

func parseKey(k string) (key, error) {
	kind, rest, ok := strings.Cut(k, ":")
	if !ok || (kind != "rt" && kind != "cfg") {
		return key{}, fmt.Errorf("haproxy fact: bad key %q (want rt:SOCKET[#BACKEND/SERVER] or cfg:CONFIG#BACKEND/SERVER)", k)
	}
	file, srv, hasSrv := strings.Cut(rest, "#")
	out := key{kind: kind, file: file}
	if hasSrv {
		out.backend, out.server, ok = strings.Cut(srv, "/")
		if !ok {
			return key{}, fmt.Errorf("haproxy fact: bad key %q", k)
		}
	}
	if !validPath(file) {
		return key{}, fmt.Errorf("haproxy fact: %q is not an absolute path without spaces, commas or colons", file)
	}
	return out, nil
}

// socatCmd is the sh that sends one line of commands to an admin socket
// and prints HAProxy's answer. -t bounds the wait for the answer after
// the command is sent; HAProxy closes the connection once it has answered.
func socatCmd(socket, commands string) string {
	return fmt.Sprintf("printf '%%s\\n' %s | socat -t 10 - UNIX-CONNECT:%s", modules.Quote(commands), modules.Quote(socket))
}

// Helpers shared by the fact's script, the rechecks and the applies.
//
// _orch_hapsrv SOCKET BACKEND SERVER prints "ADDR PORT ADMIN UWEIGHT" of
// one server, or nothing when HAProxy has no such server.
//
// _orch_hapcfg CONFIG prints "#backend NAME BALANCE HASHTYPE" for every
// backend and listen section of a config file (with the balance algorithm
// and hash type of the defaults before it), "#balance NAME ALGO" and
// "#hash-type NAME TYPE" for its own, and "BACKEND SERVER WORDS…" for
// each server line in them, the words separated by single spaces
// (comments dropped). With BACKEND and SERVER it prints only that
// server's words.
const helpers = `_orch_hapsrv() {
  printf 'show servers state %s\n' "$2" | socat -t 10 - "UNIX-CONNECT:$1" 2>/dev/null |
    awk -v s="$3" '$1 !~ /^#/ && $4 == s { print $5, $19, $7, $8 }'
}
_orch_hapcfg() {
  awk -v wb="$2" -v ws="$3" '
    BEGIN { db = "roundrobin"; dh = "map-based" }
    { sub(/(^|[ \t])#.*/, "") }
    $1 ~ /^(global|defaults|frontend|backend|listen|peers|resolvers|userlist|mailers|program|http-errors|ring|cache|log-forward|fcgi-app|crt-store|traces)$/ {
      sec = $1; be = ($1 == "backend" || $1 == "listen") ? $2 : ""
      if (sec == "defaults") { db = "roundrobin"; dh = "map-based" }
      if (be != "" && wb == "") print "#backend " be, db, dh
      next
    }
    sec == "defaults" && $1 == "balance" { db = $2 }
    sec == "defaults" && $1 == "hash-type" { dh = $2 }
    be != "" && wb == "" && ($1 == "balance" || $1 == "hash-type") { print "#" $1, be, $2 }
    be != "" && $1 == "server" && (wb == "" || (be == wb && $2 == ws)) {
      $1 = $1; name = $2; w = $0; sub(/^server [^ ]+ ?/, "", w)
      if (wb == "") print be, name, w; else print w
    }' "$1"
}
`

type fact struct{}

var _ modules.FactRechecker = fact{}

// Script reads each socket and config file the keys name, once. The
// output has one section per file: "#rt PATH" followed by HAProxy's
// answer and "#rc N" (or "#absent", "#nosocat"), and "#cfg PATH" followed
// by _orch_hapcfg's lines (or "#absent").
func (fact) Script(keys []string) string {
	sockets, configs := map[string]bool{}, map[string]bool{}
	for _, k := range keys {
		pk, err := parseKey(k)
		if err != nil {
			continue // Parse reports it
		}
		if pk.kind == "rt" {
			sockets[pk.file] = true
		} else {
			configs[pk.file] = true
		}
	}
	var b strings.Builder
	b.WriteString(helpers)
	for _, s := range sortedSet(sockets) {
		q := modules.Quote(s)
		fmt.Fprintf(&b, "echo '#rt '%s\n", q)
		fmt.Fprintf(&b, "if ! command -v socat >/dev/null 2>&1; then echo '#nosocat'\nelif [ ! -S %s ]; then echo '#absent'\nelse %s 2>&1; echo \"#rc $?\"; fi\n",
			q, socatCmd(s, "show backend;show servers state"))
	}
	for _, c := range sortedSet(configs) {
		q := modules.Quote(c)
		fmt.Fprintf(&b, "echo '#cfg '%s\nif [ -f %s ]; then _orch_hapcfg %s 2>&1; else echo '#absent'; fi\n", q, q, q)
	}
	return b.String()
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Runtime is what one admin socket showed. It converts to a plan value
// (h.fact("haproxy", "rt:SOCKET")) with Value.
type Runtime struct {
	Socket   string
	Answered bool   // HAProxy answered on the socket
	Problem  string // why it did not: no socket, no socat, an error
	Backends map[string]map[string]ServerState
}

// ServerState is one server of the runtime state.
type ServerState struct {
	Addr   string
	Port   int
	Admin  int // srv_admin_state, a mask
	Op     int // srv_op_state: 0 down, 1 starting, 2 up, 3 stopping
	Weight int // srv_uweight
}

// AdminState names the administrative state as set server … state does.
func (s ServerState) AdminState() string {
	switch {
	case s.Admin&(0x01|0x02|0x04|0x20) != 0:
		return "maint"
	case s.Admin&(0x08|0x10) != 0:
		return "drain"
	}
	return "ready"
}

// Address is ADDR:PORT, with brackets for IPv6.
func (s ServerState) Address() string {
	if strings.Contains(s.Addr, ":") {
		return "[" + s.Addr + "]:" + strconv.Itoa(s.Port)
	}
	return s.Addr + ":" + strconv.Itoa(s.Port)
}

// recheckLine is what _orch_hapsrv prints for the server.
func (s ServerState) recheckLine() string {
	return fmt.Sprintf("%s %d %d %d", s.Addr, s.Port, s.Admin, s.Weight)
}

// Value is the runtime state as a plan sees it:
// {"socket", "running", "problem", "backends": {BACKEND: {SERVER: {"address", "state", "weight", "up"}}}}.
func (r *Runtime) Value() map[string]any {
	bes := map[string]any{}
	for be, servers := range r.Backends {
		m := map[string]any{}
		for name, s := range servers {
			m[name] = map[string]any{"address": s.Address(), "state": s.AdminState(), "weight": s.Weight, "up": s.Op == 2 || s.Op == 1}
		}
		bes[be] = m
	}
	return map[string]any{"socket": r.Socket, "running": r.Answered, "problem": r.Problem, "backends": bes}
}

// ConfigLine is a server's line in a config file: whether the file and
// the backend exist, and the server's words after its name ("ADDR weight
// 2 check"), "" when it has no line.
type ConfigLine struct {
	Config        string
	Exists        bool // the file exists
	BackendExists bool
	Words         string
	// Dynamic tells whether the backend's balance algorithm takes servers
	// added at runtime (roundrobin, leastconn, first, random, consistent
	// hashing); static-rr and map-based hashing do not.
	Dynamic bool
}

// backendConf is what a config file says of one backend.
type backendConf struct {
	servers         map[string]string // server -> words
	balance, hashTy string
}

func (b *backendConf) dynamic() bool {
	algo := b.balance
	switch {
	case algo == "static-rr":
		return false
	case algo == "source" || algo == "uri" || algo == "url_param" || algo == "hash" ||
		strings.HasPrefix(algo, "hdr") || strings.HasPrefix(algo, "rdp-cookie"):
		return b.hashTy == "consistent"
	}
	return true
}

// fileFact is what the script printed for one file.
type fileFact struct {
	runtime *Runtime
	config  map[string]*backendConf // nil for an absent file
}

// Parse reads the script's output into a *Runtime for each rt key and a
// ConfigLine for each cfg key.
func (fact) Parse(out []byte, keys []string) (map[string]any, error) {
	files := map[string]*fileFact{}
	var cur *fileFact
	var answer []string
	finish := func() error {
		if cur != nil && cur.runtime != nil && answer != nil {
			return fmt.Errorf("haproxy fact: the answer of %s was cut short", cur.runtime.Socket)
		}
		return nil
	}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "#rt "):
			if err := finish(); err != nil {
				return nil, err
			}
			sock := strings.TrimPrefix(line, "#rt ")
			cur = &fileFact{runtime: &Runtime{Socket: sock, Backends: map[string]map[string]ServerState{}}}
			files["rt:"+sock] = cur
			answer = []string{}
		case strings.HasPrefix(line, "#cfg "):
			if err := finish(); err != nil {
				return nil, err
			}
			cur = &fileFact{config: map[string]*backendConf{}}
			files["cfg:"+strings.TrimPrefix(line, "#cfg ")] = cur
			answer = nil
		case cur == nil:
		case cur.runtime != nil && answer != nil:
			switch {
			case line == "#absent":
				cur.runtime.Problem = "no socket at " + cur.runtime.Socket + " (is HAProxy running, with `stats socket " + cur.runtime.Socket + " level admin`?)"
				answer = nil
			case line == "#nosocat":
				cur.runtime.Problem = "socat is not installed on the host (the admin socket is spoken to through it)"
				answer = nil
			case strings.HasPrefix(line, "#rc "):
				if err := cur.runtime.read(answer, strings.TrimPrefix(line, "#rc ")); err != nil {
					return nil, err
				}
				answer = nil
			default:
				answer = append(answer, line)
			}
		case cur.config != nil:
			switch {
			case line == "#absent":
				cur.config = nil
			case strings.HasPrefix(line, "#backend "):
				f := strings.Fields(line)
				if len(f) != 4 {
					return nil, fmt.Errorf("haproxy fact: unexpected config line %q", line)
				}
				if cur.config[f[1]] == nil {
					cur.config[f[1]] = &backendConf{servers: map[string]string{}, balance: f[2], hashTy: f[3]}
				}
			case strings.HasPrefix(line, "#balance ") || strings.HasPrefix(line, "#hash-type "):
				f := strings.Fields(line)
				if len(f) < 3 || cur.config[f[1]] == nil {
					return nil, fmt.Errorf("haproxy fact: unexpected config line %q", line)
				}
				if f[0] == "#balance" {
					cur.config[f[1]].balance = f[2]
				} else {
					cur.config[f[1]].hashTy = f[2]
				}
			case strings.TrimSpace(line) != "":
				f := strings.SplitN(line, " ", 3)
				if len(f) < 2 || cur.config[f[0]] == nil {
					return nil, fmt.Errorf("haproxy fact: unexpected config line %q", line)
				}
				words := ""
				if len(f) == 3 {
					words = f[2]
				}
				if _, dup := cur.config[f[0]].servers[f[1]]; !dup { // HAProxy refuses duplicates; keep the first
					cur.config[f[0]].servers[f[1]] = words
				}
			}
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	res := make(map[string]any, len(keys))
	for _, k := range keys {
		pk, err := parseKey(k)
		if err != nil {
			return nil, err
		}
		ff := files[pk.kind+":"+pk.file]
		if ff == nil {
			return nil, fmt.Errorf("haproxy fact: nothing was read for %s", k)
		}
		if pk.kind == "rt" {
			if pk.backend == "" {
				res[k] = ff.runtime.Value() // a plan's h.fact("haproxy", "rt:SOCKET")
			} else {
				res[k] = ff.runtime
			}
			continue
		}
		if pk.backend == "" {
			bes := map[string]any{}
			for be, bc := range ff.config {
				servers := map[string]any{}
				for name, words := range bc.servers {
					servers[name] = words
				}
				bes[be] = servers
			}
			res[k] = map[string]any{"exists": ff.config != nil, "backends": bes}
			continue
		}
		cl := ConfigLine{Config: pk.file, Exists: ff.config != nil}
		if bc, ok := ff.config[pk.backend]; ok {
			cl.BackendExists, cl.Dynamic = true, bc.dynamic()
			cl.Words = bc.servers[pk.server]
		}
		res[k] = cl
	}
	return res, nil
}

// read parses HAProxy's answer to "show backend;show servers state": the
// backend names, then the state, format 1.
func (r *Runtime) read(lines []string, rc string) error {
	text := strings.TrimSpace(strings.Join(lines, "\n"))
	if rc != "0" || !strings.HasPrefix(text, "# name") {
		r.Problem = fmt.Sprintf("HAProxy did not answer on %s as expected (socat exit %s): %s", r.Socket, rc, firstLine(text))
		return nil
	}
	r.Answered = true
	i := 1
	for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
		r.Backends[strings.TrimSpace(lines[i])] = map[string]ServerState{}
	}
	for ; i < len(lines) && strings.TrimSpace(lines[i]) == ""; i++ {
	}
	if i < len(lines) && strings.TrimSpace(lines[i]) != "1" {
		return fmt.Errorf("haproxy fact: show servers state on %s: format %q, want 1", r.Socket, lines[i])
	}
	for i++; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 19 {
			return fmt.Errorf("haproxy fact: show servers state on %s: short line %q", r.Socket, l)
		}
		var s ServerState
		var err error
		nums := []*int{&s.Op, &s.Admin, &s.Weight, &s.Port}
		for j, col := range []int{5, 6, 7, 18} {
			if *nums[j], err = strconv.Atoi(f[col]); err != nil {
				return fmt.Errorf("haproxy fact: show servers state on %s: %q in %q", r.Socket, f[col], l)
			}
		}
		s.Addr = f[4]
		if r.Backends[f[1]] == nil {
			r.Backends[f[1]] = map[string]ServerState{}
		}
		r.Backends[f[1]][f[3]] = s
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	if l == "" {
		return "(nothing)"
	}
	return l
}

// Recheck is a sh condition that holds while the key still reads as
// gathered: the server's runtime line, or its config line.
func (fact) Recheck(k string, value any) string {
	pk, err := parseKey(k)
	if err != nil {
		return "false"
	}
	switch v := value.(type) {
	case *Runtime:
		if pk.backend == "" || !v.Answered {
			return "false"
		}
		want := ""
		if s, ok := v.Backends[pk.backend][pk.server]; ok {
			want = s.recheckLine()
		}
		return fmt.Sprintf("{ %s[ \"$(_orch_hapsrv %s %s %s)\" = %s ]; }", helpers, modules.Quote(pk.file), modules.Quote(pk.backend), modules.Quote(pk.server), modules.Quote(want))
	case ConfigLine:
		if !v.Exists {
			return fmt.Sprintf("[ ! -e %s ]", modules.Quote(pk.file))
		}
		return fmt.Sprintf("{ %s[ -f %s ] && [ \"$(_orch_hapcfg %s %s %s)\" = %s ]; }", helpers, modules.Quote(pk.file), modules.Quote(pk.file),
			modules.Quote(pk.backend), modules.Quote(pk.server), modules.Quote(v.Words))
	}
	return "false"
}
