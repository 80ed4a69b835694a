package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"github.com/orch-dev/orch/testkit/require"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
	"github.com/orch-dev/orch/testkit/sshdtest"

	_ "github.com/orch-dev/orch/modules/standard"
)

// newSetup starts n hosts and prepares the bench's files for files file
// tasks per host. orch runs in process, through the engine library.
func newSetup(t testing.TB, n, files int) *setup {
	t.Helper()
	dir := t.TempDir()
	f := startFleet(t, dir, n)
	w := workload{Root: filepath.Join(dir, "targets"), Files: files}
	s, err := prepare(f, w, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	s.runOrchFn = engineRunner(s)
	return s
}

// startFleet starts n hosts configured as the bench configures them.
func startFleet(t testing.TB, dir string, n int) *sshdtest.Fleet {
	t.Helper()
	opts, err := fleetOptions(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return sshdtest.Start(t, n, opts)
}

// engineRunner runs the bench's plan and inventory with engine.Run, as
// `orch run --host-key-check strict` would.
func engineRunner(s *setup) func(ctx context.Context) (outcome, error) {
	return func(ctx context.Context) (outcome, error) {
		planFile, err := plan.Load(s.plan)
		if err != nil {
			return outcome{}, err
		}
		defer planFile.Close()
		inv, err := inventory.Load(s.inventory)
		if err != nil {
			return outcome{}, err
		}
		t0 := time.Now()
		rep, err := engine.Run(ctx, planFile, inv, engine.Options{
			StateDir: filepath.Join(s.dir, "orch-state"),
			SSH: engine.SSHOptions{
				KnownHosts:   []string{s.knownHosts},
				HostKeyCheck: "strict",
				NoSSHConfig:  true,
			},
		})
		o := outcome{Wall: time.Since(t0), Changed: rep.Summary.TasksChanged, Exchanges: rep.Summary.Exchanges}
		if err != nil {
			return o, err
		}
		for _, h := range rep.Hosts {
			if h.Status == "failed" || h.Status == "unreachable" {
				return o, fmt.Errorf("%s %s: %s", h.Name, h.Status, h.Err)
			}
			o.MaxHostEx = max(o.MaxHostEx, h.Exchanges)
		}
		if len(rep.Hosts) != s.hosts {
			return o, fmt.Errorf("report lists %d hosts, want %d", len(rep.Hosts), s.hosts)
		}
		return o, nil
	}
}

// snapshot maps every path under the fleet's target root to its mode and
// the SHA-256 of its content.
func snapshot(t *testing.T, s *setup) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(s.work.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.work.Root, path)
		entry := fmt.Sprintf("%v", info.Mode())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			entry += " " + hex.EncodeToString(sum[:])
		}
		snap[rel] = entry
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func mustRun(t *testing.T, s *setup, contender string, first bool) outcome {
	t.Helper()
	o, err := s.run(context.Background(), contender, first)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func sameSnapshots(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s: %s is %q, want %q", what, k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %s", what, k)
		}
	}
}

// TestOrchAndFloorWriteTheSameFiles runs orch and the floor script on three
// hosts × 21 tasks: both write byte-identical files with identical modes,
// each one's rerun is a no-change run after the other, and orch's rerun
// takes at most two exchanges per host.
func TestOrchAndFloorWriteTheSameFiles(t *testing.T) {
	s := newSetup(t, 3, 20)
	all := 3 * 21

	// s.run fails unless a first run changes every task and a rerun none.
	o := mustRun(t, s, orchName, true)
	if o.Changed != all {
		t.Fatalf("orch first run changed %d tasks, want %d", o.Changed, all)
	}
	byOrch := snapshot(t, s)
	if len(byOrch) != 3*21+1 {
		t.Fatalf("orch wrote %d paths, want %d: %v", len(byOrch), 3*21+1, byOrch)
	}
	if got, want := byOrch["h2/file5.conf"], "-rw-r-----"; !strings.HasPrefix(got, want) {
		t.Errorf("h2/file5.conf is %q, want mode %s", got, want)
	}
	if got, want := byOrch["h2"], "drwxr-xr-x"; got != want {
		t.Errorf("h2 is %q, want %s", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(s.work.Root, "h2", "file7.conf")); string(b) != fileContent("h2", 7, 20) {
		t.Errorf("h2/file7.conf holds %q, want %q", b, fileContent("h2", 7, 20))
	}
	o = mustRun(t, s, orchName, false)
	if o.MaxHostEx > 2 {
		t.Errorf("orch rerun: %d exchanges on one host, want at most 2", o.MaxHostEx)
	}
	if o.Exchanges > 2*3 {
		t.Errorf("orch rerun: %d exchanges for 3 hosts, want at most 6", o.Exchanges)
	}
	mustRun(t, s, floorName, false)

	if err := s.wipe(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustRun(t, s, floorName, true)
	sameSnapshots(t, "floor vs orch", snapshot(t, s), byOrch)
	mustRun(t, s, floorName, false)
	o = mustRun(t, s, orchName, false)
	if o.MaxHostEx > 2 {
		t.Errorf("orch rerun after the floor: %d exchanges on one host, want at most 2", o.MaxHostEx)
	}
}

// TestS4ShapeIsOneTask checks the one-file workload without a directory
// task that S4 repeats.
func TestS4ShapeIsOneTask(t *testing.T) {
	dir := t.TempDir()
	f := startFleet(t, dir, 1)
	s, err := prepare(f, workload{Root: filepath.Join(dir, "targets"), Files: 1, NoDir: true}, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	s.runOrchFn = engineRunner(s)
	if o := mustRun(t, s, orchName, true); o.Changed != 1 {
		t.Fatalf("first run changed %d tasks, want 1", o.Changed)
	}
	if o := mustRun(t, s, orchName, false); o.MaxHostEx > 1 {
		t.Errorf("rerun of one task took %d exchanges, want 1", o.MaxHostEx)
	}
	mustRun(t, s, floorName, false)
	if _, err := s.run(context.Background(), sshTrueName, false); err != nil {
		t.Fatal(err)
	}
}

// TestAnsibleWritesTheSameFiles checks that the playbook agrees with the
// floor and orch byte for byte, on one host with a directory and five files
// (one of them 0640), run by plain Ansible and by Ansible with Mitogen's
// mitogen_linear strategy. It takes some seconds, as Ansible does.
func TestAnsibleWritesTheSameFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("Ansible takes seconds per task; skipped in -short")
	}
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		require.Missing(t, "ansible-playbook is not installed (apt-get install ansible-core)")
	}
	for _, c := range []string{ansibleName, mitogenName} {
		t.Run(c, func(t *testing.T) {
			if c == mitogenName {
				if why := mitogenMissing(context.Background()); why != "" {
					require.Missing(t, why+" (apt-get install ansible-mitogen)")
				}
			}
			s := newSetup(t, 1, 5)
			mustRun(t, s, floorName, true)
			byFloor := snapshot(t, s)
			mustRun(t, s, c, false) // no change after the floor

			if err := s.wipe(context.Background()); err != nil {
				t.Fatal(err)
			}
			mustRun(t, s, c, true)
			sameSnapshots(t, c+" vs floor", snapshot(t, s), byFloor)
			mustRun(t, s, c, false)
			mustRun(t, s, orchName, false)
			mustRun(t, s, floorName, false)
		})
	}
}

// TestMitogenIsTheStrategy checks that the Mitogen contender's ansible.cfg
// selects mitogen_linear and plain Ansible's does not.
func TestMitogenIsTheStrategy(t *testing.T) {
	if cfg := ansibleConfig(20, "/w", true); !strings.Contains(cfg, "\nstrategy = mitogen_linear\n") || !strings.Contains(cfg, "forks = 20\n") {
		t.Errorf("mitogen config:\n%s", cfg)
	}
	if cfg := ansibleConfig(20, "/w", false); strings.Contains(cfg, "strategy") {
		t.Errorf("plain Ansible config selects a strategy:\n%s", cfg)
	}
}

func TestParseOrch(t *testing.T) {
	out := `{"event":"run_start","run_id":"x"}
{"event":"host_done","host":"h1","status":"ok","exchanges":1,"connect_ms":30,"check_ms":5}
{"event":"host_done","host":"h2","status":"unreachable","msg":"connection refused","exchanges":0}
{"event":"host_done","host":"h3","status":"ok","exchanges":2,"connect_ms":10,"check_ms":7,"apply_ms":4}
{"event":"summary","hosts":3,"ok":2,"changed":0,"failed":0,"unreachable":1,"tasks_changed":0,"exchanges":3,"duration_ms":12}
`
	r, err := parseOrch([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if sum := r.summary; sum.Hosts != 3 || sum.Unreachable != 1 || sum.Exchanges != 3 || r.maxHostEx != 2 || r.failure != "h2: connection refused" {
		t.Errorf("got %+v", r)
	}
	want := orchTimes{RunMS: 12, ConnectP50: 10, ConnectMax: 30, CheckP50: 5, CheckMax: 7, ApplyP50: 0, ApplyMax: 4}
	if r.times != want {
		t.Errorf("times = %+v, want %+v", r.times, want)
	}
	if _, err := parseOrch([]byte(`{"event":"run_start"}`)); err == nil {
		t.Error("no error for output without a summary")
	}
}

func TestPeakRSSIsTheChildsOwn(t *testing.T) {
	out, kb, ok := cutRSS([]byte("warning: x\n" + rssMarker + "1234\n"))
	if !ok || kb != 1234 || string(out) != "warning: x\n" {
		t.Errorf("cutRSS = %q, %d, %v", out, kb, ok)
	}
	timeBin := gnuTime()
	if timeBin == "" {
		require.Missing(t, "GNU time is not installed")
	}
	// Grow this process well past what true needs, so that a peak
	// inherited through vfork would show.
	ballast := make([]byte, 64<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	p, err := runProc(measured(context.Background(), timeBin, "true"))
	if err != nil {
		t.Fatal(err)
	}
	if p.rssKB <= 0 || p.rssKB > 32<<10 {
		t.Errorf("true's peak RSS is %d KB; want the child's own few MB", p.rssKB)
	}
	if ballast[len(ballast)-1] != 1 {
		t.Fatal("ballast")
	}
}

func TestRatiosArePairedByRun(t *testing.T) {
	var pr phaseResult
	pr.finish([]string{orchName, floorName, ansibleName}, map[string][]sample{
		orchName:    {{Run: 0, WallS: 1}, {Run: 1, WallS: 2}, {Run: 2, WallS: 4}},
		floorName:   {{Run: 0, WallS: 2}, {Run: 1, WallS: 2}, {Run: 2, WallS: 2}},
		ansibleName: {{Run: 0, WallS: 300}},
	})
	if r := pr.ratio("orch/floor"); r == nil || r.Pairs != 3 || r.Median != 1 {
		t.Errorf("orch/floor = %+v, want median 1 over 3 pairs", r)
	}
	if r := pr.ratio("ansible/orch"); r == nil || r.Pairs != 1 || r.Median != 300 {
		t.Errorf("ansible/orch = %+v, want 300 over 1 pair", r)
	}
	if c := pr.contender(orchName); c == nil || c.MedianS != 2 || c.MinS != 1 || c.MaxS != 4 {
		t.Errorf("orch summary = %+v", c)
	}
	goals := evaluateGoals([]phaseResult{{Scenario: "S1", Phase: "rerun", Ratios: pr.Ratios, Contenders: pr.Contenders}})
	if len(goals) != 3 || !goals[0].Met || !goals[1].Met {
		t.Errorf("goals = %+v", goals)
	}
}

// TestSharedCostAside: a cost both sides pay is taken out of each run of a
// pair, and the plain ratio stays as it was.
func TestSharedCostAside(t *testing.T) {
	var pr phaseResult
	pr.finish([]string{orchName, mitogenName}, map[string][]sample{
		orchName:    {{Run: 0, WallS: 2}, {Run: 1, WallS: 3}},
		mitogenName: {{Run: 0, WallS: 11}, {Run: 1, WallS: 21}},
	})
	pr.setShared("the restart", []float64{1.2, 1, 0.8})
	if r := pr.ratio("mitogen/orch"); r == nil || r.Median != 6.25 {
		t.Errorf("mitogen/orch = %+v, want 6.25 (11/2 and 21/3)", r)
	}
	if r := pr.ratio("mitogen/orch, the restart aside"); r == nil || r.Pairs != 2 || r.Median != 10 {
		t.Errorf("aside = %+v, want median 10 ((11-1)/(2-1) and (21-1)/(3-1)) over 2 pairs", r)
	}
	if pr.Shared == nil || pr.Shared.Median != 1 {
		t.Errorf("shared = %+v, want median 1", pr.Shared)
	}
}

func TestFloorScriptIsPOSIX(t *testing.T) {
	dash, err := exec.LookPath("dash")
	if err != nil {
		require.Missing(t, "dash is not installed")
	}
	w := workload{Root: t.TempDir(), Files: 5}
	if out, err := exec.Command(dash, "-n", "-c", w.floorScript("h1")).CombinedOutput(); err != nil {
		t.Fatalf("dash -n: %v: %s", err, out)
	}
}

var benchHosts = flag.Int("bench.hosts", 20, "hosts for BenchmarkOrchRerun (S2: 200)")

// BenchmarkOrchRerun times one no-change rerun of orch's engine, in
// process, over 20 hosts × 21 tasks (S1's shape; -bench.hosts 200 for
// S2's). Profile it with
//
//	go test ./bench -run '^$' -bench OrchRerun -cpuprofile /tmp/cpu.out
func BenchmarkOrchRerun(b *testing.B) {
	s := newSetup(b, *benchHosts, 20)
	ctx := context.Background()
	if _, err := s.run(ctx, floorName, true); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.run(ctx, orchName, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOrchFirstRun times one first run of orch's engine, in process,
// over S1's shape (S7): every iteration deletes the hosts' directories
// first, untimed. Profile it with
//
//	go test ./bench -run '^$' -bench OrchFirstRun -cpuprofile /tmp/cpu.out
//
// The controller's CPU is a small part of the wall time: most of it is the
// hosts' shells running the apply scripts (see bench/README.md, S7).
func BenchmarkOrchFirstRun(b *testing.B) {
	s := newSetup(b, *benchHosts, 20)
	ctx := context.Background()
	var exchanges int64
	for b.Loop() {
		b.StopTimer()
		if err := s.wipe(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		o, err := s.run(ctx, orchName, true)
		if err != nil {
			b.Fatal(err)
		}
		exchanges += o.Exchanges
	}
	b.ReportMetric(float64(exchanges)/float64(b.N)/float64(*benchHosts), "exchanges/host")
}
