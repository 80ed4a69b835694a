// Command bench measures how fast orch converges a fleet over SSH, side by
// side with ansible-playbook and with the raw floor (one `ssh host sh -s`
// per host, all in parallel), against real OpenSSH servers that it starts on
// loopback addresses. It prints a table and writes a JSON file.
//
//	go run ./bench                      # S1–S4, about 7 minutes (half of it Ansible in S1)
//	go run ./bench -quick               # a smoke run of about a minute
//	go run ./bench -slow                # also Ansible in S2 and S3 (long)
//	go run ./bench -scenarios S1,S4 -runs 9
//
// See bench/README.md for what each number means.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/orch-dev/orch/testkit/sshdtest"
)

// scenario is one fleet shape and what is measured on it.
type scenario struct {
	Name        string
	Hosts       int
	Files       int
	NoDir       bool
	First       bool // measure first runs (then reruns)
	Ansible     bool // Ansible takes part without -slow
	SSHTrue     bool // measure `ssh host true` alongside
	RunsFactor  int  // orch and floor run RunsFactor × -runs times
	Lab         bool // S5: lab containers (Docker) instead of loopback sshd's
	SlowOnly    bool // S6: in the default set only with -slow
	Description string
}

func (s scenario) tasks() int {
	if s.Lab {
		return s5Files + 2 // pkg, the files, the service
	}
	return workload{Files: s.Files, NoDir: s.NoDir}.Tasks()
}

// defaultScenarios are the S1–S4.
func defaultScenarios() []scenario {
	return []scenario{
		{Name: "S1", Hosts: 20, Files: 20, First: true, Ansible: true, RunsFactor: 1,
			Description: "20 hosts × 21 file tasks, first run and no-change rerun"},
		{Name: "S2", Hosts: 200, Files: 20, RunsFactor: 1,
			Description: "200 hosts × 21 tasks, no-change rerun (Ansible with -slow)"},
		{Name: "S3", Hosts: 10, Files: 199, RunsFactor: 1,
			Description: "10 hosts × 200 tasks, no-change rerun (Ansible with -slow)"},
		{Name: "S4", Hosts: 1, Files: 1, NoDir: true, Ansible: true, SSHTrue: true, RunsFactor: 2,
			Description: "1 host × 1 task, no-change rerun repeated: fixed start-up cost against `ssh host true`"},
		{Name: "S6", Hosts: 1000, Files: 20, RunsFactor: 1, SlowOnly: true,
			Description: "1000 hosts × 21 tasks, no-change rerun, orch vs the floor (with -slow; -s6-hosts to shrink)"},
		{Name: "S5", Hosts: 10, Files: s5Files, First: true, Ansible: true, RunsFactor: 1, Lab: true,
			Description: "10 lab containers × a role (pkg nginx, 10 templated files, service nginx with watch=), first run and no-change rerun"},
	}
}

// quickScenarios shrink the fleets so that a smoke run, Ansible's S1 rerun
// included, takes a minute or two.
func quickScenarios() []scenario {
	sc := defaultScenarios()
	sc[0].Hosts, sc[0].First = 3, false
	sc[0].Description = "quick: 3 hosts × 21 file tasks, no-change rerun"
	sc[1].Hosts = 30
	sc[1].Description = "quick: 30 hosts × 21 tasks, no-change rerun"
	sc[2].Hosts = 3
	sc[2].Description = "quick: 3 hosts × 200 tasks, no-change rerun"
	sc[4].Hosts = 60
	sc[4].Description = "quick: 60 hosts × 21 tasks, no-change rerun"
	sc[5].Hosts = 3
	sc[5].Description = "quick: 3 lab containers × S5's role, first run and no-change rerun"
	return sc
}

type options struct {
	runs        int
	ansibleRuns int
	mitogenRuns int
	noMitogen   bool
	slow        bool
	quick       bool
	noAnsible   bool
	scenarios   string
	out         string
	orchBin     string
	workDir     string
	keep        bool
	loginRC     bool
	s6Hosts     int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench: error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.runs, "runs", 0, "timed runs of orch and the floor per scenario and phase (default 5; 2 with -quick; S4 runs twice as many)")
	fs.IntVar(&o.ansibleRuns, "ansible-runs", 1, "timed runs of Ansible per scenario and phase (its S1 rerun takes minutes)")
	fs.BoolVar(&o.slow, "slow", false, "also run Ansible in S2 and S3 (estimated half an hour more)")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: smaller fleets, fewer runs, Ansible only on reruns")
	fs.IntVar(&o.mitogenRuns, "mitogen-runs", 3, "timed runs of Ansible with Mitogen per scenario and phase")
	fs.BoolVar(&o.noAnsible, "no-ansible", false, "leave Ansible out entirely (with and without Mitogen)")
	fs.BoolVar(&o.noMitogen, "no-mitogen", false, "leave Ansible with Mitogen out")
	fs.StringVar(&o.scenarios, "scenarios", "", "comma-separated scenarios to run (default S1-S5, and S6 with -slow; S5 needs Docker and the lab image)")
	fs.IntVar(&o.s6Hosts, "s6-hosts", 0, "hosts in S6 (default 1000; each is an sshd process on this machine)")
	fs.StringVar(&o.out, "out", "", "JSON results file (default bench/results.json in the module, or -quick: bench/results-quick.json)")
	fs.StringVar(&o.orchBin, "orch", "", "orch binary to measure (default: build ./cmd/orch)")
	fs.StringVar(&o.workDir, "work", "", "working directory for hosts, plans and logs (default: a new temp dir)")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory")
	fs.BoolVar(&o.loginRC, "login-rc", false, "let the hosts' sessions keep the account's real HOME, so its shell start-up files run on every exchange")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.runs <= 0 {
		o.runs = 5
		if o.quick {
			o.runs = 2
		}
	}
	all := defaultScenarios()
	if o.quick {
		all = quickScenarios()
	}
	if o.s6Hosts > 0 {
		i := slices.IndexFunc(all, func(s scenario) bool { return s.Name == "S6" })
		all[i].Hosts = o.s6Hosts
		all[i].Description = fmt.Sprintf("%d hosts × 21 tasks, no-change rerun, orch vs the floor (-s6-hosts %d)", o.s6Hosts, o.s6Hosts)
	}
	names := o.scenarios
	if names == "" {
		var def []string
		for _, s := range all {
			if !s.SlowOnly || o.slow {
				def = append(def, s.Name)
			}
		}
		names = strings.Join(def, ",")
	}
	var chosen []scenario
	for _, name := range strings.Split(names, ",") {
		name = strings.TrimSpace(strings.ToUpper(name))
		i := slices.IndexFunc(all, func(s scenario) bool { return s.Name == name })
		if i < 0 {
			return fmt.Errorf("unknown scenario %q (want S1 to S6)", name)
		}
		chosen = append(chosen, all[i])
	}

	if why := sshdtest.Available(); why != "" {
		return errors.New(why)
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		return fmt.Errorf("the OpenSSH client is needed for the floor: %w", err)
	}
	if !o.noAnsible {
		if _, err := exec.LookPath("ansible-playbook"); err != nil {
			fmt.Fprintln(stderr, "bench: ansible-playbook not found; Ansible is left out (apt-get install ansible-core)")
			o.noAnsible = true
		}
	}
	if o.noAnsible {
		o.noMitogen = true
	}
	if !o.noMitogen {
		if why := mitogenMissing(ctx); why != "" {
			fmt.Fprintln(stderr, "bench: "+why+"; Ansible with Mitogen is left out (apt-get install ansible-mitogen)")
			o.noMitogen = true
		}
	}

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "results.json")
		if o.quick {
			o.out = filepath.Join(root, "bench", "results-quick.json")
		}
	}
	work := o.workDir
	if work == "" {
		if work, err = os.MkdirTemp("", "orchbench-"); err != nil {
			return err
		}
	}
	if work, err = filepath.Abs(work); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	} else {
		fmt.Fprintln(stderr, "bench: working directory", work)
	}
	if o.orchBin == "" {
		o.orchBin = filepath.Join(work, "orch")
		fmt.Fprintln(stderr, "bench: building orch")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.orchBin, "./cmd/orch")
		build.Dir, build.Stdout, build.Stderr = root, stderr, stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building orch: %w", err)
		}
	}

	res := &results{Conditions: gatherConditions(ctx, root, o)}
	t0 := time.Now()
	for _, sc := range chosen {
		run := runScenario
		if sc.Lab {
			if err := exec.CommandContext(ctx, "docker", "info").Run(); err != nil {
				fmt.Fprintf(stderr, "bench: %s left out: no Docker engine (docker info: %v)\n", sc.Name, err)
				res.Conditions.Skipped = append(res.Conditions.Skipped, sc.Name+": no Docker engine")
				continue
			}
			run = runS5
			res.Conditions.S5Targets = "lab containers from the lab image (Debian 12, sysvinit, nginx installed, no Python), on a lab of the bench's own; " +
				"logged into as root with the lab's key and known_hosts, sessions with the container's own HOME (/root, Debian's stock shell files); python3 and python3-apt installed at boot through the lab's apt proxy, for Ansible only (untimed)"
		}
		phases, err := run(ctx, sc, o, work, stderr)
		res.Phases = append(res.Phases, phases...)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.Name, err)
		}
	}
	res.Conditions.TotalSeconds = time.Since(t0).Seconds()
	res.Conditions.LoadAvgEnd = loadAvg()
	slices.SortStableFunc(res.Phases, func(a, b phaseResult) int { return strings.Compare(a.Scenario, b.Scenario) })
	res.Goals = evaluateGoals(res.Phases)
	res.CostCurve = res.costCurve()
	res.Table = res.table()
	fmt.Fprint(stdout, res.Table)
	if err := res.write(o.out); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "bench: wrote", o.out)
	return nil
}

// runScenario starts the scenario's fleet, measures each phase and stops
// the fleet.
func runScenario(ctx context.Context, sc scenario, o options, work string, log io.Writer) ([]phaseResult, error) {
	dir := filepath.Join(work, sc.Name)
	fmt.Fprintf(log, "bench: %s: starting %d sshd\n", sc.Name, sc.Hosts)
	if err := os.MkdirAll(filepath.Join(dir, "fleet"), 0o700); err != nil {
		return nil, err
	}
	fopts, err := fleetOptions(dir, o.loginRC)
	if err != nil {
		return nil, err
	}
	fleet, err := sshdtest.StartFleet(ctx, filepath.Join(dir, "fleet"), sc.Hosts, fopts)
	if err != nil {
		return nil, err
	}
	defer fleet.Stop()
	w := workload{Root: filepath.Join(work, "targets", sc.Name), Files: sc.Files, NoDir: sc.NoDir}
	s, err := prepare(fleet, w, dir, o.orchBin)
	if err != nil {
		return nil, err
	}
	if sc.SlowOnly {
		// A thousand sshd's handshaking at once on a small machine take
		// longer than orch's default 10 s connect timeout (S6 at 1000 hosts
		// here: 432 hosts timed out). The floor's ssh has no connect
		// timeout at all, so orch gets a long one.
		s.orchArgs = []string{"--connect-timeout", "120s"}
	}

	runs := map[string]int{orchName: o.runs * sc.RunsFactor, floorName: o.runs * sc.RunsFactor}
	contenders := []string{orchName, floorName}
	if !o.noAnsible && (sc.Ansible || o.slow && !sc.SlowOnly) {
		contenders = append(contenders, ansibleName)
		runs[ansibleName] = o.ansibleRuns
	}
	if !o.noMitogen && (sc.Ansible || o.slow && !sc.SlowOnly) {
		contenders = append(contenders, mitogenName)
		runs[mitogenName] = o.mitogenRuns
	}
	if sc.SSHTrue {
		contenders = append(contenders, sshTrueName)
		runs[sshTrueName] = o.runs * sc.RunsFactor
	}

	var phases []phaseResult
	if sc.First {
		pr, err := measure(ctx, s, sc, "first", contenders, runs, log)
		phases = append(phases, pr)
		if err != nil {
			return phases, err
		}
	} else {
		// Converge untimed with the floor.
		if _, err := s.run(ctx, floorName, true); err != nil {
			return phases, fmt.Errorf("converging: %w", err)
		}
	}
	// An untimed rerun of orch and the floor warms caches and proves both
	// agree with what is on the hosts.
	for _, c := range []string{orchName, floorName} {
		if _, err := s.run(ctx, c, false); err != nil {
			return phases, fmt.Errorf("warm-up: %w", err)
		}
	}
	pr, err := measure(ctx, s, sc, "rerun", contenders, runs, log)
	phases = append(phases, pr)
	return phases, err
}

// measure times each contender runs[c] times, interleaved: run i of every
// contender happens before run i+1 of any, and the order rotates, so slow
// drifts of a noisy machine hit all contenders alike and ratios can be
// taken pair by pair.
func measure(ctx context.Context, s *setup, sc scenario, phase string, contenders []string, runs map[string]int, log io.Writer) (pr phaseResult, err error) {
	pr = phaseResult{Scenario: sc.Name, Phase: phase, Hosts: sc.Hosts, Tasks: sc.tasks(), Description: sc.Description, LoadBefore: loadAvg()}
	defer func() { pr.LoadAfter = loadAvg() }()
	samples := map[string][]sample{}
	most := 0
	for _, c := range contenders {
		most = max(most, runs[c])
	}
	for i := range most {
		k := len(contenders)
		for j := range k {
			c := contenders[(i+j)%k]
			if i >= runs[c] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return pr, err
			}
			if phase == "first" && c != sshTrueName {
				if err := s.wipe(ctx); err != nil {
					return pr, err
				}
			}
			o, err := s.run(ctx, c, phase == "first")
			if err != nil {
				pr.finish(contenders, samples)
				return pr, err
			}
			smp := newSample(i, o, sc.Hosts)
			samples[c] = append(samples[c], smp)
			extra := ""
			if c == orchName {
				extra = fmt.Sprintf(", %.1f exchanges/host", smp.ExchangesPerHost)
			}
			fmt.Fprintf(log, "bench: %s %s %d/%d: %-8s %8.3fs (cpu %.2fs, rss %.1f MB%s)\n",
				sc.Name, phase, i+1, runs[c], c, smp.WallS, smp.CPUS, smp.PeakRSSMB, extra)
		}
	}
	pr.finish(contenders, samples)
	return pr, nil
}

// fleetOptions configure the hosts' sshd. Unless loginRC, every session
// gets an empty HOME (sshd's SetEnv applies after HOME is set from the
// password file), so the account's ~/.bashrc does not run: the hosts share
// this machine's root account, and a development machine's root often sets
// up tools there (pyenv init costs over 100 ms a session here), which would
// weigh on every exchange of every contender, unlike on a fleet's servers.
func fleetOptions(dir string, loginRC bool) (sshdtest.Options, error) {
	return sshdtest.Options{LoginRC: loginRC}, nil
}

// moduleRoot is the directory of orch's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the bench inside orch's module (go run ./bench)")
	}
	return filepath.Dir(gomod), nil
}
