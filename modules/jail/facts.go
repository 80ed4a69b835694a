package jail

import (
	"fmt"
	"slices"
	"strings"

	"github.com/orch-dev/orch/internal/freebsd"
	"github.com/orch-dev/orch/modules"
)

// FactName is the shared fact of jails: which run (jls -v --libxo json)
// and what rc.conf says of jails at boot (sysrc jail_enable jail_list),
// read once for all of a host's jail tasks in the probe exchange. Its keys
// are jail names, so its state keys ("jail:www") are the tasks' effects.
const FactName = "jail"

func init() { modules.RegisterFact(FactName, fact{}) }

// Key is the fact key of a jail.
func Key(name string) modules.FactKey { return modules.FactKey{Fact: FactName, Key: name} }

// State is what the fact knows of one jail.
type State struct {
	Running bool
	Jail    freebsd.Jail `json:",omitempty"` // as jls -v reports it, when running
	Enable  string       // rc.conf's jail_enable
	List    []string     // rc.conf's jail_list

	list string // jail_list as sysrc printed it, for Recheck
}

// Listed reports whether the jail is in jail_list.
func (s State) Listed(name string) bool { return slices.Contains(s.List, name) }

// EnabledAtBoot reports whether rc starts jails at boot (rc.subr's
// checkyesno of jail_enable).
func (s State) EnabledAtBoot() bool {
	switch strings.ToUpper(s.Enable) {
	case "YES", "TRUE", "ON", "1":
		return true
	}
	return false
}

type fact struct{}

var _ modules.FactRechecker = fact{}

const script = `echo '#jls'
jls -v --libxo json 2>&1
echo "#exit $?"
echo '#sysrc'
sysrc jail_enable jail_list 2>&1
echo "#exit $?"
`

// Script is the same for any keys: jls lists every jail.
func (fact) Script([]string) string { return script }

// Parse reads the two sections of the script.
func (fact) Parse(out []byte, keys []string) (map[string]any, error) {
	sections := map[string][]string{}
	codes := map[string]string{}
	cur := ""
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		switch {
		case l == "#jls" || l == "#sysrc":
			cur = l[1:]
			sections[cur] = []string{}
			continue
		case strings.HasPrefix(l, "#exit ") && cur != "":
			codes[cur] = strings.TrimPrefix(l, "#exit ")
			continue
		case cur == "":
			return nil, fmt.Errorf("jail facts: unexpected output %q", l)
		}
		sections[cur] = append(sections[cur], l)
	}
	if codes["jls"] == "" || codes["sysrc"] == "" {
		return nil, fmt.Errorf("jail facts: output ends early: %q", strings.TrimSpace(string(out)))
	}
	jlsOut := strings.Join(sections["jls"], "\n")
	if codes["jls"] != "0" {
		return nil, fmt.Errorf("jls -v --libxo json: exit %s: %s", codes["jls"], jlsOut)
	}
	jails, err := freebsd.ParseJLS([]byte(jlsOut))
	if err != nil {
		return nil, err
	}
	sysrcOut := strings.Join(sections["sysrc"], "\n") + "\n"
	if codes["sysrc"] != "0" {
		return nil, fmt.Errorf("sysrc jail_enable jail_list: exit %s: %s", codes["sysrc"], strings.TrimSpace(sysrcOut))
	}
	rc, err := freebsd.ParseSysrc([]byte(sysrcOut))
	if err != nil {
		return nil, err
	}
	res := make(map[string]any, len(keys))
	for _, k := range keys {
		st := State{Enable: rc["jail_enable"], List: strings.Fields(rc["jail_list"]), list: rc["jail_list"]}
		for _, j := range jails {
			if j.Name == k {
				st.Running, st.Jail = true, j
			}
		}
		res[k] = st
	}
	return res, nil
}

// Recheck holds while the jail runs (or not) as gathered and rc.conf's
// jail settings are unchanged.
func (fact) Recheck(key string, value any) string {
	st, ok := value.(State)
	if !ok {
		return "false"
	}
	run := "jls -j " + modules.Quote(key) + " jid >/dev/null 2>&1"
	if !st.Running {
		run = "! " + run
	}
	rc := strings.TrimRight(st.Enable+"\n"+st.list, "\n") // $(…) drops trailing newlines
	return fmt.Sprintf("{ %s && [ \"$(sysrc -n jail_enable jail_list 2>/dev/null)\" = %s ]; }", run, modules.Quote(rc))
}
