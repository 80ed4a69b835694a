package zfs

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/internal/facttest"
	"github.com/orch-dev/orch/testkit/zfstest"
)

// TestFactFixtures parses the recorded outputs of the zfs fact: zfs-fuse
// (captured by TestCaptureZFSFuse) and FreeBSD 14's OpenZFS (transcribed).
func TestFactFixtures(t *testing.T) {
	facttest.Check(t, []string{FactName}, []string{"zfsfuse", "freebsd14"})
}

// TestCaptureZFSFuse is how testdata/facts/zfs/zfsfuse-layout.json was
// recorded: with ORCH_CAPTURE_ZFS=1 it builds a layout with children,
// snapshots, a clone and a clone of the clone in a zfs-fuse pool, runs the
// fact's script with this machine's /bin/sh and writes the fixture. Without
// it, it skips: it is a recording tool, not a test.
func TestCaptureZFSFuse(t *testing.T) {
	if os.Getenv("ORCH_CAPTURE_ZFS") == "" {
		t.Skip("a recording tool: set ORCH_CAPTURE_ZFS=1 to record testdata/facts/zfs/zfsfuse-layout.json")
	}
	p := zfstest.New(t)
	n := p.Name
	for _, args := range [][]string{
		{"create", "-o", "compression=on", "-o", "quota=1G", "-o", "user:owner=web", n + "/www"},
		{"create", n + "/www/logs"},
		{"snapshot", "-r", n + "/www@s1"},
		{"create", n + "/www/cache"},
		{"clone", "-o", "atime=off", n + "/www@s1", n + "/www-next"},
		{"snapshot", n + "/www-next@s2"},
		{"clone", n + "/www-next@s2", n + "/www-next2"},
	} {
		p.ZFS(t, args...)
	}
	keys := []string{n + "/www", n + "/www@s1", n + "/www-next", n + "/www/logs@s1", n + "/www/logs", n + "/new/child", n + "/www@s3", n + "/www-next@s2", n + "/www/new", "orchnosuchpool/x"}
	f, _ := modules.LookupFact(FactName)
	script := f.Script(keys)
	out, err := exec.Command("/bin/sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	vals, err := f.Parse(out, keys)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	parsed, _ := json.Marshal(vals)
	fx := facttest.Fixture{Keys: keys, Command: script, Output: string(out), Fact: parsed,
		Source: "captured with TestCaptureZFSFuse (ORCH_CAPTURE_ZFS=1) on Debian 12's zfs-fuse 0.7.0, a file-backed pool made by testkit/zfstest: " +
			"www (compression, quota, a user property), www/logs, snapshots www@s1 and www/logs@s1 (zfs snapshot -r), www/cache made after them, " +
			"www-next a clone of www@s1 with atime=off, and www-next2 a clone of the clone's snapshot www-next@s2; orchnosuchpool does not exist"}
	b, _ := json.MarshalIndent(fx, "", "  ")
	file := filepath.Join("testdata", "facts", FactName, "zfsfuse-layout.json")
	os.MkdirAll(filepath.Dir(file), 0o755)
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s:\n%s", file, strings.TrimSpace(string(out)))
}
