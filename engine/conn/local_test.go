package conn_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine/conn"
)

func TestLocalExec(t *testing.T) {
	l := &conn.Local{}
	ctx := context.Background()

	res, err := l.Exec(ctx, "echo out; echo err >&2; exit 3", nil)
	if err != nil || string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" || res.ExitCode != 3 {
		t.Errorf("got %+v, %v", res, err)
	}
	if res, err := l.Exec(ctx, "kill -9 $$", nil); err != nil || res.ExitCode != -1 {
		t.Errorf("killed shell: %+v, %v", res, err)
	}
	if res, _ := l.Exec(ctx, "echo ran\nif then fi", nil); len(res.Stdout) != 0 || res.ExitCode == 0 {
		t.Errorf("syntax error ran part of the script: %+v", res)
	}
	res, err = l.Exec(ctx, "tr a-z A-Z", strings.NewReader("hello"))
	if err != nil || string(res.Stdout) != "HELLO" {
		t.Errorf("stdin: %+v, %v", res, err)
	}
	// Too large for one argument: goes through a temporary file.
	big := "cat >/dev/null <<'EOF'\n" + strings.Repeat("0123456789abcdef\n", 10000) + "EOF\ntr a-z A-Z"
	res, err = l.Exec(ctx, big, strings.NewReader("big"))
	if err != nil || string(res.Stdout) != "BIG" {
		t.Errorf("big script with stdin: %+v, %v", res, err)
	}
	if got := l.Exchanges(); got != 5 {
		t.Errorf("Exchanges = %d, want 5", got)
	}
}

func TestLocalExecCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The background sleep holds stdout open; cancelling must still return.
	_, err := (&conn.Local{}).Exec(ctx, "sleep 30 & sleep 30", nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Errorf("got %v after %v", err, time.Since(start))
	}
}

func TestLocalWriteFile(t *testing.T) {
	l := &conn.Local{}
	dir := t.TempDir()
	p := filepath.Join(dir, "app.conf")
	for _, c := range []struct {
		data []byte
		mode uint32
	}{{[]byte("one\n"), 0o640}, {[]byte("two\n"), 0o2755}, {nil, 0o600}} {
		if err := l.WriteFile(context.Background(), p, c.data, c.mode); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if !bytes.Equal(got, c.data) || fi.Mode() != conn.FileMode(c.mode) {
			t.Errorf("got %q %v, want %q %v", got, fi.Mode(), c.data, conn.FileMode(c.mode))
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %d entries", len(entries))
	}
	err := l.WriteFile(context.Background(), filepath.Join(dir, "missing", "x"), nil, 0o644)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
	if got := l.Exchanges(); got != 4 {
		t.Errorf("Exchanges = %d, want 4", got)
	}
}

// TestWatchdogSparesAGroupItDoesNotLead: a script run by a caller that
// gives it no process group of its own, and closes its input at once, is
// left to that caller: the watchdog never signals the caller's group.
func TestWatchdogSparesAGroupItDoesNotLead(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", `printf '%s' "$1" | /bin/sh >/dev/null 2>&1; sleep 3; echo survived`, "sh", conn.GroupScript("sleep 2"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the caller's group, led by the outer sh
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != "survived" {
		t.Fatalf("the caller's group was signalled: %q %v", out, err)
	}
}
