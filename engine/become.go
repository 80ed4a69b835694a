package engine

import (
	"fmt"
	"strings"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/internal/shell"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// identity is whom a task's scripts run as: the login user (user "") or,
// with become, user through method (sudo or doas).
type identity struct {
	user   string
	method string
}

// resolveBecome decides a task's identity: the task's become= wins over
// ctx.apply's, which wins over the host's become vars.
func resolveBecome(h *inventory.Host, apply, task *plan.Become) identity {
	on, user := h.Become, h.BecomeUser
	for _, b := range []*plan.Become{apply, task} {
		if b == nil {
			continue
		}
		on = b.Enabled
		if b.User != "" {
			user = b.User
		}
	}
	if !on {
		return identity{}
	}
	if user == "" {
		user = "root"
	}
	method := h.BecomeMethod
	if method == "" {
		method = "sudo"
	}
	return identity{user: user, method: method}
}

// becomeScript wraps a script so that it runs as id. The wrapped script
// runs the original under sudo (or doas), fed to the privileged shell
// from a here-document, so it needs no file on the host.
//
// A sudo password travels only inside the script, which itself travels on
// the session's standard input: the printf builtin writes it, then a
// marker line of random text, into the pipe that is sudo's standard input.
// sudo -S reads the password from its first line (byte by byte, so it
// takes only that line), and the shell under sudo discards that line if
// sudo did not ask for it (NOPASSWD, or credentials still cached), up to
// the marker, before it reads the script. So the password is never on a
// command line, in an environment or on disk, and never run as a command.
//
// The privileged shell cannot see the session's standard input (sudo
// closes the other descriptors), so its watchdog watches the login shell
// instead: when that is gone (the session was cancelled and its own
// watchdog ended it), the watchdog ends the privileged process group,
// which the login user is not allowed to.
func becomeScript(id identity, script, password, marker string) (string, error) {
	eof := "ORCH_BECOME_" + marker
	inner := "{\n" + privilegedWatchdog + script + "\nexit $?\n}\n"
	doc := fmt.Sprintf("<<'%s'\n%s%s\n", eof, inner, eof)
	user := shell.Quote(id.user)
	switch id.method {
	case "sudo":
		if password == "" {
			return fmt.Sprintf("sudo -n -u %s -- /bin/sh -s \"$$\" \"$PPID\" %s", user, doc), nil
		}
		skip := fmt.Sprintf(`IFS= read -r _orch_l; [ "$_orch_l" = %s ] || IFS= read -r _orch_l; unset _orch_l; exec /bin/sh -s "$1" "$2"`, marker)
		return fmt.Sprintf("{ printf '%%s\\n%%s\\n' %s %s; cat %s} | sudo -S -p '' -u %s -- /bin/sh -c %s sh \"$$\" \"$PPID\"\n",
			shell.Quote(password), marker, doc, user, shell.Quote(skip)), nil
	case "doas":
		if password != "" {
			return "", fmt.Errorf("doas reads passwords only from a terminal; give the user `permit nopass` (or `persist`) in doas.conf instead of a password")
		}
		return fmt.Sprintf("doas -n -u %s /bin/sh -s \"$$\" \"$PPID\" %s", user, doc), nil
	}
	return "", fmt.Errorf("unknown become method %q (want sudo or doas)", id.method)
}

// privilegedWatchdog ends the privileged script's process group once the
// login shell ($1) is gone while the script still runs. sudo without a
// terminal keeps the command in the login shell's group, which that shell
// leads; a group led by neither shell is not the script's, and is left
// alone.
const privilegedWatchdog = `( trap '' TERM
  while kill -0 "$1" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 1; done
  _orch_pg=
  { read -r _ _ _ _ _orch_pg _ < /proc/self/stat; } 2>/dev/null || _orch_pg=$(ps -o pgid= -p "$(sh -c 'echo $PPID')" 2>/dev/null)
  _orch_pg=$(echo $_orch_pg)
  [ "$_orch_pg" = $$ ] || [ "$_orch_pg" = "$1" ] || exit 0
  kill -TERM "-$_orch_pg" 2>/dev/null; sleep 2; kill -KILL "-$_orch_pg" 2>/dev/null
) </dev/null >/dev/null 2>&1 &
_orch_pwd=$!
trap 'kill -KILL $_orch_pwd 2>/dev/null' EXIT
`

// becomeError explains a script that never started because become failed,
// from what sudo or doas printed.
func becomeError(id identity, res conn.Result) error {
	stderr := strings.TrimSpace(string(res.Stderr))
	switch {
	case strings.Contains(stderr, "a password is required"), strings.Contains(stderr, "a terminal is required"):
		return fmt.Errorf("become %s with %s: a password is required; pass --ask-become-pass or set ORCH_BECOME_PASS", id.user, id.method)
	case strings.Contains(stderr, "incorrect password"), strings.Contains(stderr, "Sorry, try again"):
		return fmt.Errorf("become %s with %s: the password was refused", id.user, id.method)
	case strings.Contains(stderr, "not in the sudoers"), strings.Contains(stderr, "is not allowed to"), strings.Contains(stderr, "not permitted"):
		return fmt.Errorf("become %s with %s: not allowed: %s", id.user, id.method, lastLine(stderr))
	case strings.Contains(stderr, "not found"):
		return fmt.Errorf("become %s: %s is not installed on the host: %s", id.user, id.method, lastLine(stderr))
	}
	return fmt.Errorf("become %s with %s failed (exit %d): %s", id.user, id.method, res.ExitCode, lastLine(stderr))
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
