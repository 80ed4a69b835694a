// Package proctest finds processes by their command line, so that tests
// can prove that what a cancelled or killed run started on its hosts
// (which, in tests, run on this machine) is gone.
package proctest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Running lists the live processes whose command line is exactly argv
// (zombies, which have none, are not listed).
func Running(argv ...string) []int {
	want := strings.Join(argv, "\x00") + "\x00"
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, _ := os.ReadFile(p); string(b) == want {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// WaitGone waits until no process runs argv, and fails the test if some
// still do after ten seconds: the remote side's watchdog gives a process
// two seconds between TERM and KILL.
func WaitGone(t testing.TB, argv ...string) {
	t.Helper()
	for range 1000 {
		if len(Running(argv...)) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("still running: %q (pids %v)", argv, Running(argv...))
}

// WaitRunning waits until n processes run argv, and fails the test if
// they do not within a minute.
func WaitRunning(t testing.TB, n int, argv ...string) {
	t.Helper()
	for range 6000 {
		if len(Running(argv...)) >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d processes run %q, want %d", len(Running(argv...)), argv, n)
}

// WaitFile waits until path exists (the far side of a test reached a
// point), and fails the test if it does not within a minute.
func WaitFile(t testing.TB, path string) {
	t.Helper()
	for range 6000 {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}
