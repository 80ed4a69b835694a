package bectl

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/orch-dev/orch/internal/freebsd"
	"github.com/orch-dev/orch/modules"
)

// FactName is the shared fact of boot environments, keyed by BE name:
// `bectl list -H` and the pools' bootfs, read once per host for all of its
// bectl tasks. Plans read it too: h.fact("bectl", "new")["active"] is
// True when the host runs boot environment new now.
const FactName = "bectl"

func init() { modules.RegisterFact(FactName, fact{}) }

// Key is the fact key of a boot environment.
func Key(name string) modules.FactKey { return modules.FactKey{Fact: FactName, Key: name} }

type fact struct{}

var _ modules.FactRechecker = fact{}

// script lists the boot environments and the pools' bootfs (whose parent
// is the BE root, POOL/ROOT, that a received stream goes into).
const script = `echo '#bectl'
bectl list -H 2>&1
echo "#exit $?"
echo '#bootfs'
zpool list -H -o name,bootfs 2>&1
echo "#exit $?"
`

func (fact) Script([]string) string { return script }

// Parse reads the script's output into one value per key, a map that
// plans read as a dict:
//
//	exists, active (N: booted now), next_boot (R), temporary (T),
//	mountpoint: this BE as bectl list shows it
//	booted, next_boot_be, temporary_be: the names of the BEs flagged N, R
//	  and T ("" when none is)
//	root: the BE root dataset ("zroot/ROOT"), "" when no pool has bootfs
//	flags: every BE's flags column ("NR", "T", "-"), by name
func (fact) Parse(out []byte, keys []string) (map[string]any, error) {
	sections, err := parseSections(string(out))
	if err != nil {
		return nil, err
	}
	list := sections["bectl"]
	if list.exit != 0 {
		return nil, fmt.Errorf("bectl list -H failed (exit %d): %s; the bectl module needs a FreeBSD host booted from a ZFS boot environment",
			list.exit, strings.TrimSpace(list.body))
	}
	bes, err := freebsd.ParseBectlList([]byte(list.body))
	if err != nil {
		return nil, err
	}
	root := ""
	if pools := sections["bootfs"]; pools.exit == 0 {
		for _, l := range strings.Split(strings.TrimSpace(pools.body), "\n") {
			f := strings.Split(l, "\t")
			if len(f) == 2 && f[1] != "-" && f[1] != "" && strings.Contains(f[1], "/") {
				root = f[1][:strings.LastIndexByte(f[1], '/')]
				break
			}
		}
	}
	flags := map[string]any{}
	var booted, next, temp string
	byName := map[string]freebsd.BootEnv{}
	for _, be := range bes {
		byName[be.Name] = be
		flags[be.Name] = flagsOf(be)
		if be.Active {
			booted = be.Name
		}
		if be.NextBoot {
			next = be.Name
		}
		if be.Temporary {
			temp = be.Name
		}
	}
	res := make(map[string]any, len(keys))
	for _, k := range keys {
		be, ok := byName[k]
		res[k] = map[string]any{
			"exists": ok, "active": be.Active, "next_boot": be.NextBoot, "temporary": be.Temporary,
			"mountpoint": be.Mountpoint, "booted": booted, "next_boot_be": next, "temporary_be": temp,
			"root": root, "flags": flags,
		}
	}
	return res, nil
}

// flagsOf is a BE's Active column as bectl prints it.
func flagsOf(be freebsd.BootEnv) string {
	if f := be.Flags(); f != "" {
		return f
	}
	return "-"
}

type section struct {
	body string
	exit int
}

// parseSections splits "#NAME" ... "#exit N" sections.
func parseSections(out string) (map[string]section, error) {
	res := map[string]section{}
	cur := ""
	var body []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		switch {
		case cur == "" && (l == "#bectl" || l == "#bootfs"):
			cur, body = l[1:], nil
		case cur != "" && strings.HasPrefix(l, "#exit "):
			n, err := strconv.Atoi(strings.TrimPrefix(l, "#exit "))
			if err != nil {
				return nil, fmt.Errorf("bectl facts: %q", l)
			}
			res[cur] = section{body: strings.Join(body, "\n"), exit: n}
			cur = ""
		case cur != "":
			body = append(body, l)
		default:
			return nil, fmt.Errorf("bectl facts: unexpected line %q", l)
		}
	}
	if _, ok := res["bectl"]; !ok {
		return nil, fmt.Errorf("bectl facts: output ends early: %q", strings.TrimSpace(out))
	}
	if _, ok := res["bootfs"]; !ok {
		return nil, fmt.Errorf("bectl facts: output ends early: %q", strings.TrimSpace(out))
	}
	return res, nil
}

// Recheck holds while every BE's name and flags are as gathered: what a
// bectl decision reads (the space and mountpoint columns change with any
// write, and decide nothing).
func (fact) Recheck(_ string, value any) string {
	st := stateOf(value)
	names := make([]string, 0, len(st.flags))
	for n := range st.flags {
		names = append(names, n)
	}
	sort.Strings(names)
	var want strings.Builder
	for _, n := range names {
		fmt.Fprintf(&want, "%s\t%s\n", n, st.flags[n])
	}
	return fmt.Sprintf(`[ "$(bectl list -H 2>/dev/null | cut -f1,2 | LC_ALL=C sort; echo x)" = %s ]`, modules.Quote(want.String()+"x"))
}

// state is the fact's value, typed for the module's decisions.
type state struct {
	exists, active, nextBoot, temporary bool
	mountpoint, booted, nextBootBE      string
	temporaryBE, root                   string
	flags                               map[string]string
}

func stateOf(v any) state {
	m, _ := v.(map[string]any)
	b := func(k string) bool { x, _ := m[k].(bool); return x }
	s := func(k string) string { x, _ := m[k].(string); return x }
	st := state{exists: b("exists"), active: b("active"), nextBoot: b("next_boot"), temporary: b("temporary"),
		mountpoint: s("mountpoint"), booted: s("booted"), nextBootBE: s("next_boot_be"),
		temporaryBE: s("temporary_be"), root: s("root"), flags: map[string]string{}}
	fl, _ := m["flags"].(map[string]any)
	for k, v := range fl {
		st.flags[k], _ = v.(string)
	}
	return st
}
