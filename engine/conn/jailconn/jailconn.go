// Package jailconn is the `jail` connection: it runs a host's scripts
// inside a FreeBSD jail with jexec(8), through the connection of the jail's
// parent host (the inventory vars jail_host and jail_name), so that a role
// can provision the inside of a jail without an sshd in it.
//
// Every script and every file write is one exec on the parent's
// connection, so one exchange: the jail connection counts it as the jail
// host's exchange, and the parent's connection counts the same exchange
// (the engine adds only the parent's to the run's total; see conn.Nested).
// Files are written from inside the jail (jexec … sh -c 'cat > tmp && mv
// tmp path'), never through the parent's path to the jail's root, so a
// symlink inside the jail resolves inside the jail and cannot make a write
// land on the parent.
//
// jexec needs root on the parent: the parent's login user must be root.
// The jail needs a /dev (mount.devfs), as on any host orch reaches: its
// scripts read and write /dev/null.
// Verified against the lab's stand-in FreeBSD host (lab/standin), whose
// jexec follows FreeBSD's arguments and messages, and against recorded
// FreeBSD jexec outputs (testdata/freebsd/jexec); not on a FreeBSD kernel.
package jailconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/internal/shell"
)

// Options say which jail a connection reaches.
type Options struct {
	Host   string // the jail host's inventory name, for errors
	Parent string // the parent host's inventory name, for errors
	Jail   string // the jail's name (or JID) on the parent
}

// Conn runs scripts in one jail through its parent's connection. It is
// safe for concurrent use as far as the parent's connection is.
type Conn struct {
	parent    conn.Conn
	opts      Options
	exchanges atomic.Int64
}

var (
	_ conn.Conn   = (*Conn)(nil)
	_ conn.Nested = (*Conn)(nil)
	_ conn.Aliver = (*Conn)(nil)
)

// New returns a connection to a jail through parent, which stays owned by
// its caller (Close does not close it). It does not check that the jail
// exists: the first script does (see Exec).
func New(parent conn.Conn, opts Options) (*Conn, error) {
	if opts.Jail == "" {
		return nil, fmt.Errorf("%s: the jail connection needs jail_name", opts.Host)
	}
	if strings.ContainsAny(opts.Jail, " \t\n/*") {
		return nil, fmt.Errorf("%s: jail_name %q is not a jail name", opts.Host, opts.Jail)
	}
	return &Conn{parent: parent, opts: opts}, nil
}

// ErrNoJail is what Exec and WriteFile return, wrapped, when the parent
// has no running jail of that name.
var ErrNoJail = errors.New("no such jail is running")

// missingExit and missingMsg mark a script that never started because the
// jail is not running; jexec's own exit status for that is 1, which a
// script may return too.
const (
	missingExit = 197
	missingMsg  = "orch-jailconn: no such jail"
)

// guard is the start of every parent script: jls -j exits non-zero when
// no jail has that name or JID.
func (c *Conn) guard() string {
	return fmt.Sprintf("if ! jls -j %s jid >/dev/null 2>&1; then echo %s >&2; exit %d; fi\n",
		shell.Quote(c.opts.Jail), shell.Quote(missingMsg), missingExit)
}

func (c *Conn) jexec() string { return "jexec " + shell.Quote(c.opts.Jail) + " /bin/sh" }

// maxArgScript bounds a script passed as one argument (with stdin, the
// script cannot travel on standard input); Linux limits one argument to
// 128 KiB and FreeBSD all of them to 256 KiB.
const maxArgScript = 100 << 10

// Exec runs script with /bin/sh inside the jail, as conn.Conn says: without
// stdin, the script travels on the parent session's standard input (in the
// parent's GroupScript group, whose watchdog ends the jail's processes too:
// jexec keeps them in the script's process group) and reads /dev/null
// inside the jail; with stdin, it is jexec's sh -c argument and stdin is
// its standard input.
func (c *Conn) Exec(ctx context.Context, script string, stdin io.Reader) (conn.Result, error) {
	c.exchanges.Add(1)
	var outer string
	if stdin == nil {
		delim := heredocDelim(script)
		// The group makes the inner sh parse the whole script before it
		// runs any of it, as GroupScript does for the parent.
		outer = c.guard() + c.jexec() + " -s <<'" + delim + "'\n{\n" + script + "\n} </dev/null\nexit $?\n" + delim + "\n"
	} else {
		if len(script) > maxArgScript {
			return conn.Result{}, fmt.Errorf("%s: a script of %d bytes with its own standard input is too large for the jail connection (at most %d)", c.name(), len(script), maxArgScript)
		}
		outer = c.guard() + c.jexec() + " -c " + shell.Quote(script)
	}
	res, err := c.parent.Exec(ctx, outer, stdin)
	if err != nil {
		return res, fmt.Errorf("%s: %w", c.name(), err)
	}
	if err := c.missing(res); err != nil {
		return res, err
	}
	return res, nil
}

// missing turns the guard's failure into ErrNoJail, naming the jail and
// its host.
func (c *Conn) missing(res conn.Result) error {
	if res.ExitCode == missingExit && strings.TrimSpace(string(res.Stderr)) == missingMsg {
		return &conn.UnreachableError{Host: c.opts.Host, Address: c.address(),
			Err: fmt.Errorf("jail %q on host %s: %w (jls -j %s found none)", c.opts.Jail, c.opts.Parent, ErrNoJail, c.opts.Jail)}
	}
	return nil
}

func (c *Conn) name() string {
	return c.opts.Host + " (jail " + c.opts.Jail + " on " + c.opts.Parent + ")"
}

func (c *Conn) address() string { return "jail " + c.opts.Jail + " on " + c.opts.Parent }

// writeScript runs inside the jail with the path as $1 and the mode as
// $2: a temporary file beside the target, filled from standard input,
// chmod-ed, then renamed over it. A symlink at the target is replaced, not
// followed (rename would move the file into a directory it points to).
const writeScript = `umask 077
d=$(dirname -- "$1") && b=$(basename -- "$1") || exit 1
t="$d/.$b.orch-$$"
trap 'rm -f "$t"' EXIT
trap 'rm -f "$t"; exit 1' HUP INT TERM PIPE
set -C
cat > "$t" || exit 1
set +C
chmod "$2" "$t" || exit 1
if [ -L "$1" ]; then rm -f "$1" || exit 1; fi
if [ -d "$1" ]; then echo "$1 is a directory" >&2; exit 1; fi
mv -f "$t" "$1" || exit 1
trap - EXIT HUP INT TERM PIPE`

// WriteFile atomically replaces path inside the jail with data, set to
// mode: one exec on the parent, the content on jexec's standard input.
func (c *Conn) WriteFile(ctx context.Context, path string, data []byte, mode uint32) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("%s: write %s: not an absolute path", c.name(), path)
	}
	c.exchanges.Add(1)
	outer := c.guard() + c.jexec() + " -c " + shell.Quote(writeScript) + " sh " + shell.Quote(path) + fmt.Sprintf(" %04o", mode&0o7777)
	res, err := c.parent.Exec(ctx, outer, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: write %s: %w", c.name(), path, err)
	}
	if err := c.missing(res); err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%s: write %s: exit %d: %s", c.name(), path, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// Exchanges counts this jail's execs and writes, each also one exchange
// of the parent's connection.
func (c *Conn) Exchanges() int64 { return c.exchanges.Load() }

// Nested reports that the parent's connection counts these exchanges.
func (c *Conn) Nested() bool { return true }

// Alive is the parent connection's: a jail is lost with its host.
func (c *Conn) Alive() bool {
	if a, ok := c.parent.(conn.Aliver); ok {
		return a.Alive()
	}
	return true
}

// Close releases nothing: the parent's connection belongs to its own host.
func (c *Conn) Close() error { return nil }

// heredocDelim is a here-document delimiter no line of script is.
func heredocDelim(script string) string {
	for {
		var b [8]byte
		rand.Read(b[:])
		d := "ORCH_JAIL_" + hex.EncodeToString(b[:])
		if !strings.Contains(script, d) {
			return d
		}
	}
}
