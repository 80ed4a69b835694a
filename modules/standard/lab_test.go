package standard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab"
	"github.com/orch-dev/orch/lab/labtest"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/plan"
	"github.com/orch-dev/orch/testkit/require"
)

// The system modules' live tests run on a lab of their own: real Debian 12
// containers (sysvinit, as the lab image has it) reached over SSH as the
// non-root user deploy, with sudo (become=True), their apt going through
// the lab's apt proxy. One lab serves every test of this binary; TestMain
// takes it down.
var (
	labOnce    sync.Once
	testLab    *lab.Lab
	labOpts    lab.Options
	skipReason string
)

// serveCloudEnv makes this test binary act as the lab's cloud process.
const serveCloudEnv = "ORCH_STANDARD_TEST_SERVE_CLOUD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(serveCloudEnv); dir != "" {
		if err := labtest.ServeCloud(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := exec.Command("docker", "info").Run(); err != nil {
		skipReason = "no docker engine (docker info failed)"
		return m.Run()
	}
	state, err := os.MkdirTemp("", "orch-lab-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(state)
	// The prefix of lab/lab_test.go, so that its sweep of labs whose test
	// binary died also removes this binary's.
	labOpts = lab.Options{
		Dir:          state,
		Prefix:       fmt.Sprintf("orch-labtest-%d", os.Getpid()),
		Logf:         func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) },
		CloudCommand: []string{os.Args[0]},
		CloudEnv:     []string{serveCloudEnv + "=" + state},
	}
	code := m.Run()
	if testLab != nil {
		if err := lab.Down(context.Background(), labOpts); err != nil {
			fmt.Fprintln(os.Stderr, "lab down:", err)
			return 1
		}
	}
	return code
}

func needLab(t *testing.T) *lab.Lab {
	t.Helper()
	labOnce.Do(func() {
		if skipReason != "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		l, err := lab.Up(ctx, labOpts)
		if err != nil {
			skipReason = "lab up failed: " + err.Error()
			lab.Down(context.Background(), labOpts)
			return
		}
		testLab = l
	})
	if testLab == nil {
		if strings.HasPrefix(skipReason, "no docker") {
			require.Missing(t, skipReason)
		}
		t.Fatal(skipReason)
	}
	return testLab
}

// labInventory is the lab's hosts, logged into as deploy, whose sudo
// needs no password.
func labInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	hosts, err := needLab(t).Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.New()
	for _, h := range hosts {
		h.User = "deploy"
		if err := inv.Add(h); err != nil {
			t.Fatal(err)
		}
	}
	return inv
}

// sh runs a script as root in a lab machine, outside orch: to set up and
// to look.
func sh(t *testing.T, host, script string) string {
	t.Helper()
	out, err := exec.Command("docker", "exec", labOpts.Prefix+"-"+host, "/bin/sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", host, script, err, out)
	}
	return strings.TrimSpace(string(out))
}

// result is one run: its report, its events and its error.
type result struct {
	rep    *engine.Report
	events []engine.Event
	err    error
}

// exchanges is how many exchanges the run had with host.
func (r result) exchanges(host string) int64 {
	for _, h := range r.rep.Hosts {
		if h.Name == host {
			return h.Exchanges
		}
	}
	return -1
}

// tasks lists the task events of host with the given status ("" any).
func (r result) tasks(host string, status engine.Status) []engine.Event {
	var out []engine.Event
	for _, e := range r.events {
		if e.Event == "task" && e.Host == host && (status == "" || e.Status == status) {
			out = append(out, e)
		}
	}
	return out
}

func (r result) handlerRuns(host string) int {
	n := 0
	for _, e := range r.tasks(host, engine.Changed) {
		if e.Module == "handler" {
			n++
		}
	}
	return n
}

func (r result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "err %v; summary %+v\n", r.err, r.rep.Summary)
	for _, e := range r.events {
		if e.Event == "task" || e.Event == "warning" || e.Event == "host_done" {
			fmt.Fprintf(&b, "  %s %s %s %s: %s\n", e.Event, e.Host, e.Task, e.Status, e.Msg)
		}
	}
	return b.String()
}

// runner runs roles on the lab with the state (journal, pending handlers)
// of one test, so that a later run sees what an earlier one left.
type runner struct {
	t     *testing.T
	inv   *inventory.Inventory
	state string
}

func newRunner(t *testing.T) *runner {
	return &runner{t: t, inv: labInventory(t), state: t.TempDir()}
}

// run applies role (the body of a role function of h) to the hosts of
// pattern, with become=True.
func (r *runner) run(pattern, role string, check bool) result {
	r.t.Helper()
	dir := r.t.TempDir()
	src := "def role(h):\n" + indent(role) + "\ndef main(ctx):\n    ctx.apply(" + fmt.Sprintf("%q", pattern) + ", role, become = True)\n"
	file := filepath.Join(dir, "plan.star")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		r.t.Fatal(err)
	}
	p, err := plan.Load(file)
	if err != nil {
		r.t.Fatal(err)
	}
	defer p.Close()
	l := needLab(r.t)
	var res result
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res.rep, res.err = engine.Run(ctx, p, r.inv, engine.Options{
		Check:    check,
		StateDir: r.state,
		SSH:      engine.SSHOptions{KnownHosts: []string{l.KnownHostsPath()}, HostKeyCheck: "strict", NoSSHConfig: true},
		OnEvent:  func(e engine.Event) { res.events = append(res.events, e) },
	})
	if res.rep == nil {
		r.t.Fatalf("no report: %v", res.err)
	}
	return res
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = "    " + strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}

// installed is the package's dpkg status on host, "" when dpkg has none.
func installed(t *testing.T, host, name string) string {
	return sh(t, host, "dpkg-query -W -f='${db:Status-Abbrev}' "+name+" 2>/dev/null || true")
}

// TestPkgInstallRerunRemove installs a small real package (hello) through
// the lab's apt proxy, refreshing the never-refreshed cache on the way;
// reruns in one exchange without a change; removes it.
func TestPkgInstallRerunRemove(t *testing.T) {
	r := newRunner(t)
	sh(t, "ns1", "apt-get remove -y -q hello >/dev/null 2>&1 || true")
	if proxy := sh(t, "ns1", "cat "+lab.AptProxyConf); !strings.Contains(proxy, "Acquire::http::Proxy") {
		t.Fatalf("ns1 does not use the lab's apt proxy: %s", proxy)
	}
	install := `pkg(names = ["hello"], update_cache = True)`

	res := r.run("ns1", install, true)
	if res.err != nil || res.rep.Summary.TasksChanged != 1 || installed(t, "ns1", "hello") != "" {
		t.Fatalf("check mode: %s; hello %q (must not be installed)", res, installed(t, "ns1", "hello"))
	}
	res = r.run("ns1", install, false)
	if res.err != nil || res.rep.Summary.TasksChanged != 1 || res.exchanges("ns1") != 2 {
		t.Fatalf("install: want 1 change in 2 exchanges: %s", res)
	}
	if msg := res.tasks("ns1", engine.Changed)[0].Msg; msg != "refresh the apt cache (never refreshed), then install hello" {
		t.Errorf("install reason %q", msg)
	}
	if got := installed(t, "ns1", "hello"); got != "ii" {
		t.Fatalf("hello's dpkg status %q after the install", got)
	}
	res = r.run("ns1", install, false)
	if res.err != nil || res.rep.Summary.TasksChanged != 0 || res.exchanges("ns1") != 1 {
		t.Fatalf("rerun: want 0 changes in 1 exchange: %s", res)
	}
	if msg := res.tasks("ns1", engine.OK)[0].Msg; !strings.HasPrefix(msg, "installed: hello 2.10") {
		t.Errorf("rerun reason %q", msg)
	}

	remove := `pkg(names = ["hello"], state = "absent")`
	res = r.run("ns1", remove, false)
	if res.err != nil || res.rep.Summary.TasksChanged != 1 || installed(t, "ns1", "hello") == "ii" {
		t.Fatalf("remove: %s; hello %q", res, installed(t, "ns1", "hello"))
	}
	res = r.run("ns1", remove, false)
	if res.err != nil || res.rep.Summary.TasksChanged != 0 || res.exchanges("ns1") != 1 {
		t.Fatalf("remove rerun: want 0 changes in 1 exchange: %s", res)
	}
}

// TestPkgRecheckedInTheApply: a second pkg task reads a package the first
// one installs. Its check, made before the install, is confirmed on the
// host inside the apply exchange; found stale there, it is decided again
// from facts gathered in that same exchange, so the run costs no extra
// round trip.
func TestPkgRecheckedInTheApply(t *testing.T) {
	r := newRunner(t)
	sh(t, "ns1", "apt-get remove -y -q hello >/dev/null 2>&1 || true")
	role := `
		pkg(names = ["hello"], update_cache = True)
		pkg(names = ["hello"], state = "latest")`
	res := r.run("ns1", role, false)
	if res.err != nil || res.rep.Summary.TasksChanged != 1 || res.exchanges("ns1") != 2 {
		t.Fatalf("want the install alone, in 2 exchanges: %s", res)
	}
	if ok := res.tasks("ns1", engine.OK); len(ok) != 1 || !strings.HasPrefix(ok[0].Msg, "at the candidate version: hello 2.10") {
		t.Errorf("the second task was not decided again on the fresh facts: %s", res)
	}
	if res = r.run("ns1", role, false); res.err != nil || res.rep.Summary.TasksChanged != 0 || res.exchanges("ns1") != 1 {
		t.Fatalf("rerun: want 0 changes in 1 exchange: %s", res)
	}
	sh(t, "ns1", "apt-get remove -y -q hello >/dev/null 2>&1")
}

// TestPkgMissingPackage asks for a package no mirror has: the task fails
// naming it, and the host's later tasks are reported as not run.
func TestPkgMissingPackage(t *testing.T) {
	r := newRunner(t)
	sh(t, "ns2", "rm -f /tmp/orch-after-missing")
	res := r.run("ns2", `
		pkg(names = ["hello", "orch-no-such-package"], update_cache = True)
		file(path = "/tmp/orch-after-missing", content = "x\n")
		service(name = "named", state = "running")`, false)
	if res.err == nil || res.rep.Summary.Failed != 1 {
		t.Fatalf("want the host to fail: %s", res)
	}
	failed := res.tasks("ns2", engine.Failed)
	if len(failed) != 1 || !strings.Contains(failed[0].Msg, "pkg: no such package in the apt cache: orch-no-such-package") {
		t.Errorf("the failure does not name the package: %s", res)
	}
	t.Logf("the failure: %s", failed[0].Msg)
	if skipped := res.tasks("ns2", engine.Skipped); len(skipped) != 2 || !strings.Contains(skipped[0].Msg, "not run") {
		t.Errorf("later tasks: want 2 not run: %s", res)
	}
	if got := sh(t, "ns2", "[ -e /tmp/orch-after-missing ] && echo exists || echo absent"); got != "absent" {
		t.Errorf("a task after the failure ran: /tmp/orch-after-missing %s", got)
	}
	if got := installed(t, "ns2", "hello"); got == "ii" {
		t.Errorf("hello was installed although its transaction failed")
	}
}

// TestPkgLockTimeout holds dpkg's lock the way apt does (an fcntl lock on
// lock-frontend): the install waits lock_timeout, then fails naming the
// lock and its holder.
func TestPkgLockTimeout(t *testing.T) {
	r := newRunner(t)
	sh(t, "ns2", "apt-get remove -y -q hello >/dev/null 2>&1 || true")
	holder := exec.Command("docker", "exec", labOpts.Prefix+"-ns2", "perl", "-e",
		`use Fcntl; open(my $f, ">>", "/var/lib/dpkg/lock-frontend") or die; my $l = pack("s s q q i", F_WRLCK, 0, 0, 0, 0); fcntl($f, F_SETLK, $l) or die "lock: $!"; $| = 1; print "$$\n"; sleep 120`)
	out, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil || pid == 0 {
		t.Fatalf("could not take the lock: %v", err)
	}
	defer func() { sh(t, "ns2", fmt.Sprintf("kill %d", pid)); holder.Wait() }()
	res := r.run("ns2", `pkg(names = ["hello"], update_cache = True, lock_timeout = "3s")`, false)
	failed := res.tasks("ns2", engine.Failed)
	if res.err == nil || len(failed) != 1 || !strings.Contains(failed[0].Msg, "pkg: the package manager's lock was still held after 3s: /var/lib/dpkg/lock-frontend, held by process") ||
		!strings.Contains(failed[0].Msg, "(perl)") {
		t.Fatalf("want a failure naming the lock and its holder: %s", res)
	}
	t.Logf("the failure: %s", failed[0].Msg)
}

// nginxSetup makes lb's nginx log at notice level (so each reload leaves a
// "reconfiguring" line) and include the stream snippets of
// /etc/nginx/orch-test.d, then reloads it, outside orch.
func nginxSetup(t *testing.T, host string) {
	t.Helper()
	// A restart when the log level changes: the reload that changes it
	// is logged at the old level.
	sh(t, host, `set -e
mkdir -p /etc/nginx/orch-test.d
rm -f /etc/nginx/orch-test.d/*
if ! grep -q '^error_log' /etc/nginx/nginx.conf; then
	sed -i '1a error_log /var/log/nginx/error.log notice;' /etc/nginx/nginx.conf
	sed -i 's|^stream {|stream {\n\tinclude /etc/nginx/orch-test.d/*.conf;|' /etc/nginx/nginx.conf
	nginx -t -q
	service nginx restart >/dev/null
fi
service nginx status >/dev/null 2>&1 || service nginx start >/dev/null
service nginx reload >/dev/null`)
	// The reload is asynchronous: wait until the master has logged it.
	deadline := time.Now().Add(10 * time.Second)
	for reloads(t, host) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}

// reloads counts the reloads nginx's master logged (SIGHUP).
func reloads(t *testing.T, host string) int {
	var n int
	fmt.Sscan(sh(t, host, "grep -c 'signal 1 (SIGHUP) received' /var/log/nginx/error.log || true"), &n)
	return n
}

// awaitReloads waits until nginx logged want reloads in all, or fails.
// A reload's log line follows the signal by a moment; the count, not the
// time, is what is asserted.
func awaitReloads(t *testing.T, host string, want int) {
	t.Helper()
	got := reloads(t, host)
	for deadline := time.Now().Add(10 * time.Second); got < want && time.Now().Before(deadline); got = reloads(t, host) {
		time.Sleep(100 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("%s: nginx logged %d reloads, want %d", host, got, want)
	}
}

func masterPID(t *testing.T, host string) string { return sh(t, host, "cat /run/nginx.pid") }

// TestServiceStartsStoppedNginx stops nginx behind orch's back; a run
// starts it, and a rerun changes nothing in one exchange.
func TestServiceStartsStoppedNginx(t *testing.T) {
	r := newRunner(t)
	sh(t, "lb1", "service nginx stop >/dev/null; ! service nginx status >/dev/null 2>&1")
	role := `service(name = "nginx", state = "running", enabled = True)`
	res := r.run("lb1", role, false)
	if res.err != nil || res.rep.Summary.TasksChanged != 1 {
		t.Fatalf("want nginx started: %s", res)
	}
	if msg := res.tasks("lb1", engine.Changed)[0].Msg; msg != "start nginx" {
		t.Errorf("reason %q", msg)
	}
	sh(t, "lb1", "service nginx status >/dev/null")
	res = r.run("lb1", role, false)
	if res.err != nil || res.rep.Summary.TasksChanged != 0 || res.exchanges("lb1") != 1 {
		t.Fatalf("rerun: want 0 changes in 1 exchange: %s", res)
	}
}

// TestServiceEnableDisable sets boot-time start of haproxy (installed,
// disabled, stopped in the lab image) with update-rc.d, and back.
func TestServiceEnableDisable(t *testing.T) {
	r := newRunner(t)
	link := func() string { return sh(t, "ns1", "ls /etc/rc2.d | grep haproxy") }
	if got := link(); got != "K01haproxy" {
		t.Fatalf("haproxy starts as %s, want K01haproxy", got)
	}
	for _, c := range []struct{ enabled, link string }{{"True", "S01haproxy"}, {"False", "K01haproxy"}} {
		role := `service(name = "haproxy", state = "stopped", enabled = ` + c.enabled + `)`
		if res := r.run("ns1", role, false); res.err != nil || res.rep.Summary.TasksChanged != 1 || link() != c.link {
			t.Fatalf("enabled=%s: %s; link %s, want %s", c.enabled, res, link(), c.link)
		}
		if res := r.run("ns1", role, false); res.err != nil || res.rep.Summary.TasksChanged != 0 || res.exchanges("ns1") != 1 {
			t.Fatalf("enabled=%s rerun: want 0 changes in 1 exchange: %s", c.enabled, res)
		}
	}
}

// watchRole writes two stream snippets that nginx includes and watches
// their directory with a reload.
func watchRole(a, b, extra string) string {
	return fmt.Sprintf(`
		file(path = "/etc/nginx/orch-test.d/a.conf", content = "upstream orch_a { server 127.0.0.1:%s; }\n")
		file(path = "/etc/nginx/orch-test.d/b.conf", content = "upstream orch_b { server 127.0.0.1:%s; }\n")
		%s
		service(name = "nginx", state = "running", watch = ["/etc/nginx/orch-test.d/"], on_change = "reload")`, a, b, extra)
}

// TestWatchedConfigReloadsOnce changes two watched files in one run:
// nginx reloads once (its master keeps its PID: a reload, not a
// restart); a rerun, with nothing changed, does not reload it.
func TestWatchedConfigReloadsOnce(t *testing.T) {
	r := newRunner(t)
	nginxSetup(t, "lb2")
	pid, before := masterPID(t, "lb2"), reloads(t, "lb2")
	res := r.run("lb2", watchRole("1001", "1002", ""), false)
	if res.err != nil || res.rep.Summary.TasksChanged != 3 || res.handlerRuns("lb2") != 1 || res.exchanges("lb2") != 2 {
		t.Fatalf("two watched files changed: want them and one reload, in 2 exchanges: %s", res)
	}
	awaitReloads(t, "lb2", before+1)
	if got := masterPID(t, "lb2"); got != pid {
		t.Fatalf("nginx's master PID went from %s to %s: a restart, not a reload", pid, got)
	}
	res = r.run("lb2", watchRole("1001", "1002", ""), false)
	if res.err != nil || res.rep.Summary.TasksChanged != 0 || res.handlerRuns("lb2") != 0 || res.exchanges("lb2") != 1 {
		t.Fatalf("rerun: want nothing changed and no reload, in 1 exchange: %s", res)
	}
	awaitReloads(t, "lb2", before+1)
}

// TestPendingReloadAfterFailure: a task fails after a watched change, so
// the host fails before its handlers; the reload is journaled, and the
// next run, which changes nothing else, performs it.
func TestPendingReloadAfterFailure(t *testing.T) {
	r := newRunner(t)
	nginxSetup(t, "lb2")
	r.run("lb2", watchRole("2001", "2002", ""), false)
	pid, before := masterPID(t, "lb2"), reloads(t, "lb2")
	awaitReloads(t, "lb2", before)

	res := r.run("lb2", watchRole("2011", "2002", `command(cmd = "echo failing on purpose; exit 3")`), false)
	if res.err == nil || res.rep.Summary.Failed != 1 || res.handlerRuns("lb2") != 0 {
		t.Fatalf("want the host to fail before its reload: %s", res)
	}
	if got := sh(t, "lb2", "cat /etc/nginx/orch-test.d/a.conf"); !strings.Contains(got, "2011") {
		t.Fatalf("the watched change was not applied: %s", got)
	}
	pending := false
	for _, e := range res.events {
		pending = pending || e.Event == "warning" && strings.Contains(e.Msg, "the next run on this host runs them")
	}
	if !pending {
		t.Errorf("no warning about the pending reload: %s", res)
	}
	time.Sleep(500 * time.Millisecond) // a reload would have logged by now
	if got := reloads(t, "lb2"); got != before {
		t.Fatalf("nginx reloaded although its host failed first: %d reloads, want %d", got, before)
	}

	res = r.run("lb2", watchRole("2011", "2002", ""), false)
	if res.err != nil || res.handlerRuns("lb2") != 1 || res.rep.Summary.TasksChanged != 1 {
		t.Fatalf("next run: want only the pending reload: %s", res)
	}
	awaitReloads(t, "lb2", before+1)
	if got := masterPID(t, "lb2"); got != pid {
		t.Fatalf("nginx's master PID went from %s to %s: a restart, not a reload", pid, got)
	}
	res = r.run("lb2", watchRole("2011", "2002", ""), false)
	if res.err != nil || res.handlerRuns("lb2") != 0 || res.rep.Summary.TasksChanged != 0 || res.exchanges("lb2") != 1 {
		t.Fatalf("the run after: want nothing, in 1 exchange: %s", res)
	}
}

// TestRoleExchanges is the engine goal of the engine-v2 issue, on real
// hosts: a role of pkg, three files and service(watch=) costs at most 3
// exchanges per host on its first run and 1 on a rerun.
func TestRoleExchanges(t *testing.T) {
	r := newRunner(t)
	for _, lb := range []string{"lb1", "lb2"} {
		nginxSetup(t, lb)
		sh(t, lb, "apt-get remove -y -q tree >/dev/null 2>&1 || true")
	}
	role := `
		pkg(names = ["tree"], update_cache = True)
		file(path = "/etc/nginx/orch-test.d/a.conf", content = "upstream orch_a { server 127.0.0.1:3001; }\n")
		file(path = "/etc/nginx/orch-test.d/b.conf", content = "upstream orch_b { server 127.0.0.1:3002; }\n")
		file(path = "/etc/nginx/orch-test.d/c.conf", content = "upstream orch_c { server 127.0.0.1:3003; }\n")
		service(name = "nginx", state = "running", enabled = True, watch = ["/etc/nginx/orch-test.d/"], on_change = "reload")`
	res := r.run("lb", role, false)
	if res.err != nil || res.rep.Summary.TasksChanged != 2*5 {
		t.Fatalf("first run: want pkg, three files and a reload changed on both hosts: %s", res)
	}
	for _, lb := range []string{"lb1", "lb2"} {
		if n := res.exchanges(lb); n > 3 {
			t.Errorf("first run: %s took %d exchanges, want at most 3", lb, n)
		} else {
			t.Logf("first run: %s took %d exchanges", lb, n)
		}
		if res.handlerRuns(lb) != 1 {
			t.Errorf("first run: %s reloaded %d times, want once", lb, res.handlerRuns(lb))
		}
		if got := installed(t, lb, "tree"); got != "ii" {
			t.Errorf("%s: tree %q", lb, got)
		}
	}
	res = r.run("lb", role, false)
	if res.err != nil || res.rep.Summary.TasksChanged != 0 {
		t.Fatalf("rerun: %s", res)
	}
	for _, lb := range []string{"lb1", "lb2"} {
		if n := res.exchanges(lb); n != 1 {
			t.Errorf("rerun: %s took %d exchanges, want 1", lb, n)
		}
	}
}
