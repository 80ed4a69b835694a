package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/orch-dev/orch/testkit/sshdtest"
)

// Contender names, as they appear in the table and the JSON.
const (
	orchName    = "orch"
	floorName   = "floor"
	ansibleName = "ansible"
	mitogenName = "mitogen" // ansible-playbook with strategy mitogen_linear
	sshTrueName = "ssh-true"
)

// outcome is one timed run of one contender over the whole fleet.
type outcome struct {
	Wall      time.Duration
	CPU       time.Duration // user+system of the controller's processes
	PeakRSSKB int64         // the largest controller process
	Changed   int           // tasks (orch, Ansible) or paths (floor) changed
	Exchanges int64         // orch only: the summary's exchanges
	MaxHostEx int64         // orch only: the most exchanges of one host
	Orch      *orchTimes    // orch CLI only: where its time went
}

// orchTimes splits an orch run's time, from its summary and host_done
// events: per-host phases as median (P50) and maximum over hosts.
type orchTimes struct {
	RunMS      int64 `json:"run_ms"` // the summary's duration_ms
	ConnectP50 int64 `json:"connect_ms_p50"`
	ConnectMax int64 `json:"connect_ms_max"`
	CheckP50   int64 `json:"check_ms_p50"`
	CheckMax   int64 `json:"check_ms_max"`
	ApplyP50   int64 `json:"apply_ms_p50"`
	ApplyMax   int64 `json:"apply_ms_max"`
}

// setup is everything a contender needs to run against one fleet.
type setup struct {
	fleet      *sshdtest.Fleet // the loopback fleet; nil for S5's lab machines
	hosts      int
	knownHosts string
	work       workload
	dir        string // this scenario's files: plan, inventory, scripts, logs
	orchBin    string
	inventory  string
	plan       string
	playbook   string
	floorDir   string
	timeBin    string   // GNU time, for peak RSS; "" means wait4's (see measured)
	runs       int      // counts runs, so each one's logs and control dir differ
	orchArgs   []string // extra flags for orch run (S6: a longer connect timeout)
	// runOrchFn replaces the orch CLI, for tests that run the engine in
	// process.
	runOrchFn func(ctx context.Context) (outcome, error)
	// S5's lab machines replace the file workload's hooks: wipeFn prepares
	// a first run, wantFn is how many tasks a contender's run must change,
	// and verifyFn checks the hosts' state after each run.
	wipeFn   func(ctx context.Context) error
	wantFn   func(contender string, first bool) int
	verifyFn func(ctx context.Context, contender string, first bool) error
}

// prepare writes the plan, inventory, playbook and floor scripts.
func prepare(f *sshdtest.Fleet, w workload, dir, orchBin string) (*setup, error) {
	s := &setup{
		fleet: f, hosts: len(f.Hosts), knownHosts: f.KnownHosts,
		work: w, dir: dir, orchBin: orchBin, timeBin: gnuTime(),
		inventory: filepath.Join(dir, "inventory.ini"),
		plan:      filepath.Join(dir, "bench.star"),
		playbook:  filepath.Join(dir, "playbook.yml"),
		floorDir:  filepath.Join(dir, "floor"),
	}
	if err := os.MkdirAll(w.Root, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.floorDir, 0o755); err != nil {
		return nil, err
	}
	if err := s.wipe(context.Background()); err != nil {
		return nil, err
	}
	files := map[string]string{
		s.inventory: w.inventory(f),
		s.plan:      w.orchPlan(),
		s.playbook:  w.ansiblePlaybook(),
	}
	for _, h := range f.Hosts {
		files[s.floorScript(h.Name)] = w.floorScript(h.Name)
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *setup) floorScript(host string) string { return filepath.Join(s.floorDir, host+".sh") }

// wipe removes every host's directory, so the next run is a first run.
// Without a directory task, it leaves the directory empty instead.
func (s *setup) wipe(ctx context.Context) error {
	if s.wipeFn != nil {
		return s.wipeFn(ctx)
	}
	for _, h := range s.fleet.Hosts {
		root := s.work.hostRoot(h.Name)
		if err := os.RemoveAll(root); err != nil {
			return err
		}
		if s.work.NoDir {
			if err := os.Mkdir(root, dirMode); err != nil {
				return err
			}
			if err := os.Chmod(root, dirMode); err != nil {
				return err
			}
		}
	}
	return nil
}

// run runs one contender once and checks that it did the expected work:
// every task changed on a first run, none on a rerun.
func (s *setup) run(ctx context.Context, contender string, first bool) (outcome, error) {
	s.runs++
	var o outcome
	var err error
	switch contender {
	case orchName:
		if s.runOrchFn != nil {
			o, err = s.runOrchFn(ctx)
		} else {
			o, err = s.runOrch(ctx)
		}
	case floorName:
		o, err = s.runFloor(ctx)
	case ansibleName:
		o, err = s.runAnsible(ctx, false)
	case mitogenName:
		o, err = s.runAnsible(ctx, true)
	case sshTrueName:
		o, err = s.runSSHTrue(ctx)
		return o, err
	default:
		return o, fmt.Errorf("unknown contender %q", contender)
	}
	if err != nil {
		return o, fmt.Errorf("%s: %w", contender, err)
	}
	want := 0
	switch {
	case s.wantFn != nil:
		want = s.wantFn(contender, first)
	case first:
		want = s.hosts * s.work.Tasks()
	}
	if o.Changed != want {
		return o, fmt.Errorf("%s changed %d tasks, want %d: the tools do not do identical work", contender, o.Changed, want)
	}
	if s.verifyFn != nil {
		if err := s.verifyFn(ctx, contender, first); err != nil {
			return o, fmt.Errorf("%s: %w", contender, err)
		}
	}
	return o, nil
}

// proc is a finished child process with its resource usage.
type proc struct {
	wall   time.Duration
	cpu    time.Duration
	rssKB  int64
	stdout []byte
	stderr []byte
}

// rssMarker prefixes the line GNU time appends to a measured process's
// stderr.
const rssMarker = "orch-bench-maxrss-kb="

// measured is command for a contender's process. With GNU time available
// (timeBin), the process runs under it, because the ru_maxrss that wait4
// reports for a child of this Go process is wrong: Go starts children with
// vfork (CLONE_VM), and exec records the parent's peak RSS as the child's.
// GNU time forks without CLONE_VM and reports its child's own peak. It
// costs each process about a millisecond, the same for every contender.
func measured(ctx context.Context, timeBin, name string, args ...string) *exec.Cmd {
	if timeBin == "" {
		return command(ctx, name, args...)
	}
	return command(ctx, timeBin, append([]string{"-f", rssMarker + "%M", name}, args...)...)
}

// gnuTime returns the path of GNU time, or "" if it is missing.
func gnuTime() string {
	path, err := exec.LookPath("time")
	if err != nil {
		return ""
	}
	out, err := exec.Command(path, "-f", rssMarker+"%M", "true").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(rssMarker)) {
		return ""
	}
	return path
}

// cutRSS removes GNU time's line from output and returns the peak RSS it
// reports.
func cutRSS(output []byte) ([]byte, int64, bool) {
	i := bytes.LastIndex(output, []byte(rssMarker))
	if i < 0 || (i > 0 && output[i-1] != '\n') {
		return output, 0, false
	}
	line := output[i+len(rssMarker):]
	end := bytes.IndexByte(line, '\n')
	if end < 0 {
		end = len(line)
	}
	kb, err := strconv.ParseInt(string(bytes.TrimSpace(line[:end])), 10, 64)
	if err != nil {
		return output, 0, false
	}
	rest := append(output[:i:i], line[min(end+1, len(line)):]...)
	return rest, kb, true
}

// command prepares a child for runProc: its own process group, so that a
// cancelled run can end it and its children.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

// runProc runs cmd and reads its rusage. Linux's wait4 rusage covers the
// child and every descendant it waited for, so Ansible's workers and ssh
// clients count too; the peak RSS is the largest single process among them
// (see measured for where it comes from).
//
// Unless the caller set them, stdout and stderr go to temporary files, not
// pipes: with hundreds of children at once on a loaded machine, pipe
// copying goroutines lag, and a child's output is small anyway.
func runProc(cmd *exec.Cmd) (proc, error) {
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	capture := func(w *io.Writer) error {
		if *w != nil {
			return nil
		}
		f, err := os.CreateTemp("", "orchbench-out-*")
		if err != nil {
			return err
		}
		files = append(files, f)
		*w = f
		return nil
	}
	if err := capture(&cmd.Stdout); err != nil {
		return proc{}, err
	}
	if err := capture(&cmd.Stderr); err != nil {
		return proc{}, err
	}
	t0 := time.Now()
	err := cmd.Run()
	p := proc{wall: time.Since(t0)}
	read := func(w io.Writer) []byte {
		if f, ok := w.(*os.File); ok && slices.Contains(files, f) {
			b, _ := os.ReadFile(f.Name())
			return b
		}
		return nil
	}
	p.stdout, p.stderr = read(cmd.Stdout), read(cmd.Stderr)
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			p.rssKB = ru.Maxrss
		}
	}
	if rest, kb, ok := cutRSS(p.stderr); ok {
		p.stderr, p.rssKB = rest, kb
	}
	if err != nil {
		return p, fmt.Errorf("%s: %w: %s", procName(cmd), err, lastLines(p.stderr, 5))
	}
	return p, nil
}

// procName is the program cmd runs, looking through the GNU time wrapper.
func procName(cmd *exec.Cmd) string {
	args := cmd.Args
	if len(args) > 3 && args[1] == "-f" && strings.HasPrefix(args[2], rssMarker) {
		args = args[3:]
	}
	return filepath.Base(args[0])
}

// orchSummary is the last line of `orch run --json`.
type orchSummary struct {
	Event        string `json:"event"`
	Hosts        int    `json:"hosts"`
	OK           int    `json:"ok"`
	Changed      int    `json:"changed"`
	Failed       int    `json:"failed"`
	Unreachable  int    `json:"unreachable"`
	TasksChanged int    `json:"tasks_changed"`
	Exchanges    int64  `json:"exchanges"`
	DurationMS   int64  `json:"duration_ms"`
}

// orchEvent holds the fields of other events that the bench reads.
type orchEvent struct {
	Event     string `json:"event"`
	Host      string `json:"host"`
	Status    string `json:"status"`
	Msg       string `json:"msg"`
	Exchanges int64  `json:"exchanges"`
	ConnectMS int64  `json:"connect_ms"`
	CheckMS   int64  `json:"check_ms"`
	ApplyMS   int64  `json:"apply_ms"`
}

// orchRun is what the bench reads from `orch run --json`.
type orchRun struct {
	summary   orchSummary
	maxHostEx int64
	failure   string // the first failed or unreachable host's message
	times     orchTimes
}

func (s *setup) runOrch(ctx context.Context) (outcome, error) {
	state := filepath.Join(s.dir, "orch-state")
	cmd := measured(ctx, s.timeBin, s.orchBin, "run", s.plan, "-i", s.inventory, "--json",
		"--known-hosts", s.knownHosts, "--host-key-check", "strict",
		"--forks", strconv.Itoa(s.hosts))
	// A 60 s connect timeout, as Ansible's (ansible.cfg timeout): on this
	// loaded machine, handshakes with many sshd's at once can take more
	// than the 10 s defaults, and an unreachable host fails the run.
	cmd.Args = append(cmd.Args, "--connect-timeout", "60s")
	cmd.Args = append(cmd.Args, s.orchArgs...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "ORCH_STATE="+state)
	p, runErr := runProc(cmd)
	o := outcome{Wall: p.wall, CPU: p.cpu, PeakRSSKB: p.rssKB}
	r, err := parseOrch(p.stdout)
	if err == nil && runErr != nil {
		err = runErr
	}
	if err != nil {
		return o, err
	}
	sum := r.summary
	if sum.Failed > 0 || sum.Unreachable > 0 || sum.Hosts != s.hosts {
		return o, fmt.Errorf("%d hosts, %d failed, %d unreachable: %s", sum.Hosts, sum.Failed, sum.Unreachable, r.failure)
	}
	o.Changed, o.Exchanges, o.MaxHostEx, o.Orch = sum.TasksChanged, sum.Exchanges, r.maxHostEx, &r.times
	return o, nil
}

// parseOrch reads orch's JSON Lines.
func parseOrch(out []byte) (orchRun, error) {
	var r orchRun
	var connect, check, apply []int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	found := false
	for sc.Scan() {
		line := sc.Bytes()
		var e orchEvent
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		switch e.Event {
		case "host_done":
			r.maxHostEx = max(r.maxHostEx, e.Exchanges)
			connect, check, apply = append(connect, e.ConnectMS), append(check, e.CheckMS), append(apply, e.ApplyMS)
			if r.failure == "" && (e.Status == "failed" || e.Status == "unreachable") {
				r.failure = e.Host + ": " + e.Msg
			}
		case "summary":
			if err := json.Unmarshal(line, &r.summary); err != nil {
				return r, err
			}
			found = true
		}
	}
	if !found {
		return r, fmt.Errorf("no summary event in orch's output")
	}
	r.times = orchTimes{RunMS: r.summary.DurationMS}
	r.times.ConnectP50, r.times.ConnectMax = p50max(connect)
	r.times.CheckP50, r.times.CheckMax = p50max(check)
	r.times.ApplyP50, r.times.ApplyMax = p50max(apply)
	return r, nil
}

func p50max(xs []int64) (p50, most int64) {
	if len(xs) == 0 {
		return 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2], s[len(s)-1]
}

func (s *setup) sshArgs(h *sshdtest.Host, remote ...string) []string {
	args := []string{"-i", s.fleet.ClientKey, "-o", "IdentitiesOnly=yes"}
	args = append(args, sshTrustArgs(s.fleet)...)
	args = append(args, "-p", strconv.Itoa(h.Port), s.fleet.User+"@"+h.IP)
	return append(args, remote...)
}

// runFloor starts one `ssh host sh -s < script` per host, all at once, and
// waits for the last.
func (s *setup) runFloor(ctx context.Context) (outcome, error) {
	return s.sshAll(ctx, func(h *sshdtest.Host) (*exec.Cmd, error) {
		script, err := os.Open(s.floorScript(h.Name))
		if err != nil {
			return nil, err
		}
		cmd := measured(ctx, s.timeBin, "ssh", s.sshArgs(h, "sh", "-s")...)
		cmd.Stdin = script
		return cmd, nil
	})
}

// runSSHTrue is the bare cost of one ssh login: `ssh host true` on every
// host at once (S4 has one host).
func (s *setup) runSSHTrue(ctx context.Context) (outcome, error) {
	return s.sshAll(ctx, func(h *sshdtest.Host) (*exec.Cmd, error) {
		return measured(ctx, s.timeBin, "ssh", s.sshArgs(h, "true")...), nil
	})
}

var changedLine = regexp.MustCompile(`(?m)^changed=(\d+)$`)

// sshAll runs one ssh per host in parallel. CPU is the sum over the ssh
// processes, peak RSS the largest one.
func (s *setup) sshAll(ctx context.Context, mk func(h *sshdtest.Host) (*exec.Cmd, error)) (outcome, error) {
	cmds := make([]*exec.Cmd, len(s.fleet.Hosts))
	for i, h := range s.fleet.Hosts {
		cmd, err := mk(h)
		if err != nil {
			return outcome{}, err
		}
		cmds[i] = cmd
	}
	procs := make([]proc, len(cmds))
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, cmd := range cmds {
		wg.Go(func() {
			procs[i], errs[i] = runProc(cmd)
			if f, ok := cmd.Stdin.(*os.File); ok {
				f.Close()
			}
		})
	}
	wg.Wait()
	o := outcome{Wall: time.Since(t0)}
	for i, p := range procs {
		o.CPU += p.cpu
		o.PeakRSSKB = max(o.PeakRSSKB, p.rssKB)
		if errs[i] != nil {
			errs[i] = fmt.Errorf("%s: %w", s.fleet.Hosts[i].Name, errs[i])
			continue
		}
		if m := changedLine.FindSubmatch(p.stdout); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			o.Changed += n
		}
	}
	return o, errors.Join(errs...)
}

// recapLine is one host's line of Ansible's PLAY RECAP.
var recapLine = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// runAnsible runs ansible-playbook with forks equal to the host count. Each
// run gets a fresh ControlPath directory, and the ControlPersist masters it
// leaves are ended afterwards, so no run reuses another's connections. With
// mitogen, the strategy is Mitogen's mitogen_linear: one ssh connection
// per host running Mitogen's Python agent, which ends with the run.
func (s *setup) runAnsible(ctx context.Context, mitogen bool) (outcome, error) {
	name := ansibleName
	if mitogen {
		name = mitogenName
	}
	adir := filepath.Join(s.dir, name)
	cp := filepath.Join(adir, fmt.Sprintf("cp%d", s.runs))
	for _, d := range []string{adir, cp, filepath.Join(adir, "home"), filepath.Join(adir, "local-tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return outcome{}, err
		}
	}
	cfg := filepath.Join(adir, "ansible.cfg")
	if err := os.WriteFile(cfg, []byte(ansibleConfig(s.hosts, adir, mitogen)), 0o644); err != nil {
		return outcome{}, err
	}
	defer s.closeControlMasters(cp)
	// Output goes to a file: a ControlPersist master that inherited a pipe
	// would keep it open long after ansible-playbook exits.
	logPath := filepath.Join(adir, fmt.Sprintf("run%d.log", s.runs))
	log, err := os.Create(logPath)
	if err != nil {
		return outcome{}, err
	}
	defer log.Close()
	cmd := measured(ctx, s.timeBin, "ansible-playbook", "-i", s.inventory, s.playbook)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(),
		"ANSIBLE_CONFIG="+cfg,
		"ANSIBLE_HOME="+filepath.Join(adir, "home"),
		"ANSIBLE_SSH_CONTROL_PATH_DIR="+cp,
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORCE_COLOR=0",
	)
	p, runErr := runProc(cmd)
	o := outcome{Wall: p.wall, CPU: p.cpu, PeakRSSKB: p.rssKB}
	out, _ := os.ReadFile(logPath)
	if _, kb, ok := cutRSS(out); ok {
		o.PeakRSSKB = kb
	}
	if runErr != nil {
		return o, fmt.Errorf("%w; see %s: %s", runErr, logPath, lastLines(out, 8))
	}
	hosts := 0
	for _, m := range recapLine.FindAllSubmatch(out, -1) {
		hosts++
		changed, _ := strconv.Atoi(string(m[3]))
		unreachable, _ := strconv.Atoi(string(m[4]))
		failed, _ := strconv.Atoi(string(m[5]))
		if unreachable+failed > 0 {
			return o, fmt.Errorf("%s: %d unreachable, %d failed; see %s", m[1], unreachable, failed, logPath)
		}
		o.Changed += changed
	}
	if hosts != s.hosts {
		return o, fmt.Errorf("recap lists %d hosts, want %d; see %s", hosts, s.hosts, logPath)
	}
	return o, nil
}

// closeControlMasters asks every ControlPersist master in dir to exit.
func (s *setup) closeControlMasters(dir string) {
	socks, _ := os.ReadDir(dir)
	var wg sync.WaitGroup
	for _, e := range socks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := command(ctx, "ssh", "-o", "ControlPath="+filepath.Join(dir, e.Name()), "-O", "exit", "bench-control-master")
			cmd.Run()
		})
	}
	wg.Wait()
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// mitogenMissing says why Ansible cannot run with Mitogen's strategy, or
// returns "". ansible-playbook runs under its own interpreter (its #! line),
// so the check asks that one, not whatever python3 comes first in PATH.
func mitogenMissing(ctx context.Context) string {
	py := ansiblePython()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := exec.CommandContext(ctx, py, "-c", "import ansible_mitogen.plugins.strategy.mitogen_linear").Run(); err != nil {
		return fmt.Sprintf("%s cannot import ansible_mitogen (%v)", py, err)
	}
	return ""
}

// ansiblePython is the interpreter on ansible-playbook's #! line, or
// /usr/bin/python3.
func ansiblePython() string {
	py := "/usr/bin/python3"
	path, err := exec.LookPath("ansible-playbook")
	if err != nil {
		return py
	}
	f, err := os.Open(path)
	if err != nil {
		return py
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	if rest, ok := strings.CutPrefix(line, "#!"); ok {
		if fields := strings.Fields(rest); len(fields) > 0 && filepath.IsAbs(fields[0]) && !strings.HasSuffix(fields[0], "/env") {
			return fields[0]
		}
	}
	return py
}
