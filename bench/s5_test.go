package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/orch-dev/orch/lab/labtest"
	"github.com/orch-dev/orch/testkit/require"
)

// serveCloudEnv makes this test binary act as the lab cloud of S5's test
// lab (see lab.Options.CloudCommand).
const serveCloudEnv = "ORCH_BENCH_TEST_SERVE_CLOUD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(serveCloudEnv); dir != "" {
		if err := labtest.ServeCloud(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var s5Ansible = flag.Bool("bench.s5-ansible", false, "TestS5Role: also run plain Ansible's S5 (minutes on a loaded machine; the bench run checks every one of its runs too)")

// TestS5Role runs S5's role on three lab containers: orch's first run
// writes every file and restarts nginx in at most three exchanges per host,
// its rerun changes nothing in one exchange per host. Ansible with Mitogen
// (not in -short; plain Ansible too with -bench.s5-ansible) leaves the same
// files, restarts nginx on a first run and not on a rerun, and orch finds
// nothing to do after it. Every run's files and nginx pid are checked on
// the machines themselves (s5Lab.verify), outside the contenders, against
// the content the bench renders: the bench run checks every timed run in
// the same way.
func TestS5Role(t *testing.T) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		require.Missing(t, "no Docker engine (docker info failed)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	dir := t.TempDir()
	labDir := filepath.Join(dir, "lab")
	sl, err := startS5Lab(ctx, labDir, fmt.Sprintf("orch-bench-test-%d", os.Getpid()), 3,
		[]string{os.Args[0]}, []string{serveCloudEnv + "=" + labDir}, t.Logf)
	t.Cleanup(func() {
		if err := sl.stop(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := prepareS5(sl, filepath.Join(dir, "S5"), "")
	if err != nil {
		t.Fatal(err)
	}
	s.runOrchFn = engineRunner(s)

	first := func(c string) outcome {
		t.Helper()
		if err := s.wipe(ctx); err != nil {
			t.Fatal(err)
		}
		return mustRun(t, s, c, true)
	}
	// s.run fails unless the run changed what s5Want says and the machines
	// hold what s5Lab.verify wants.
	if o := first(orchName); o.MaxHostEx > 3 || o.MaxHostEx < 1 {
		t.Errorf("orch first run: %d exchanges on one host, want 1 to 3", o.MaxHostEx)
	}
	if o := mustRun(t, s, orchName, false); o.MaxHostEx != 1 || o.Exchanges != 3 {
		t.Errorf("orch rerun: %d exchanges (%d on one host), want 1 per host", o.Exchanges, o.MaxHostEx)
	}
	if testing.Short() {
		return
	}
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		require.Missing(t, "ansible-playbook is not installed (apt-get install ansible-core)")
	}
	if why := mitogenMissing(ctx); why != "" {
		require.Missing(t, why+" (apt-get install ansible-mitogen)")
	}
	contenders := []string{mitogenName}
	if *s5Ansible {
		contenders = append(contenders, ansibleName)
	}
	for _, c := range contenders {
		first(c)
		mustRun(t, s, c, false)
		if o := mustRun(t, s, orchName, false); o.MaxHostEx != 1 {
			t.Errorf("orch rerun after %s: %d exchanges on one host, want 1", c, o.MaxHostEx)
		}
	}
}
