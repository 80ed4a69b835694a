package sshdtest

import (
	"context"
	"github.com/orch-dev/orch/testkit/require"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sshRun logs in with the system ssh client, which checks the fleet's
// known_hosts strictly.
func sshRun(t *testing.T, f *Fleet, h *Host, cmd string) (string, error) {
	t.Helper()
	out, err := exec.Command("ssh", "-F", "/dev/null", "-i", f.ClientKey,
		"-o", "UserKnownHostsFile="+f.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5",
		"-p", itoa(h.Port), f.User+"@"+h.IP, cmd).CombinedOutput()
	return string(out), err
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestFleet(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		require.Missing(t, "ssh client not installed")
	}
	f := Start(t, 3, Options{})
	seen := map[string]bool{}
	for _, h := range f.Hosts {
		if seen[h.IP] {
			t.Fatalf("address %s used twice", h.IP)
		}
		seen[h.IP] = true
		out, err := sshRun(t, f, h, "echo hello from $(id -un)")
		if err != nil || strings.TrimSpace(out) != "hello from "+f.User {
			t.Fatalf("%s: %v: %q", h.Name, err, out)
		}
	}

	h := f.Hosts[1]
	old := h.Fingerprint
	fp, err := h.RotateKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fp == old {
		t.Fatal("RotateKey kept the old key")
	}
	if out, err := sshRun(t, f, h, "true"); err == nil || !strings.Contains(out, "IDENTIFICATION HAS CHANGED") {
		t.Fatalf("ssh after rotation: %v: %s", err, out)
	}

	f.Hosts[0].Stop()
	if _, err := sshRun(t, f, f.Hosts[0], "true"); err == nil {
		t.Fatal("stopped host still answers")
	}
}

// TestLargeFleet checks that a benchmark-sized fleet starts; set
// SSHDTEST_LARGE=200 to run it.
func TestLargeFleet(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SSHDTEST_LARGE"))
	if n == 0 {
		t.Skip("set SSHDTEST_LARGE=N to start N servers")
	}
	start := time.Now()
	f := Start(t, n, Options{})
	t.Logf("%d servers ready in %v (last %s)", n, time.Since(start), f.Hosts[n-1].Addr())
}
