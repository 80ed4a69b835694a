package standard_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/testkit/require"
)

// systemdHost boots a Debian 12 machine with systemd as PID 1: the lab
// image with systemd installed (through the lab's apt proxy, once per lab
// image, kept as orch-lab-systemd:TAG), in a container with SYS_ADMIN and
// the host's cgroup hierarchy, on the lab network. orch reaches it with
// the docker connection, as root. It is removed when the test ends.
func systemdHost(t *testing.T) string {
	t.Helper()
	l := needLab(t)
	tag := "orch-lab-systemd:" + strings.TrimPrefix(l.Image(), "orch-lab:")
	docker := func(args ...string) (string, error) {
		out, err := exec.Command("docker", args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if _, err := docker("image", "inspect", tag); err != nil {
		build := labOpts.Prefix + "-systemd-build"
		docker("rm", "-f", build)
		script := fmt.Sprintf(`set -e
echo 'Acquire::http::Proxy "%s";' > /etc/apt/apt.conf.d/01orch-build-proxy
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q systemd systemd-sysv
rm -f /etc/apt/apt.conf.d/01orch-build-proxy /etc/ssh/ssh_host_*
apt-get clean; rm -rf /var/lib/apt/lists/*`, l.AptProxyURL())
		if out, err := docker("run", "--name", build, "--network", l.Network(), "--entrypoint", "/bin/sh", l.Image(), "-c", script); err != nil {
			docker("rm", "-f", build)
			t.Fatalf("installing systemd in the lab image: %v\n%s", err, out)
		}
		out, err := docker("commit", "--change", `ENTRYPOINT ["/lib/systemd/systemd"]`, "--change", "CMD []", build, tag)
		docker("rm", "-f", build)
		if err != nil {
			t.Fatalf("docker commit: %v\n%s", err, out)
		}
	}
	name := labOpts.Prefix + "-systemd"
	docker("rm", "-f", name)
	if out, err := docker("run", "-d", "--name", name, "--network", l.Network(), "--cap-add", "SYS_ADMIN",
		"--security-opt", "seccomp=unconfined", "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
		"--tmpfs", "/run", "--tmpfs", "/run/lock", "-e", "container=docker", tag); err != nil {
		require.Missingf(t, "a container booted with systemd: %v: %s", err, out)
	}
	t.Cleanup(func() { docker("rm", "-f", name) })
	state := ""
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		// degraded: some unit of the image failed (ssh has no host keys); systemd runs.
		if state, _ = docker("exec", name, "systemctl", "is-system-running"); state == "running" || state == "degraded" {
			return name
		}
	}
	logs, _ := docker("logs", "--tail", "20", name)
	t.Fatalf("systemd did not come up in %s (%q):\n%s", name, state, logs)
	return ""
}

// orchdemo is a daemon that logs its starts and its reloads (SIGHUP).
func orchdemoUnit(version string) string {
	return `[Unit]
Description=orch test daemon
[Service]
ExecStart=/bin/sh -c 'trap "echo reload >> /run/orchdemo.log" HUP; echo start ` + version + ` >> /run/orchdemo.log; while :; do sleep 1 & wait; done'
ExecReload=/bin/kill -HUP $MAINPID
[Install]
WantedBy=multi-user.target
`
}

// TestSystemdService drives a unit on a host booted with systemd: a new
// unit file and its service in one run (daemon-reload, enable, start); a
// rerun in one exchange; a changed unit file, which the service task
// watches without being told (daemon-reload and a restart, once); a
// watched config with on_change="reload" (one SIGHUP, the main PID kept);
// stop and disable.
func TestSystemdService(t *testing.T) {
	host := systemdHost(t)
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: "sd1", Address: host, Connection: "docker"}); err != nil {
		t.Fatal(err)
	}
	r := &runner{t: t, inv: inv, state: t.TempDir()}
	in := func(script string) string {
		t.Helper()
		out, err := exec.Command("docker", "exec", host, "/bin/sh", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	show := func(prop string) string { return in("systemctl show -p " + prop + " --value orchdemo.service") }
	count := func(word string) int {
		n := 0
		fmt.Sscan(in("grep -c '^"+word+"' /run/orchdemo.log || true"), &n)
		return n
	}
	role := func(unit, conf, state, enabled, onChange string) string {
		return fmt.Sprintf(`
			file(path = "/etc/systemd/system/orchdemo.service", content = %q)
			file(path = "/etc/orchdemo.conf", content = %q)
			service(name = "orchdemo", state = %q, enabled = %s, watch = ["/etc/orchdemo.conf"], on_change = %q)`,
			unit, conf, state, enabled, onChange)
	}

	res := r.run("sd1", role(orchdemoUnit("v1"), "a\n", "running", "True", "reload"), false)
	if res.err != nil || show("ActiveState") != "active" || show("UnitFileState") != "enabled" {
		t.Fatalf("first run: want orchdemo written, enabled and running: %s; %s %s", res, show("ActiveState"), show("UnitFileState"))
	}
	if msg := res.tasks("sd1", engine.Changed)[2].Msg; msg != "enable and start orchdemo (not found yet: an earlier task of the run must provide it)" {
		t.Errorf("the service's reason: %q", msg)
	}
	res = r.run("sd1", role(orchdemoUnit("v1"), "a\n", "running", "True", "reload"), false)
	if res.err != nil || res.rep.Summary.TasksChanged != 0 || res.exchanges("sd1") != 1 {
		t.Fatalf("rerun: want 0 changes in 1 exchange: %s", res)
	}

	// A new unit file: systemd needs a daemon-reload, and the unit a
	// restart, although on_change says reload.
	pid, starts := show("MainPID"), count("start v2")
	res = r.run("sd1", role(orchdemoUnit("v2"), "a\n", "running", "True", "reload"), false)
	if res.err != nil || res.rep.Summary.TasksChanged != 2 || res.handlerRuns("sd1") != 1 {
		t.Fatalf("unit changed: want the file and one handler: %s", res)
	}
	if show("NeedDaemonReload") != "no" || show("MainPID") == pid || count("start v2") != starts+1 {
		t.Fatalf("unit changed: NeedDaemonReload=%s, MainPID %s -> %s, %d starts of v2: want reloaded into systemd and restarted once",
			show("NeedDaemonReload"), pid, show("MainPID"), count("start v2"))
	}

	// A watched config: one reload, the same main process.
	pid, reloads := show("MainPID"), count("reload")
	res = r.run("sd1", role(orchdemoUnit("v2"), "b\n", "running", "True", "reload"), false)
	if res.err != nil || res.rep.Summary.TasksChanged != 2 || res.handlerRuns("sd1") != 1 {
		t.Fatalf("config changed: want the file and one reload: %s", res)
	}
	for deadline := time.Now().Add(10 * time.Second); count("reload") == reloads && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond) // the trap runs once the sleep it waits for ends
	}
	if got := count("reload"); got != reloads+1 || show("MainPID") != pid {
		t.Fatalf("config changed: %d reloads (want %d), MainPID %s -> %s (want kept)", got, reloads+1, pid, show("MainPID"))
	}

	// An opaque command before the service: the service's decision is
	// confirmed on the host inside the apply (systemctl show again), at
	// no extra exchange.
	res = r.run("sd1", `command(cmd = "true")`+role(orchdemoUnit("v2"), "b\n", "running", "True", "reload"), false)
	if res.err != nil || res.rep.Summary.TasksChanged != 1 || res.handlerRuns("sd1") != 0 || res.exchanges("sd1") != 2 {
		t.Fatalf("after a command: want the command alone, in 2 exchanges: %s", res)
	}

	res = r.run("sd1", role(orchdemoUnit("v2"), "b\n", "stopped", "False", "reload"), false)
	if res.err != nil || res.rep.Summary.TasksChanged != 1 || show("ActiveState") != "inactive" || show("UnitFileState") != "disabled" {
		t.Fatalf("stop and disable: %s; %s %s", res, show("ActiveState"), show("UnitFileState"))
	}
	res = r.run("sd1", role(orchdemoUnit("v2"), "b\n", "stopped", "False", "reload"), false)
	if res.err != nil || res.rep.Summary.TasksChanged != 0 || res.exchanges("sd1") != 1 {
		t.Fatalf("stopped rerun: want 0 changes in 1 exchange: %s", res)
	}
}
