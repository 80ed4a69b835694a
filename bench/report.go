package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// results is the JSON file the bench writes.
type results struct {
	Conditions conditions    `json:"conditions"`
	Phases     []phaseResult `json:"phases"`
	Goals      []goal        `json:"goals"`
	CostCurve  []curvePoint  `json:"cost_curve,omitempty"`
	Table      string        `json:"table"`
}

// conditions record what the numbers were measured on.
type conditions struct {
	Date       string `json:"date"`
	Commit     string `json:"commit,omitempty"`
	Dirty      bool   `json:"dirty,omitempty"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	CPUs       int    `json:"cpus"`
	MemTotal   string `json:"mem_total,omitempty"`
	Kernel     string `json:"kernel,omitempty"`
	LoadAvg    string `json:"loadavg_at_start,omitempty"`
	LoadAvgEnd string `json:"loadavg_at_end,omitempty"`
	OpenSSH    string `json:"openssh,omitempty"`        // the client, ssh -V
	OpenSSHd   string `json:"openssh_server,omitempty"` // the openssh-server package
	Ansible    string `json:"ansible,omitempty"`        // ansible-playbook --version, first line
	AnsiblePy  string `json:"ansible_python,omitempty"` // the interpreter ansible-playbook runs on
	Mitogen    string `json:"mitogen,omitempty"`        // mitogen.__version__ and the ansible-mitogen package
	RSSMethod  string `json:"rss_method"`
	Sessions   string `json:"sessions"` // what the hosts' login shells read at start-up
	// AccountRC is what the account's own ~/.bashrc would do in every
	// session if Sessions let it run.
	AccountRC    string  `json:"account_rc,omitempty"`
	Runs         int     `json:"runs"`
	AnsibleRuns  int     `json:"ansible_runs"`
	MitogenRuns  int     `json:"mitogen_runs"`
	Quick        bool    `json:"quick,omitempty"`
	Slow         bool    `json:"slow,omitempty"`
	TotalSeconds float64 `json:"total_seconds"`
	// Skipped lists scenarios left out, and why.
	Skipped []string `json:"skipped,omitempty"`
	// S5Targets says how S5's lab machines were prepared.
	S5Targets string `json:"s5_targets,omitempty"`
}

// phaseResult is one scenario's first run or rerun.
type phaseResult struct {
	Scenario    string             `json:"scenario"`
	Phase       string             `json:"phase"` // first or rerun
	Hosts       int                `json:"hosts"`
	Tasks       int                `json:"tasks_per_host"`
	Description string             `json:"description"`
	LoadBefore  string             `json:"loadavg_before,omitempty"`
	LoadAfter   string             `json:"loadavg_after,omitempty"`
	Contenders  []contenderSummary `json:"contenders"`
	Ratios      []ratio            `json:"ratios"`
	// Shared is a fixed cost inside every contender's run, measured apart
	// in the same run (S5's first run: nginx's restart through its init
	// script); the ratios named "… aside" take it out of both sides.
	Shared *sharedCost `json:"shared_cost,omitempty"`
}

// sharedCost is a cost every contender pays alike, per run.
type sharedCost struct {
	What   string    `json:"what"`
	Median float64   `json:"median_s"`
	Values []float64 `json:"values_s"`
}

// setShared records the shared cost and adds, for each ratio, the same
// ratio with the cost taken out of both runs of each pair.
func (pr *phaseResult) setShared(what string, values []float64) {
	pr.Shared = &sharedCost{What: what, Median: median(values), Values: values}
	c := pr.Shared.Median
	for _, p := range ratioPairs {
		a, b := pr.contender(p[0]), pr.contender(p[1])
		if a == nil || b == nil {
			continue
		}
		r := ratio{Name: p[0] + "/" + p[1] + ", " + what + " aside"}
		for _, sa := range a.Samples {
			for _, sb := range b.Samples {
				if sa.Run == sb.Run && sb.WallS > c {
					r.Values = append(r.Values, (sa.WallS-c)/(sb.WallS-c))
				}
			}
		}
		if r.Pairs = len(r.Values); r.Pairs > 0 {
			r.Median = median(r.Values)
			pr.Ratios = append(pr.Ratios, r)
		}
	}
}

// contenderSummary condenses one contender's runs of a phase.
type contenderSummary struct {
	Name    string  `json:"name"`
	Runs    int     `json:"runs"`
	MedianS float64 `json:"median_s"`
	MinS    float64 `json:"min_s"`
	MaxS    float64 `json:"max_s"`
	CPUS    float64 `json:"cpu_s_median"`
	// PeakRSSMB is the largest controller process over all runs.
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// ExchangesPerHost is orch's summary exchanges over the host count
	// (median); MaxHostExchanges the most of any single host in any run.
	ExchangesPerHost float64  `json:"exchanges_per_host,omitempty"`
	MaxHostExchanges int64    `json:"max_host_exchanges,omitempty"`
	Changed          int      `json:"changed_per_run"`
	Samples          []sample `json:"samples"`
}

// sample is one timed run.
type sample struct {
	Run              int        `json:"run"`
	WallS            float64    `json:"wall_s"`
	CPUS             float64    `json:"cpu_s"`
	PeakRSSMB        float64    `json:"peak_rss_mb"`
	Changed          int        `json:"changed"`
	Exchanges        int64      `json:"exchanges,omitempty"`
	ExchangesPerHost float64    `json:"exchanges_per_host,omitempty"`
	MaxHostExchanges int64      `json:"max_host_exchanges,omitempty"`
	Orch             *orchTimes `json:"orch_times,omitempty"`
}

func newSample(run int, o outcome, hosts int) sample {
	s := sample{
		Run:       run,
		WallS:     o.Wall.Seconds(),
		CPUS:      o.CPU.Seconds(),
		PeakRSSMB: float64(o.PeakRSSKB) / 1024,
		Changed:   o.Changed,
		Exchanges: o.Exchanges,
		Orch:      o.Orch,
	}
	if o.Exchanges > 0 {
		s.ExchangesPerHost = float64(o.Exchanges) / float64(hosts)
		s.MaxHostExchanges = o.MaxHostEx
	}
	return s
}

// ratio is the median of A/B over the runs both contenders made with the
// same index, which ran back to back.
type ratio struct {
	Name   string    `json:"name"` // "A/B"
	Median float64   `json:"median"`
	Pairs  int       `json:"pairs"`
	Values []float64 `json:"values"`
}

// ratioPairs are the ratios the report computes when both sides ran.
var ratioPairs = [][2]string{
	{ansibleName, orchName},
	{mitogenName, orchName},
	{ansibleName, mitogenName},
	{orchName, floorName},
	{orchName, sshTrueName},
	{floorName, sshTrueName},
}

func (pr *phaseResult) finish(contenders []string, samples map[string][]sample) {
	pr.Contenders, pr.Ratios = nil, nil
	for _, c := range contenders {
		ss := samples[c]
		if len(ss) == 0 {
			continue
		}
		cs := contenderSummary{Name: c, Runs: len(ss), Samples: ss, Changed: ss[0].Changed}
		walls := pick(ss, func(s sample) float64 { return s.WallS })
		cs.MedianS, cs.MinS, cs.MaxS = median(walls), slices.Min(walls), slices.Max(walls)
		cs.CPUS = median(pick(ss, func(s sample) float64 { return s.CPUS }))
		cs.PeakRSSMB = slices.Max(pick(ss, func(s sample) float64 { return s.PeakRSSMB }))
		if c == orchName {
			cs.ExchangesPerHost = median(pick(ss, func(s sample) float64 { return s.ExchangesPerHost }))
			for _, s := range ss {
				cs.MaxHostExchanges = max(cs.MaxHostExchanges, s.MaxHostExchanges)
			}
		}
		pr.Contenders = append(pr.Contenders, cs)
	}
	for _, p := range ratioPairs {
		a, b := samples[p[0]], samples[p[1]]
		r := ratio{Name: p[0] + "/" + p[1]}
		for _, sa := range a {
			for _, sb := range b {
				if sa.Run == sb.Run && sb.WallS > 0 {
					r.Values = append(r.Values, sa.WallS/sb.WallS)
				}
			}
		}
		if r.Pairs = len(r.Values); r.Pairs > 0 {
			r.Median = median(r.Values)
			pr.Ratios = append(pr.Ratios, r)
		}
	}
}

// medianSample is the run whose wall time is the median (the lower one of
// an even count).
func medianSample(ss []sample) sample {
	s := slices.Clone(ss)
	slices.SortFunc(s, func(a, b sample) int { return cmp.Compare(a.WallS, b.WallS) })
	return s[(len(s)-1)/2]
}

func pick(ss []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (pr *phaseResult) contender(name string) *contenderSummary {
	for i := range pr.Contenders {
		if pr.Contenders[i].Name == name {
			return &pr.Contenders[i]
		}
	}
	return nil
}

func (pr *phaseResult) ratio(name string) *ratio {
	for i := range pr.Ratios {
		if pr.Ratios[i].Name == name {
			return &pr.Ratios[i]
		}
	}
	return nil
}

// goal is one of the targets and whether this run met it.
type goal struct {
	Scenario string  `json:"scenario"`
	What     string  `json:"what"`
	Target   string  `json:"target"`
	Value    float64 `json:"value"`
	Met      bool    `json:"met"`
}

// evaluateGoals checks the goals against the phases that ran.
// Goals whose measurements are missing are left out.
func evaluateGoals(phases []phaseResult) []goal {
	var goals []goal
	find := func(sc, phase string) *phaseResult {
		for i := range phases {
			if phases[i].Scenario == sc && phases[i].Phase == phase {
				return &phases[i]
			}
		}
		return nil
	}
	ratioGoal := func(sc, name string, atMost bool, target float64) {
		phaseRatioGoal(&goals, find(sc, "rerun"), name, atMost, target)
	}
	exchangesGoal := func(sc string) {
		if pr := find(sc, "rerun"); pr != nil {
			if c := pr.contender(orchName); c != nil {
				v := float64(c.MaxHostExchanges)
				goals = append(goals, goal{Scenario: sc, What: "orch exchanges per host (most of any host)", Target: "≤ 2", Value: v, Met: v <= 2})
			}
		}
	}
	ratioGoal("S1", "mitogen/orch", false, 10)
	ratioGoal("S1", "ansible/orch", false, 100)
	ratioGoal("S1", "orch/floor", true, 1)
	exchangesGoal("S1")
	phaseRatioGoal(&goals, find("S1", "first"), "orch/floor", true, 0.4) // S7
	exchangesGoal("S3")
	ratioGoal("S2", "orch/floor", true, 1)
	if pr := find("S2", "rerun"); pr != nil {
		if c := pr.contender(orchName); c != nil {
			goals = append(goals, goal{Scenario: "S2", What: "orch peak RSS MB", Target: "≤ 150", Value: c.PeakRSSMB, Met: c.PeakRSSMB <= 150})
		}
	}
	ratioGoal("S4", "orch/ssh-true", true, 1.5)
	ratioGoal("S6", "orch/floor", true, 0.5)
	if pr := find("S6", "rerun"); pr != nil {
		if c := pr.contender(orchName); c != nil {
			goals = append(goals, goal{Scenario: "S6", What: "orch peak RSS MB", Target: "≤ 200", Value: c.PeakRSSMB, Met: c.PeakRSSMB <= 200})
		}
		if pr2 := find("S2", "rerun"); pr2 != nil {
			c6, c2 := pr.contender(orchName), pr2.contender(orchName)
			if c6 != nil && c2 != nil && c2.CPUS > 0 {
				v := (c6.CPUS / float64(pr.Hosts)) / (c2.CPUS / float64(pr2.Hosts))
				goals = append(goals, goal{Scenario: "S6", What: fmt.Sprintf("orch CPU per host, %d hosts / 200 hosts", pr.Hosts), Target: "0.8 to 1.2", Value: v, Met: v >= 0.8 && v <= 1.2})
			}
		}
	}
	for _, phase := range []string{"first", "rerun"} {
		pr := find("S5", phase)
		phaseRatioGoal(&goals, pr, "mitogen/orch", false, 10)
		if pr == nil {
			continue
		}
		if c := pr.contender(orchName); c != nil {
			limit := 1.0
			if phase == "first" {
				limit = 3
			}
			v := float64(c.MaxHostExchanges)
			goals = append(goals, goal{Scenario: "S5", What: "orch exchanges per host, " + phase + " (most of any host)", Target: fmt.Sprintf("≤ %g", limit), Value: v, Met: v <= limit})
		}
	}
	return goals
}

// phaseRatioGoal appends the goal that pr's ratio name is at most (or at
// least) target, if pr measured it.
func phaseRatioGoal(goals *[]goal, pr *phaseResult, name string, atMost bool, target float64) {
	if pr == nil {
		return
	}
	r := pr.ratio(name)
	if r == nil {
		return
	}
	g := goal{Scenario: pr.Scenario, What: name + " " + pr.Phase + " time", Value: r.Median}
	if atMost {
		g.Target, g.Met = fmt.Sprintf("≤ %g", target), r.Median <= target
	} else {
		g.Target, g.Met = fmt.Sprintf("≥ %g", target), r.Median >= target
	}
	*goals = append(*goals, g)
}

// table renders the results as plain text.
func (r *results) table() string {
	var b strings.Builder
	c := r.Conditions
	fmt.Fprintf(&b, "orch bench, %s, commit %s%s, %s, %d CPUs, %s, load at start %s\n",
		c.Date, or(c.Commit, "?"), map[bool]string{true: " (dirty)"}[c.Dirty], c.OS, c.CPUs, c.Kernel, c.LoadAvg)
	fmt.Fprintf(&b, "%s; %s (%s); %s on %s; %s; orch/floor %d runs, Ansible %d run(s), Mitogen %d run(s)%s\n",
		c.GoVersion, or(c.OpenSSH, "OpenSSH ?"), or(c.OpenSSHd, "server ?"), or(c.Ansible, "no Ansible"), or(c.AnsiblePy, "?"),
		or(c.Mitogen, "no Mitogen"), c.Runs, c.AnsibleRuns, c.MitogenRuns, map[bool]string{true: ", quick"}[c.Quick])
	fmt.Fprintf(&b, "host sessions: %s; %s\nload average at end %s\n\n", c.Sessions, or(c.AccountRC, "?"), or(c.LoadAvgEnd, "?"))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tphase\thosts×tasks\tcontender\truns\tmedian s\tmin s\tcpu s\tpeak RSS MB\texch/host\tchanged\t")
	for _, pr := range r.Phases {
		for _, cs := range pr.Contenders {
			ex := "-"
			if cs.Name == orchName {
				ex = fmt.Sprintf("%.1f", cs.ExchangesPerHost)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d×%d\t%s\t%d\t%.3f\t%.3f\t%.2f\t%.1f\t%s\t%d\t\n",
				pr.Scenario, pr.Phase, pr.Hosts, pr.Tasks, cs.Name, cs.Runs, cs.MedianS, cs.MinS, cs.CPUS, cs.PeakRSSMB, ex, cs.Changed)
		}
	}
	tw.Flush()
	b.WriteString("\nratios (median of per-run pairs):\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, pr := range r.Phases {
		for _, ra := range pr.Ratios {
			fmt.Fprintf(tw, "  %s %s\t%s\t%s\t(%d pairs)\n", pr.Scenario, pr.Phase, ra.Name, fmtRatio(ra.Median), ra.Pairs)
		}
	}
	tw.Flush()
	for _, pr := range r.Phases {
		if sc := pr.Shared; sc != nil {
			fmt.Fprintf(&b, "  %s %s: %s, paid alike by every contender, took %.3f s (median of %d, measured apart in this run)\n",
				pr.Scenario, pr.Phase, sc.What, sc.Median, len(sc.Values))
		}
	}
	first := true
	for _, pr := range r.Phases {
		cs := pr.contender(orchName)
		if cs == nil {
			continue
		}
		smp := medianSample(cs.Samples)
		if smp.Orch == nil {
			continue
		}
		if first {
			b.WriteString("\norch time breakdown (its median run; per-host phases as p50/max over hosts, ms):\n")
			tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
			first = false
		}
		t := smp.Orch
		fmt.Fprintf(tw, "  %s %s\tprocess %.0f\trun %d\tconnect %d/%d\tcheck %d/%d\tapply %d/%d\n",
			pr.Scenario, pr.Phase, smp.WallS*1000, t.RunMS, t.ConnectP50, t.ConnectMax, t.CheckP50, t.CheckMax, t.ApplyP50, t.ApplyMax)
	}
	if !first {
		tw.Flush()
	}
	if curve := r.costCurve(); len(curve) > 1 {
		b.WriteString("\ncost curve (orch's controller on no-change reruns of 21 tasks per host):\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\thosts\tcpu s\tcpu ms/host\tpeak RSS MB\tRSS MB/host\t")
		for _, p := range curve {
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.1f\t%.3f\t\n", p.Scenario, p.Hosts, p.CPUS, p.CPUMSPerHost, p.PeakRSSMB, p.PeakRSSMB/float64(p.Hosts))
		}
		tw.Flush()
	}
	b.WriteString("\nload average (1, 5, 15 min) before and after each phase:\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, pr := range r.Phases {
		fmt.Fprintf(tw, "  %s %s\t%s\t→ %s\n", pr.Scenario, pr.Phase, or(pr.LoadBefore, "?"), or(pr.LoadAfter, "?"))
	}
	tw.Flush()
	if len(r.Goals) > 0 {
		b.WriteString("\ngoals:\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, g := range r.Goals {
			met := "MISSED"
			if g.Met {
				met = "met"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\ttarget %s\t%s\n", g.Scenario, g.What, fmtRatio(g.Value), g.Target, met)
		}
		tw.Flush()
	}
	return b.String()
}

func fmtRatio(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (r *results) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// gatherConditions records the machine, the tools' versions and the commit.
// Every probe is best effort.
func gatherConditions(ctx context.Context, root string, o options) conditions {
	c := conditions{
		Date:        time.Now().UTC().Format(time.RFC3339),
		GoVersion:   runtime.Version(),
		OS:          runtime.GOOS + "/" + runtime.GOARCH,
		CPUs:        runtime.NumCPU(),
		Runs:        o.runs,
		AnsibleRuns: o.ansibleRuns,
		MitogenRuns: o.mitogenRuns,
		Quick:       o.quick,
		Slow:        o.slow,
	}
	if o.noAnsible {
		c.AnsibleRuns = 0
	}
	if o.noMitogen {
		c.MitogenRuns = 0
	}
	c.Sessions, c.AccountRC = sessionConditions(o.loginRC)
	c.RSSMethod = "GNU time %M: each controller process's own peak"
	if gnuTime() == "" {
		c.RSSMethod = "wait4 ru_maxrss: an upper bound that includes the bench's own peak (GNU time missing)"
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		c.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	c.LoadAvg = loadAvg()
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				c.MemTotal = strings.TrimSpace(rest)
			}
		}
	}
	output := func(dir string, name string, args ...string) string {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		out, _ := cmd.CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	if commit := output(root, "git", "rev-parse", "--short=12", "HEAD"); len(commit) == 12 {
		c.Commit = commit
		// Untracked files count: the orch binary is built from the tree.
		// The bench's own files do not.
		c.Dirty = output(root, "git", "--no-optional-locks", "status", "--porcelain", "--", ".", ":!bench") != ""
	}
	c.OpenSSH, _, _ = strings.Cut(output("", "ssh", "-V"), ",")
	if v := output("", "dpkg-query", "-W", "-f", "${Version}", "openssh-server"); v != "" && !strings.Contains(v, " ") {
		c.OpenSSHd = "openssh-server " + v
	}
	if !o.noAnsible {
		first, _, _ := strings.Cut(output("", "ansible-playbook", "--version"), "\n")
		c.Ansible = first
		py := ansiblePython()
		c.AnsiblePy = py + " " + strings.TrimPrefix(output("", py, "--version"), "Python ")
	}
	if !o.noMitogen {
		v := output("", ansiblePython(), "-c", "import mitogen; print('.'.join(map(str, mitogen.__version__)))")
		c.Mitogen = "mitogen " + v
		if deb := output("", "dpkg-query", "-W", "-f", "${Version}", "ansible-mitogen"); deb != "" && !strings.Contains(deb, " ") {
			c.Mitogen += " (Debian ansible-mitogen " + deb + ")"
		}
	}
	return c
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute averages, or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// sessionConditions say which HOME the hosts' sessions get, and what the
// account's own ~/.bashrc would do in each session: on the project's
// development machine, root's runs `pyenv init`.
func sessionConditions(loginRC bool) (sessions, accountRC string) {
	home := "~"
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		home = u.HomeDir
	}
	rc := filepath.Join(home, ".bashrc")
	switch b, err := os.ReadFile(rc); {
	case err != nil:
		accountRC = rc + ": none"
	case bytes.Contains(b, []byte("pyenv init")):
		accountRC = rc + " runs `pyenv init`"
	default:
		accountRC = fmt.Sprintf("%s: %d bytes, no pyenv", rc, len(b))
	}
	if loginRC {
		return "the account's own HOME (" + home + "): its shell start-up files run in every session (-login-rc)", accountRC
	}
	return "empty HOME (sshd SetEnv HOME=<fleet>/home): the account's shell start-up files do not run", accountRC
}

// curvePoint is orch's controller cost at one fleet size.
type curvePoint struct {
	Scenario     string  `json:"scenario"`
	Hosts        int     `json:"hosts"`
	CPUS         float64 `json:"cpu_s"`
	CPUMSPerHost float64 `json:"cpu_ms_per_host"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`
}

// costCurve is orch's CPU and peak RSS on the 21-task reruns (S1, S2,
// S6), by host count.
func (r *results) costCurve() []curvePoint {
	var out []curvePoint
	for _, pr := range r.Phases {
		if pr.Phase != "rerun" || pr.Tasks != 21 || !slices.Contains([]string{"S1", "S2", "S6"}, pr.Scenario) {
			continue
		}
		if c := pr.contender(orchName); c != nil {
			out = append(out, curvePoint{Scenario: pr.Scenario, Hosts: pr.Hosts, CPUS: c.CPUS, CPUMSPerHost: c.CPUS * 1000 / float64(pr.Hosts), PeakRSSMB: c.PeakRSSMB})
		}
	}
	slices.SortFunc(out, func(a, b curvePoint) int { return cmp.Compare(a.Hosts, b.Hosts) })
	return out
}
