package zfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
)

// runHelper runs the destroy helper with a stand-in zfs function that
// fails with msg the first fails times, and reports the helper's exit, what
// it printed and how many times zfs ran.
func runHelper(t *testing.T, fails int, msg string) (code int, out string, calls int) {
	t.Helper()
	counter := filepath.Join(t.TempDir(), "calls")
	// The helper runs zfs in $( ), a subshell: the count lives in a file.
	script := "echo 0 > " + modules.Quote(counter) + "\n" +
		"zfs() { n=$(($(cat " + modules.Quote(counter) + ") + 1)); echo $n > " + modules.Quote(counter) + "; " +
		"[ $n -gt " + strconv.Itoa(fails) + " ] && return 0; echo " + modules.Quote(msg) + " >&2; return 1; }\n" +
		"sync() { :; }; sleep() { :; }\n" + destroyHelper + "_orch_zfs_destroy -r tank/www\n"
	b, err := exec.Command("/bin/sh", "-c", script).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	c, err := os.ReadFile(counter)
	if err != nil {
		t.Fatal(err)
	}
	calls, _ = strconv.Atoi(strings.TrimSpace(string(c)))
	return code, string(b), calls
}

// TestDestroyHelperRetriesBusy: zfs-fuse's "dataset is busy" is retried
// (up to 10 tries), any other failure is reported at once with zfs's
// words.
func TestDestroyHelperRetriesBusy(t *testing.T) {
	code, out, calls := runHelper(t, 3, "cannot destroy 'tank/www': dataset is busy")
	if code != 0 || calls != 4 {
		t.Errorf("busy 3 times: exit %d after %d calls, want 0 after 4: %s", code, calls, out)
	}
	code, out, calls = runHelper(t, 100, "cannot destroy 'tank/www': dataset is busy")
	if code != 1 || calls != 10 || !strings.Contains(out, "dataset is busy") {
		t.Errorf("busy for good: exit %d after %d calls, %q; want 1 after 10 tries with zfs's message", code, calls, out)
	}
	code, out, calls = runHelper(t, 1, "cannot destroy 'tank/www': filesystem has children")
	if code != 1 || calls != 1 || !strings.Contains(out, "filesystem has children") {
		t.Errorf("another failure: exit %d after %d calls, %q; want 1 at once with zfs's message", code, calls, out)
	}
}
