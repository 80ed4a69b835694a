package service

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/orch-dev/orch/internal/freebsd"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/hostfacts"
)

// FactName is the shared fact of services: whether each exists, runs and
// starts at boot, read for all of a host's service tasks in the probe
// exchange by the init system's own tools. Its keys are service names, so
// its state keys ("service:nginx") are the service tasks' effects.
const FactName = "service"

func init() { modules.RegisterFact(FactName, fact{}) }

// Key is the fact key of a service.
func Key(name string) modules.FactKey { return modules.FactKey{Fact: FactName, Key: name} }

// State is what the fact knows of one service.
type State struct {
	Init    string // the init system the script found: systemd | sysvinit | rc | openrc | unknown
	Exists  bool   // a unit file, init script or rc.d script is there
	Running bool
	Enabled bool   // started at boot
	Boot    string // how boot-time start is set: systemd's UnitFileState, sysvinit's links (enabled, disabled, none), rc's NAME_enable ("" unset)
	// systemd only
	Unit       string `json:",omitempty"` // the unit's Id (an alias resolves to its unit)
	LoadState  string `json:",omitempty"` // loaded | not-found | masked | …
	Active     string `json:",omitempty"` // ActiveState
	NeedReload bool   `json:",omitempty"` // NeedDaemonReload: its unit file changed on disk since systemd loaded it

	recheck string // the output of recheckScript while the state holds
}

type fact struct{}

var _ modules.FactRechecker = fact{}

// unitName is the systemd unit of a service name: nginx is nginx.service.
func unitName(name string) string {
	for _, suffix := range []string{".service", ".socket", ".timer", ".target", ".path", ".mount"} {
		if strings.HasSuffix(name, suffix) {
			return name
		}
	}
	return name + ".service"
}

// rcName is the rc.d or init.d script name: nginx.service is nginx.
func rcName(name string) string { return strings.TrimSuffix(name, ".service") }

// systemdProps are read with one systemctl show for every unit; it prints
// a block of KEY=VALUE lines per unit, in the order the units are named,
// separated by empty lines.
const systemdProps = "-p Id -p LoadState -p ActiveState -p UnitFileState -p NeedDaemonReload"

// sysvState prints an init script's status exit code (LSB: 0 running, 3
// stopped) and its runlevel 2 link: enabled (S), disabled (K) or none,
// with globs rather than processes where it can.
func sysvState(name string) string {
	n := modules.Quote(name)
	return fmt.Sprintf(`if [ -x /etc/init.d/%[1]s ]; then service %[1]s status >/dev/null 2>&1; echo "status $?"; else echo missing; fi
set -- /etc/rc2.d/S[0-9][0-9]%[1]s; if [ -e "$1" ]; then echo enabled; else set -- /etc/rc[0-6S].d/[SK][0-9][0-9]%[1]s; if [ -e "$1" ]; then echo disabled; else echo none; fi; fi`, n)
}

// rcState prints service(8)'s onestatus (which works whether or not the
// service is enabled, unlike status) and sysrc's value of NAME_enable.
func rcState(name string) string {
	n := modules.Quote(name)
	return fmt.Sprintf("service %s onestatus 2>&1\necho \"#exit $?\"\nsysrc -n %s 2>&1\necho \"#exit $?\"", n, modules.Quote(name+"_enable"))
}

// Script reads every service with the tools of the host's init system,
// chosen as the init_system host fact chooses.
func (fact) Script(keys []string) string {
	var b strings.Builder
	b.WriteString("_orch_init=$(\n" + hostfacts.Facts["init_system"].Command + "\n)\necho \"#init $_orch_init\"\n")
	b.WriteString("case $_orch_init in\nsystemd)\n")
	var units []string
	for _, k := range keys {
		units = append(units, modules.Quote(unitName(k)))
	}
	b.WriteString("LC_ALL=C systemctl show " + systemdProps + " -- " + strings.Join(units, " ") + " 2>&1\necho \"#exit $?\"\n;;\nsysvinit)\n")
	for _, k := range keys {
		b.WriteString("echo " + modules.Quote("#service "+k) + "\n" + sysvState(rcName(k)) + "\n")
	}
	b.WriteString(";;\nrc)\n")
	for _, k := range keys {
		b.WriteString("echo " + modules.Quote("#service "+k) + "\n" + rcState(rcName(k)) + "\n")
	}
	b.WriteString(";;\nesac\n")
	return b.String()
}

func (fact) Parse(out []byte, keys []string) (map[string]any, error) {
	ls := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(ls) == 0 || !strings.HasPrefix(ls[0], "#init ") {
		return nil, fmt.Errorf("service facts: unexpected output %q", strings.TrimSpace(string(out)))
	}
	init := strings.TrimPrefix(ls[0], "#init ")
	res := make(map[string]any, len(keys))
	for _, k := range keys {
		res[k] = State{Init: init}
	}
	var err error
	switch init {
	case "systemd":
		err = parseSystemd(ls[1:], keys, res)
	case "sysvinit":
		err = parseSections(ls[1:], keys, res, parseSysv)
	case "rc":
		err = parseSections(ls[1:], keys, res, parseRC)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// parseSystemd reads the blocks of systemctl show, one per key in order.
func parseSystemd(ls []string, keys []string, res map[string]any) error {
	if n := len(ls); n == 0 || !strings.HasPrefix(ls[n-1], "#exit ") {
		return fmt.Errorf("systemctl show: output ends early")
	}
	exit := strings.TrimPrefix(ls[len(ls)-1], "#exit ")
	var blocks [][]string
	var cur []string
	for _, l := range ls[:len(ls)-1] {
		switch {
		case l == "":
			if cur != nil {
				blocks = append(blocks, cur)
			}
			cur = nil
		case strings.Contains(l, "="):
			cur = append(cur, l)
		default:
			return fmt.Errorf("systemctl show (exit %s): %s", exit, l)
		}
	}
	if cur != nil {
		blocks = append(blocks, cur)
	}
	if len(blocks) != len(keys) {
		return fmt.Errorf("systemctl show printed %d units for %d asked (exit %s)", len(blocks), len(keys), exit)
	}
	for i, k := range keys {
		st := State{Init: "systemd"}
		var recheck []string
		for _, l := range blocks[i] {
			key, val, _ := strings.Cut(l, "=")
			switch key {
			case "Id":
				st.Unit = val
				continue // an alias prints its unit's Id; the recheck names the alias
			case "LoadState":
				st.LoadState = val
			case "ActiveState":
				st.Active = val
			case "UnitFileState":
				st.Boot = val
			case "NeedDaemonReload":
				st.NeedReload = val == "yes"
			}
			recheck = append(recheck, l)
		}
		if st.LoadState == "" || st.Active == "" {
			return fmt.Errorf("systemctl show %s: no LoadState or ActiveState in %q", unitName(k), blocks[i])
		}
		st.Exists = st.LoadState != "not-found"
		st.Running = st.Active == "active" || st.Active == "reloading" || st.Active == "activating"
		switch st.Boot {
		case "enabled", "enabled-runtime", "alias", "linked", "linked-runtime":
			st.Enabled = true
		}
		st.recheck = strings.Join(recheck, "\n")
		res[k] = st
	}
	return nil
}

// parseSections reads "#service NAME" sections with a backend's parser.
func parseSections(ls []string, keys []string, res map[string]any, parse func(name string, body []string) (State, error)) error {
	sections := map[string][]string{}
	cur := ""
	for _, l := range ls {
		if name, ok := strings.CutPrefix(l, "#service "); ok {
			cur = name
			sections[cur] = []string{}
			continue
		}
		if cur == "" {
			return fmt.Errorf("service facts: unexpected line %q", l)
		}
		sections[cur] = append(sections[cur], l)
	}
	for _, k := range keys {
		body, ok := sections[k]
		if !ok {
			return fmt.Errorf("service facts: nothing printed for %s", k)
		}
		st, err := parse(k, body)
		if err != nil {
			return err
		}
		res[k] = st
	}
	return nil
}

// parseSysv reads sysvState's two lines.
func parseSysv(name string, body []string) (State, error) {
	st := State{Init: "sysvinit"}
	if len(body) != 2 {
		return st, fmt.Errorf("service facts for %s: unexpected output %q", name, body)
	}
	switch {
	case body[0] == "missing":
	case strings.HasPrefix(body[0], "status "):
		code, err := strconv.Atoi(strings.TrimPrefix(body[0], "status "))
		if err != nil {
			return st, fmt.Errorf("service facts for %s: %q", name, body[0])
		}
		st.Exists = true
		// LSB: 0 running; 1 dead with a pid file; 2 dead with a lock
		// file; 3 not running; 4 unknown. Only 0 is running.
		st.Running = code == 0
	default:
		return st, fmt.Errorf("service facts for %s: %q", name, body[0])
	}
	switch body[1] {
	case "enabled", "disabled", "none":
		st.Boot = body[1]
		st.Enabled = body[1] == "enabled"
	default:
		return st, fmt.Errorf("service facts for %s: %q", name, body[1])
	}
	st.recheck = strings.Join(body, "\n")
	return st, nil
}

// parseRC reads rcState: service onestatus with its exit status, then
// sysrc -n NAME_enable with its own ("unknown variable" when unset).
func parseRC(name string, body []string) (State, error) {
	st := State{Init: "rc"}
	var status, rcvar []string
	codes := []int{}
	cur := &status
	for _, l := range body {
		if c, ok := strings.CutPrefix(l, "#exit "); ok {
			n, err := strconv.Atoi(c)
			if err != nil {
				return st, fmt.Errorf("service facts for %s: %q", name, l)
			}
			codes = append(codes, n)
			cur = &rcvar
			continue
		}
		*cur = append(*cur, l)
	}
	if len(codes) != 2 {
		return st, fmt.Errorf("service facts for %s: unexpected output %q", name, body)
	}
	out := strings.Join(status, "\n")
	switch {
	case strings.Contains(out, " does not exist in /etc/rc.d"):
	default:
		s, err := freebsd.ParseServiceStatus([]byte(out), codes[0])
		if err != nil {
			return st, fmt.Errorf("service facts for %s: %w", name, err)
		}
		st.Exists, st.Running = true, s.Running
	}
	if codes[1] == 0 && len(rcvar) == 1 {
		st.Boot = rcvar[0]
		st.Enabled = checkYesNo(rcvar[0])
	}
	st.recheck = fmt.Sprintf("status %d", codes[0])
	if st.Boot != "" {
		st.recheck += "\n" + st.Boot // $(…) drops the newline of an empty last line
	}
	return st, nil
}

// checkYesNo is rc.subr's checkyesno: YES, TRUE, ON or 1, in any case.
func checkYesNo(v string) bool {
	switch strings.ToUpper(v) {
	case "YES", "TRUE", "ON", "1":
		return true
	}
	return false
}

// recheckScript prints what the state recorded in State.recheck, for one
// service: without process IDs, which a reload of another task may not
// change but a restart would.
func recheckScript(init, name string) string {
	n := modules.Quote(rcName(name))
	switch init {
	case "systemd":
		return "LC_ALL=C systemctl show " + strings.ReplaceAll(systemdProps, "-p Id ", "") + " -- " + modules.Quote(unitName(name)) + " 2>/dev/null"
	case "sysvinit":
		return sysvState(rcName(name))
	case "rc":
		return fmt.Sprintf("service %s onestatus >/dev/null 2>&1; echo \"status $?\"; sysrc -n %s 2>/dev/null", n, modules.Quote(rcName(name)+"_enable"))
	}
	return ""
}

// Recheck holds while the service is as gathered.
func (fact) Recheck(key string, value any) string {
	st, ok := value.(State)
	script := ""
	if ok {
		script = recheckScript(st.Init, key)
	}
	if script == "" {
		return "false"
	}
	return fmt.Sprintf("[ \"$( { %s\n} 2>/dev/null )\" = %s ]", script, modules.Quote(st.recheck))
}
