package haproxy

import (
	"fmt"
	"math"
	"path"
	"sort"
	"strings"

	"github.com/orch-dev/orch/modules"
)

func sortStrings(s []string) { sort.Strings(s) }

// op is one runtime API command of an apply.
type op struct {
	cmd    string // the command line
	expect string // HAProxy's answer on success ("" for set and enable)
	del    bool   // del server, retried until the server's connections are gone
	addr   string // the server's address and port, for del
	port   int
}

// applyBuilder is what an apply does: runtime commands, then the config.
type applyBuilder struct {
	runtime []op
	config  bool   // rewrite the server's config line
	line    string // the new line; "" removes it
}

// applyHelpers are the sh functions of an apply.
//
// _orch_hapcmd SOCKET COMMAND [EXPECTED] sends one command and fails,
// printing HAProxy's answer, unless the answer is EXPECTED (nothing for
// set and enable commands); the answer is left in $_orch_r.
//
// _orch_hapdel SOCKET BACKEND/SERVER TRIES retries del server every 0.2 s
// until HAProxy deletes the server (it refuses while connections remain);
// after TRIES tries it shuts the server's sessions down, and fails 25
// tries later with HAProxy's last answer.
//
// _orch_hapedit CONFIG BACKEND SERVER LINE prints the config with the
// server's line in that section replaced by LINE, added at the section's
// end, or removed when LINE is empty.
const applyHelpers = `_orch_hapcmd() {
  _orch_r=$(printf '%s\n' "$2" | socat -t 10 - "UNIX-CONNECT:$1" 2>&1) || { printf 'socat %s: %s\n' "$1" "$_orch_r"; return 1; }
  if [ "$_orch_r" != "${3:-}" ]; then printf 'haproxy: %s: %s\n' "$2" "$_orch_r"; return 1; fi
}
_orch_hapdel() {
  _orch_n=0
  while :; do
    _orch_r=$(printf 'del server %s\n' "$2" | socat -t 10 - "UNIX-CONNECT:$1" 2>&1) || true
    case $_orch_r in
      *"Server deleted."*|"No such server.") return 0 ;;
      *"still has connections"*)
        # HAProxy 2.6 also refuses while idle keep-alive connections
        # remain, and closes them only when the address changes: move the
        # port and back, which drops the idle ones and no request.
        _orch_hapcmd "$1" "set server $2 addr $4 port $(($5 % 65535 + 1))" >/dev/null 2>&1 || true
        _orch_hapcmd "$1" "set server $2 addr $4 port $5" >/dev/null 2>&1 || true ;;
    esac
    _orch_n=$((_orch_n + 1))
    if [ "$_orch_n" -eq "$3" ]; then
      printf 'connections still on %s after the drain timeout: shutting its sessions down\n' "$2"
      printf 'shutdown sessions server %s\n' "$2" | socat -t 10 - "UNIX-CONNECT:$1" >/dev/null 2>&1 || true
    elif [ "$_orch_n" -gt $(($3 + 25)) ]; then
      printf 'haproxy: del server %s: %s\n' "$2" "$_orch_r"; return 1
    fi
    sleep 0.2
  done
}
_orch_hapedit() {
  awk -v wb="$2" -v ws="$3" -v nl="$4" '
    function endsec() {
      if (inb && !done && nl != "") { print "    " nl; done = 1 }
      printf "%s", held; held = ""; inb = 0
    }
    { raw = $0; line = $0; sub(/(^|[ \t])#.*/, "", line); n = split(line, f, " ") }
    n > 0 && f[1] ~ /^(global|defaults|frontend|backend|listen|peers|resolvers|userlist|mailers|program|http-errors|ring|cache|log-forward|fcgi-app|crt-store|traces)$/ {
      endsec(); if ((f[1] == "backend" || f[1] == "listen") && f[2] == wb) inb = 1
      print raw; next
    }
    inb && n == 0 { held = held raw "\n"; next }
    inb && f[1] == "server" && f[2] == ws {
      printf "%s", held; held = ""
      if (!done && nl != "") print "    " nl
      done = 1; next
    }
    inb { printf "%s", held; held = ""; print raw; next }
    { print raw }
    END { endsec() }' "$1"
}
`

// applyScript renders an apply: the new config is written beside the old
// and checked with haproxy -c first, so a bad one stops the task before
// the runtime is touched; then the runtime commands; then the rename.
func (s *Server) applyScript(b applyBuilder) string {
	q := modules.Quote
	var w strings.Builder
	w.WriteString(applyHelpers)
	if b.config {
		c := q(s.Config)
		fmt.Fprintf(&w, "t=%s.\"$ORCH_M\"\n", q(path.Join(path.Dir(s.Config), ".orch."+path.Base(s.Config))))
		w.WriteString("trap 'rm -f \"$t\"' EXIT\ntrap 'rm -f \"$t\"; exit 1' HUP INT TERM\n")
		// cp -p keeps the file's mode and owner; the edit then rewrites it in place.
		fmt.Fprintf(&w, "cp -p %s \"$t\"\n_orch_hapedit %s %s %s %s > \"$t\"\n", c, c, q(s.Backend), q(s.Name), q(b.line))
		// Its message names the live path, and leaves out the notices.
		fmt.Fprintf(&w, "if ! _orch_v=$(haproxy -c -f \"$t\" 2>&1 </dev/null); then printf 'haproxy -c rejected the new %%s:\\n' %s\n"+
			"  printf '%%s\\n' \"$_orch_v\" | grep -v '^\\[NOTICE\\]' | sed \"s|$t|\"%s\"|g\"; exit 1; fi\n", c, c)
	}
	sock := q(s.Socket)
	runtime := b.runtime
	for _, o := range runtime {
		if o.del {
			tries := int(math.Ceil(s.DrainTimeout.Seconds() / 0.2))
			fmt.Fprintf(&w, "_orch_hapdel %s %s %d %s %d\n", sock, q(s.id()), max(tries, 1), q(o.addr), o.port)
			continue
		}
		fmt.Fprintf(&w, "_orch_hapcmd %s %s %s\n", sock, q(o.cmd), q(o.expect))
	}
	if b.config {
		fmt.Fprintf(&w, "mv -f \"$t\" %s\ntrap - EXIT HUP INT TERM\n", q(s.Config))
	}
	return w.String()
}

// reloadHandler reloads HAProxy through its master CLI: haproxy -c on
// the config first, then the master's reload, then a bounded wait until a
// new worker answers on the admin socket.
func (s *Server) reloadHandler() modules.Handler {
	q := modules.Quote
	master, sock, cfg := q(s.Master), q(s.Socket), q(s.Config)
	script := fmt.Sprintf(`if ! _orch_v=$(haproxy -c -f %[3]s 2>&1 </dev/null); then printf 'haproxy -c rejected %%s:\n%%s\n' %[3]s "$_orch_v"; exit 1; fi
if [ ! -S %[1]s ]; then printf 'no master CLI at %%s: reload HAProxy by hand (run it as haproxy -W -S %%s for seamless reloads)\n' %[1]s %[1]s; exit 1; fi
_orch_pid() { printf 'show info\n' | socat -t 10 - UNIX-CONNECT:%[2]s 2>/dev/null | awk '$1 == "Pid:" { print $2 }'; }
_orch_old=$(_orch_pid)
printf 'reload\n' | socat -t 10 - UNIX-CONNECT:%[1]s >/dev/null 2>&1 || true
_orch_n=0
while [ "$(_orch_pid)" = "$_orch_old" ] || [ -z "$(_orch_pid)" ]; do
  _orch_n=$((_orch_n + 1))
  if [ "$_orch_n" -gt 100 ]; then printf 'HAProxy did not start a new worker within 20 s of the reload:\n'; printf 'show proc\n' | socat -t 10 - UNIX-CONNECT:%[1]s; exit 1; fi
  sleep 0.2
done
echo "reloaded HAProxy: worker $_orch_old -> $(_orch_pid)"
`, master, sock, cfg)
	return modules.Handler{ID: "haproxy:" + s.Master, Level: 1, Action: "reload haproxy (" + s.Master + ")", Script: script}
}
