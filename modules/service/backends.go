package service

import (
	"fmt"

	"github.com/orch-dev/orch/modules"
)

// backend is one init system's commands.
type backend struct {
	// refuse says why the wanted state cannot be reached, if it cannot.
	refuse func(s *Service, st State) error
	// prepare runs before the steps (systemd's daemon-reload).
	prepare func(s *Service, st State) string
	// step is the sh of one step: enable, disable, start, stop, restart, reload.
	step func(s *Service, step string) string
	// onWatch is the handler's script: restart or reload.
	onWatch func(s *Service, action string) string
}

var backends = map[string]backend{
	"systemd":  {refuse: systemdRefuse, prepare: systemdPrepare, step: systemdStep, onWatch: systemdOnWatch},
	"sysvinit": {refuse: noRefusal, prepare: sysvPrepare, step: sysvStep, onWatch: sysvOnWatch},
	"rc":       {refuse: noRefusal, prepare: rcPrepare, step: rcStep, onWatch: rcOnWatch},
}

func noRefusal(*Service, State) error { return nil }

// systemd

func systemdRefuse(s *Service, st State) error {
	if st.LoadState == "masked" && s.State != "stopped" {
		return fmt.Errorf("%s is masked (systemctl unmask %s): it cannot be started", unitName(s.Name), unitName(s.Name))
	}
	if s.Enabled != nil {
		switch st.Boot {
		case "static", "indirect", "generated", "transient":
			return fmt.Errorf("%s is %s: systemctl cannot enable or disable it (leave enabled=None)", unitName(s.Name), st.Boot)
		case "masked", "masked-runtime":
			if *s.Enabled {
				return fmt.Errorf("%s is masked (systemctl unmask %s): it cannot be enabled", unitName(s.Name), unitName(s.Name))
			}
		}
	}
	return nil
}

// systemdPrepare daemon-reloads when systemd's copy of the unit is stale
// now, or when the unit was not found at check time (an earlier task may
// have just written it).
func systemdPrepare(s *Service, st State) string {
	u := modules.Quote(unitName(s.Name))
	if st.NeedReload || !st.Exists {
		return "systemctl daemon-reload\n"
	}
	return fmt.Sprintf("if [ \"$(systemctl show -p NeedDaemonReload --value -- %s)\" = yes ]; then systemctl daemon-reload; fi\n", u)
}

func systemdStep(s *Service, step string) string {
	u := modules.Quote(unitName(s.Name))
	switch step {
	case "enable", "disable":
		return "systemctl --quiet " + step + " -- " + u + "\n"
	case "start", "restart":
		return fmt.Sprintf("systemctl %s -- %s\nsystemctl --quiet is-active -- %s || { echo \"service: %s is not active after %s\"; exit 1; }\n", step, u, u, unitName(s.Name), step)
	}
	return "systemctl " + step + " -- " + u + "\n"
}

// systemdOnWatch: a unit whose file changed in the run (systemd says it
// needs a daemon-reload) is reloaded into systemd and restarted, since a
// changed unit takes effect only on restart; otherwise the action.
func systemdOnWatch(s *Service, action string) string {
	u := modules.Quote(unitName(s.Name))
	return fmt.Sprintf("if [ \"$(systemctl show -p NeedDaemonReload --value -- %[1]s)\" = yes ]; then systemctl daemon-reload; systemctl restart -- %[1]s; else systemctl %[2]s -- %[1]s; fi\n", u, action)
}

// sysvinit

// sysvPrepare fails clearly when the init script is missing.
func sysvPrepare(s *Service, _ State) string {
	n := modules.Quote(rcName(s.Name))
	return fmt.Sprintf("[ -x /etc/init.d/%s ] || { echo \"service: there is no /etc/init.d/%s (is its package installed?)\"; exit 1; }\n", n, rcName(s.Name))
}

func sysvStep(s *Service, step string) string {
	n := modules.Quote(rcName(s.Name))
	// update-rc.d enable and disable only rename existing links: make
	// them first where a script has none.
	links := fmt.Sprintf("set -- /etc/rc[0-6S].d/[SK][0-9][0-9]%s\n", n)
	switch step {
	case "enable":
		return links + fmt.Sprintf("if [ -e \"$1\" ]; then update-rc.d %s enable; else update-rc.d %s defaults; fi\n", n, n)
	case "disable":
		return links + fmt.Sprintf("if [ -e \"$1\" ]; then update-rc.d %s disable; else update-rc.d %s defaults-disabled; fi\n", n, n)
	case "start", "restart":
		return fmt.Sprintf("service %s %s\nservice %s status >/dev/null 2>&1 || { echo \"service: %s is not running after %s\"; exit 1; }\n", n, step, n, rcName(s.Name), step)
	}
	return fmt.Sprintf("service %s %s\n", n, step)
}

func sysvOnWatch(s *Service, action string) string {
	return sysvPrepare(s, State{}) + sysvStep(s, action)
}

// FreeBSD rc

// rcPrepare needs nothing: service(8) says when a script is missing.
func rcPrepare(*Service, State) string { return "" }

func rcStep(s *Service, step string) string {
	n := modules.Quote(rcName(s.Name))
	switch step {
	case "enable", "disable":
		v := map[string]string{"enable": "YES", "disable": "NO"}[step]
		return fmt.Sprintf("sysrc %s\n", modules.Quote(rcName(s.Name)+"_enable="+v))
	case "start", "restart":
		return fmt.Sprintf("service %s one%s\nservice %s onestatus >/dev/null 2>&1 || { echo \"service: %s is not running after %s\"; exit 1; }\n", n, step, n, rcName(s.Name), step)
	}
	return fmt.Sprintf("service %s one%s\n", n, step)
}

func rcOnWatch(s *Service, action string) string { return rcStep(s, action) }
