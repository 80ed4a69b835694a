// Package service is the service module: a service running or stopped,
// started at boot or not, restarted or reloaded once when what it
// watches changed, through systemd, sysvinit or FreeBSD's rc.
package service

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/orch-dev/orch/modules"
)

func init() {
	modules.Register(modules.Info{ID: "service", New: func() any { return new(Service) }, Doc: `Starts, stops, restarts or reloads a service, and sets whether it starts at boot.

States: "running" starts it if it is not running; "stopped" stops it if it
runs; "restarted" and "reloaded" restart or reload it on every run (a
stopped service is started), so they always report a change: to restart on
a change only, use state="running" with watch=. enabled=True or False sets
boot-time start; None leaves it as it is.

watch= lists paths (a directory covers what is under it) or state keys
("pkg:nginx"). When a task of the same host changed one of them in this
run, the service restarts, or reloads with on_change="reload", once, after
the host's other tasks, however many watched tasks changed; a task whose
content turned out not to change does not trigger it. If the host fails
after the change, the restart is journaled and the host's next run does it
(even if nothing changes then). A stopped service (state="stopped") is not
restarted by its watches.

Backends, chosen from the init_system host fact:
- systemd: systemctl start/stop/restart/reload/enable/disable; state from
  one systemctl show for all of a host's services. A name without a unit
  suffix is NAME.service. When a unit file changed on disk (a file task
  wrote /etc/systemd/system/NAME.service, a drop-in in NAME.service.d/, or
  /lib/systemd/system/NAME.service), systemctl daemon-reload runs before
  the service's own change, and its handler daemon-reloads and restarts it:
  the unit's own files are watched without being named in watch=. Units
  that cannot be enabled (static, indirect, generated, transient) fail
  with enabled= set; masked units fail to start.
- sysvinit (Debian without systemd, as in the lab containers): service
  NAME start/stop/restart/reload and status (LSB exit codes), boot-time
  start with update-rc.d NAME enable/disable (links made with defaults
  first where there are none), read from the runlevel 2 links.
- rc (FreeBSD): service NAME onestart/onestop/onerestart/onereload and
  onestatus, which work whether or not the service is enabled; boot-time
  start with sysrc NAME_enable=YES/NO.
A start is followed by a status check, so a daemon that dies at once fails
the task.

Effects: service:NAME. A service task is re-checked inside the apply when
an earlier task of the run changed a package (a package install may start
or stop services).

Verified against: sysvinit on the Debian 12 lab containers, live over SSH
under sudo as a non-root user (stop and start, enable and disable, one
reload with nginx's master PID kept, a reload left pending by a failure);
systemd live on Debian 12 booted with systemd 252 in a container, as root
over the docker connection (a new unit with daemon-reload, enable and
start, a changed unit restarted once, a reload keeping the main PID, stop
and disable), and on systemctl output captured there and transcribed for
Ubuntu 24.04; FreeBSD rc only on outputs transcribed from freebsd-src's
service(8), rc.subr and sysrc(8), not on a FreeBSD host.`})
}

// Service is the argument struct of service().
type Service struct {
	Name     string   `arg:"name,required" doc:"the service: a systemd unit (nginx or nginx.service), an init.d or rc.d script name"`
	State    string   `arg:"state" default:"running" doc:"running | stopped | restarted | reloaded"`
	Enabled  *bool    `arg:"enabled" doc:"start at boot (True), not (False), or leave it (None)"`
	Watch    []string `arg:"watch" doc:"paths (a directory covers its tree) or state keys whose change in this run restarts or reloads the service once"`
	OnChange string   `arg:"on_change" default:"restart" doc:"restart | reload: what a watched change does"`

	init string // the backend Check chose, for Watches
	unit string // systemd: the unit an alias name resolved to
}

var (
	_ modules.Task       = (*Service)(nil)
	_ modules.Validator  = (*Service)(nil)
	_ modules.FactReader = (*Service)(nil)
	_ modules.Effector   = (*Service)(nil)
	_ modules.Reader     = (*Service)(nil)
	_ modules.Watcher    = (*Service)(nil)
	_ modules.Describer  = (*Service)(nil)
)

func (s *Service) Describe() string { return "service " + s.Name }

var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.@:-]*$`)

func (s *Service) Validate(*modules.Env) error {
	if !validName.MatchString(s.Name) {
		return fmt.Errorf("name %q is not a service name", s.Name)
	}
	switch s.State {
	case "running", "stopped", "restarted", "reloaded":
	default:
		return fmt.Errorf("state %q is not one of running, stopped, restarted, reloaded", s.State)
	}
	switch s.OnChange {
	case "restart", "reload":
	default:
		return fmt.Errorf("on_change %q is not restart or reload", s.OnChange)
	}
	for _, w := range s.Watch {
		if w == "" || !strings.HasPrefix(w, "/") && !strings.Contains(w, ":") {
			return fmt.Errorf("watch %q is neither an absolute path nor a state key like \"pkg:nginx\"", w)
		}
	}
	return nil
}

var initKey = modules.FactKey{Fact: "init_system"}

func (s *Service) Facts() []modules.FactKey { return []modules.FactKey{initKey, Key(s.Name)} }

// Effects is the service's state key.
func (s *Service) Effects() []string { return []string{Key(s.Name).StateKey()} }

// Reads: installing or removing a package may start, stop or remove a
// service, so a decision made before an earlier pkg task changed anything
// is re-checked.
func (s *Service) Reads() []string { return []string{"pkg:*"} }

// Watches is watch= and, under systemd, the unit's own files.
func (s *Service) Watches() []string {
	out := append([]string(nil), s.Watch...)
	if s.init == "systemd" {
		units := []string{unitName(s.Name)}
		if s.unit != "" && s.unit != units[0] {
			units = append(units, s.unit) // sshd is an alias of ssh.service
		}
		for _, u := range units {
			out = append(out, "/etc/systemd/system/"+u, "/etc/systemd/system/"+u+".d/",
				"/lib/systemd/system/"+u, "/usr/lib/systemd/system/"+u)
		}
	}
	return out
}

// Probe is empty: the shared service fact says everything.
func (s *Service) Probe(modules.ProbeRequest) string { return "" }

func (s *Service) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	init, _ := req.Facts[initKey].(string)
	b, ok := backends[init]
	if !ok {
		resp.Err = fmt.Errorf("this host's init system is %q; the service module drives systemd, sysvinit and FreeBSD's rc", init)
		return
	}
	s.init = init
	st, ok := req.Facts[Key(s.Name)].(State)
	switch {
	case !ok:
		resp.Err = fmt.Errorf("no facts gathered for service %s", s.Name)
		return
	case st.Init != init:
		resp.Err = fmt.Errorf("the service facts come from %q, but the host's init system is %q", st.Init, init)
		return
	}
	s.unit = st.Unit
	if err := b.refuse(s, st); err != nil {
		resp.Err = err
		return
	}
	if s.State != "stopped" && (len(s.Watch) > 0 || init == "systemd") {
		h := modules.Handler{ID: "service:" + s.Name, Level: 2, Action: "restart " + s.Name, Script: b.onWatch(s, "restart")}
		if s.OnChange == "reload" {
			h = modules.Handler{ID: "service:" + s.Name, Level: 1, Action: "reload " + s.Name, Script: b.onWatch(s, "reload")}
		}
		resp.OnWatch = &h
	}

	var steps []string // "enable", then "start" etc.
	if s.Enabled != nil && *s.Enabled != st.Enabled {
		steps = append(steps, map[bool]string{true: "enable", false: "disable"}[*s.Enabled])
	}
	switch {
	case s.State == "running" && !st.Running, (s.State == "restarted" || s.State == "reloaded") && !st.Running:
		steps = append(steps, "start")
	case s.State == "stopped" && st.Running:
		steps = append(steps, "stop")
	case s.State == "restarted":
		steps = append(steps, "restart")
	case s.State == "reloaded":
		steps = append(steps, "reload")
	}
	if len(steps) == 0 {
		resp.Reason = s.Name + " " + describe(st)
		return
	}
	resp.Changed = true
	resp.Reason = strings.Join(steps, " and ") + " " + s.Name
	if !st.Exists {
		resp.Reason += " (not found yet: an earlier task of the run must provide it)"
	}
	resp.Diff = fmt.Sprintf("--- service %s\n+++ service %s\n-%s\n+%s\n", s.Name, s.Name, describe(st), strings.Join(steps, ", "))
	var script strings.Builder
	script.WriteString(b.prepare(s, st))
	for _, step := range steps {
		script.WriteString(b.step(s, step))
	}
	resp.Apply = script.String()
}

// describe says how a service stands, for reasons and diffs.
func describe(st State) string {
	if !st.Exists {
		return "is not installed"
	}
	run := "is stopped"
	if st.Running {
		run = "is running"
	}
	boot := "not started at boot"
	if st.Enabled {
		boot = "started at boot"
	}
	out := run + ", " + boot
	if st.NeedReload {
		out += " (its unit file changed on disk since systemd loaded it)"
	}
	return out
}
