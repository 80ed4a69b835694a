package conn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// maxArgScript bounds scripts passed as one argument to sh -c. Linux limits a
// single argument to 128 KiB (MAX_ARG_STRLEN); larger scripts go through a
// temporary file.
const maxArgScript = 100 << 10

// Local runs scripts and writes files on the controller itself. The zero
// value is ready to use.
//
// Each Exec and each WriteFile counts as one exchange.
type Local struct {
	Name string // host name used in errors; "localhost" when empty

	exchanges atomic.Int64
}

var _ Conn = (*Local)(nil)

func (l *Local) name() string {
	if l.Name == "" {
		return "localhost"
	}
	return l.Name
}

// Exec runs script with /bin/sh. Without stdin the script is fed to sh on its
// standard input wrapped in a { } group, so sh parses all of it before
// running any of it and size is unlimited. With stdin the script is passed as
// an argument (or, when large, as a temporary file) so stdin belongs to the
// script. Cancelling ctx kills the script and everything it started.
func (l *Local) Exec(ctx context.Context, script string, stdin io.Reader) (Result, error) {
	l.exchanges.Add(1)
	var cmd *exec.Cmd
	hold := stdin == nil
	switch {
	case hold:
		cmd = exec.CommandContext(ctx, "/bin/sh")
		stdin = strings.NewReader(GroupScript(script))
	case len(script) <= maxArgScript:
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", script)
	default:
		f, err := os.CreateTemp("", "orch-script-*.sh")
		if err != nil {
			return Result{}, fmt.Errorf("%s: exec: %w", l.name(), err)
		}
		defer os.Remove(f.Name())
		_, err = f.WriteString(script)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return Result{}, fmt.Errorf("%s: exec: %w", l.name(), err)
		}
		cmd = exec.CommandContext(ctx, "/bin/sh", f.Name())
	}
	// Kill the whole process group on cancel, not just sh, and do not wait
	// forever on background children that keep the output pipes open.
	setProcessGroup(cmd)
	cmd.WaitDelay = 2 * time.Second
	// A script sent on standard input keeps it open until it exits (see Conn).
	in, feed, err := os.Pipe()
	if err != nil {
		return Result{}, fmt.Errorf("%s: exec: %w", l.name(), err)
	}
	defer feed.Close()
	cmd.Stdin = in
	go func() {
		io.Copy(feed, stdin)
		if !hold {
			feed.Close()
		}
	}()

	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Start()
	in.Close()
	if err == nil {
		err = cmd.Wait()
	}
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s: exec: %w", l.name(), ctx.Err())
	}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode() // -1 when killed by a signal
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		return res, fmt.Errorf("%s: exec: %w", l.name(), err)
	}
	return res, nil
}

// WriteFile atomically replaces path: it writes a temporary file in the same
// directory, sets mode, syncs it, renames it over path and syncs the
// directory, so readers see the old or the new content and never a mix.
func (l *Local) WriteFile(ctx context.Context, path string, data []byte, mode uint32) (err error) {
	l.exchanges.Add(1)
	defer func() {
		if err != nil {
			err = fmt.Errorf("%s: write %s: %w", l.name(), path, err)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".orch-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(FileMode(mode)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable; failure here is not worth failing for.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Exchanges counts Exec and WriteFile calls.
func (l *Local) Exchanges() int64 { return l.exchanges.Load() }

// Close does nothing; a local connection holds no resources.
func (l *Local) Close() error { return nil }

// GroupScript wraps script in a { } group for feeding to sh on stdin. sh must
// then read and parse the whole script before running any of it, so a
// transfer cut short runs nothing instead of a truncated script; the group
// ends with exit, so sh reads nothing after it.
//
// The group starts a watchdog that waits on the script's standard input,
// which connections keep open until the script exits; the script itself
// reads /dev/null. When it closes first (the run was cancelled, an exchange
// timed out, the controller died and the session is gone), the watchdog
// ends the script's whole process group, so no remote process outlives the
// session that started it. A second loop watches the script's shell: if
// the shell dies without exiting (killed by a signal, as sshd's session may
// be), it ends what is left of the group too, and with it the watchdog,
// which would otherwise hold a session open whose stdin and stdout share
// one socket. When the script exits, it ends both loops and nothing else.
func GroupScript(script string) string {
	return "{\n" + watchdog + script + "\nexit $?\n}\n"
}

// watchdog runs in the background with the script's stdin on fd 3. When
// it must act, it reads its own process group, which is the script's (the
// shell may be gone by then); that group is the script's own only if the
// shell leads it, as sshd and the local connection make it do. Otherwise
// (docker's exec wrapper, a caller that runs sh in its own group) the
// watchdog ends nothing and leaves that to the caller, which knows the
// group: it never signals a group that is not the script's. Both loops
// ignore TERM and HUP so that they outlive the group's TERM (and a hangup
// sshd may send) and send KILL after a grace period. A shell that is a
// zombie (its parent gone, not yet reaped) counts as dead.
const watchdog = `exec 3<&0
_orch_end() {
  _orch_pg=
  { read -r _ _ _ _ _orch_pg _ < /proc/self/stat; } 2>/dev/null || _orch_pg=$(ps -o pgid= -p "$(sh -c 'echo $PPID')" 2>/dev/null | tr -d ' ')
  [ "$_orch_pg" = $$ ] || exit 0
  kill -TERM "-$_orch_pg" 2>/dev/null; sleep 2; kill -KILL "-$_orch_pg" 2>/dev/null
}
_orch_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then { IFS= read -r _orch_s < "/proc/$1/stat"; } 2>/dev/null; _orch_s=${_orch_s##*) }
  else _orch_s=$(ps -o stat= -p "$1" 2>/dev/null); _orch_s=${_orch_s# }; fi
  case $_orch_s in Z*) return 1 ;; esac
}
( trap '' TERM HUP
  while IFS= read -r _orch_w <&3; do :; done
  _orch_end
) </dev/null >/dev/null 2>&1 3<&3 &
_orch_wd=$!
exec 3<&- </dev/null
( trap '' TERM HUP
  while _orch_alive $$; do sleep 1; done
  kill -KILL $_orch_wd 2>/dev/null
  _orch_end
) </dev/null >/dev/null 2>&1 &
_orch_wp=$!
trap 'kill -KILL $_orch_wd $_orch_wp 2>/dev/null' EXIT
`

// FileMode converts Unix permission bits (including setuid, setgid and
// sticky) to an fs.FileMode.
func FileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
