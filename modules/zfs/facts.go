package zfs

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/orch-dev/orch/modules"
)

// FactName is the shared fact every zfs task reads: what the host's ZFS
// knows of one dataset or snapshot, keyed by its name, so its state key is
// the task's effect ("zfs:tank/www"). It is gathered once per host for all
// of its zfs tasks, in the probe exchange: one zfs list of the pools the
// tasks name (clones live in the pool of their origin, so a pool's listing
// holds every dependent), and one zfs get of the locally set properties of
// the datasets named.
const FactName = "zfs"

func init() { modules.RegisterFact(FactName, fact{}) }

// State is what the zfs fact knows of one name.
type State struct {
	Pool   bool   // the pool exists
	Exists bool   `json:",omitempty"`
	Type   string `json:",omitempty"` // filesystem | volume | snapshot
	Origin string `json:",omitempty"` // for a clone, the snapshot it was cloned from
	// Parent tells whether the dataset a name lives in exists: the
	// dataset of a snapshot, the parent of a dataset (a pool has none).
	Parent bool `json:",omitempty"`
	// Local are the properties set locally ("zfs get -s local"), with
	// their exact values ("zfs get -p": sizes in bytes).
	Local map[string]string `json:",omitempty"`
	// Children are what "zfs destroy -r" takes with a dataset: the
	// datasets below it and every snapshot of them and of itself, deepest
	// first. For a snapshot, the snapshots of the same name below its
	// dataset (what "zfs destroy -r DS@SNAP" takes).
	Children []string `json:",omitempty"`
	// Clones are what "zfs destroy -R" takes beyond -r: the clones of
	// those snapshots that live elsewhere, with their own children and
	// clones, transitively.
	Clones []string `json:",omitempty"`
	// OwnClones, for a snapshot, are the clones of that snapshot alone,
	// with what hangs under them: what its destroy without -r takes with -R.
	OwnClones []string `json:",omitempty"`
	// Missing, for a snapshot, are the datasets below its dataset that
	// lack a snapshot of that name (what "zfs snapshot -r" would add).
	Missing []string `json:",omitempty"`
	Err     string   `json:",omitempty"` // why zfs could not be asked

	raw string // the listing and properties read, for Recheck
	get string // what zfs get printed of a dataset, for the tasks' Recheck
}

// entry is one line of zfs list: name, type, origin.
type entry struct{ name, typ, origin string }

// poolOf is the pool a dataset or snapshot name lives in.
func poolOf(name string) string {
	name, _, _ = strings.Cut(name, "@")
	pool, _, _ := strings.Cut(name, "/")
	return pool
}

const (
	listCmd = "zfs list -H -o name,type,origin -t all -r "
	getCmd  = "zfs get -H -p -s local -o name,property,value all "
)

// pools and datasets: the pools to list and the names whose properties
// are read (not snapshots), each once, in the order keys name them.
func split(keys []string) (pools, datasets []string) {
	for _, k := range keys {
		if p := poolOf(k); !slices.Contains(pools, p) {
			pools = append(pools, p)
		}
		if !strings.Contains(k, "@") && !slices.Contains(datasets, k) {
			datasets = append(datasets, k)
		}
	}
	return pools, datasets
}

type fact struct{}

var _ modules.FactRechecker = fact{}

// Script runs one zfs list of every pool the keys name and one zfs get of
// every dataset they name (not snapshots). zfs list has no -p on
// zfs-fuse, and needs none: names, types and origins are not numbers; the
// numbers come from zfs get -p. Both take several names and go on past a
// missing one. Their standard error is kept apart and printed after them
// with an "#err " prefix, so that it never lands inside a line of their
// output.
func (fact) Script(keys []string) string {
	pools, datasets := split(keys)
	var b strings.Builder
	b.WriteString("if command -v zfs >/dev/null 2>&1; then\n")
	run := func(header, cmd string, names []string) {
		b.WriteString("echo '" + header + "'\n")
		if len(names) == 0 {
			b.WriteString("echo '#exit 0'\n")
			return
		}
		b.WriteString("{ _orch_zerr=$(" + cmd + quoteAll(names) + " 2>&1 1>&3 3>&-); } 3>&1; echo \"#exit $?\"\n")
		b.WriteString("[ -z \"$_orch_zerr\" ] || printf '%s\\n' \"$_orch_zerr\" | sed 's/^/#err /'\n")
	}
	run("#list", strings.TrimSpace(listCmd), pools)
	run("#get", strings.TrimSpace(getCmd), datasets)
	b.WriteString("else\necho '#nozfs'\nfi\n")
	return b.String()
}

func quoteAll(words []string) string {
	var b strings.Builder
	for _, w := range words {
		b.WriteString(" " + modules.Quote(w))
	}
	return b.String()
}

// section is the output of one command of the script.
type section struct {
	lines []string // standard output
	errs  []string // standard error
	exit  int
}

func parseSections(out []byte) (list, get section, nozfs bool, err error) {
	s := strings.TrimSuffix(string(out), "\n")
	if s == "#nozfs" {
		return list, get, true, nil
	}
	var cur *section
	seen := 0
	for _, l := range strings.Split(s, "\n") {
		switch {
		case l == "#list" && seen == 0:
			cur, seen = &list, 1
		case l == "#get" && seen == 1:
			cur, seen = &get, 2
		case cur == nil:
			return list, get, false, fmt.Errorf("zfs facts: unexpected line %q", l)
		case strings.HasPrefix(l, "#exit "):
			n, err := strconv.Atoi(strings.TrimPrefix(l, "#exit "))
			if err != nil {
				return list, get, false, fmt.Errorf("zfs facts: bad exit line %q", l)
			}
			cur.exit = n
		case strings.HasPrefix(l, "#err "):
			cur.errs = append(cur.errs, strings.TrimPrefix(l, "#err "))
		default:
			cur.lines = append(cur.lines, l)
		}
	}
	if seen != 2 {
		return list, get, false, fmt.Errorf("zfs facts: unexpected output %q", s)
	}
	return list, get, false, nil
}

// notFound is how zfs says that a name it was given does not exist.
func notFound(name string) string { return "cannot open '" + name + "': dataset does not exist" }

// missingAndOther sorts a command's error lines into the names it said do
// not exist, which are answers, and anything else, which is an error.
func (s section) missingAndOther() (missing map[string]bool, other []string) {
	missing = map[string]bool{}
	for _, e := range s.errs {
		if n, ok := strings.CutPrefix(e, "cannot open '"); ok && strings.HasSuffix(n, "': dataset does not exist") {
			missing[strings.TrimSuffix(n, "': dataset does not exist")] = true
			continue
		}
		other = append(other, e)
	}
	if len(other) == 0 && s.exit != 0 && len(missing) == 0 {
		other = append(other, fmt.Sprintf("exit %d", s.exit))
	}
	return missing, other
}

func (fact) Parse(out []byte, keys []string) (map[string]any, error) {
	list, get, nozfs, err := parseSections(out)
	if err != nil {
		return nil, err
	}
	res := make(map[string]any, len(keys))
	if nozfs {
		for _, k := range keys {
			res[k] = State{Err: "there is no zfs command on this host"}
		}
		return res, nil
	}
	// The listing, by pool, with each pool's lines as zfs list -r POOL
	// alone prints them (for Recheck).
	listed := map[string][]entry{}
	poolLines := map[string][]string{}
	for _, l := range list.lines {
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("zfs facts: unexpected zfs list line %q", l)
		}
		p := poolOf(f[0])
		listed[p] = append(listed[p], entry{f[0], f[1], f[2]})
		poolLines[p] = append(poolLines[p], l)
	}
	// The local properties, by dataset: a line that does not start with a
	// dataset's name continues the value of the line before (a user
	// property may hold a newline).
	getLines := map[string][]string{}
	last := ""
	for _, l := range get.lines {
		if n, _, ok := strings.Cut(l, "\t"); ok && slices.Contains(keys, n) {
			last = n
		}
		if last == "" {
			return nil, fmt.Errorf("zfs facts: unexpected zfs get line %q", l)
		}
		getLines[last] = append(getLines[last], l)
	}
	listMissing, listErr := list.missingAndOther()
	getMissing, getErr := get.missingAndOther()
	for _, k := range keys {
		p := poolOf(k)
		var d State
		switch {
		case len(listErr) > 0:
			d.Err = "zfs list failed: " + strings.Join(listErr, "; ")
		case listMissing[p]:
			d.raw = notFound(p)
		case len(listed[p]) == 0:
			d.Err = "zfs list printed nothing of pool " + p
		default:
			d = describe(k, listed[p])
			d.raw = strings.Join(poolLines[p], "\n")
		}
		if !strings.Contains(k, "@") && d.Err == "" {
			d.get = strings.Join(getLines[k], "\n")
			if getMissing[k] {
				d.get = notFound(k)
			}
			d.raw = joinNonEmpty(d.raw, "#get", d.get)
			switch {
			case len(getErr) > 0:
				d.Err = "zfs get failed: " + strings.Join(getErr, "; ")
			case d.Exists && !getMissing[k]:
				local, err := parseLocal(k, getLines[k])
				if err != nil {
					return nil, err
				}
				d.Local = local
			}
			// Listed but not found by zfs get, or the other way round: it
			// went or came between the two commands; Recheck tells.
		}
		res[k] = d
	}
	return res, nil
}

// joinNonEmpty joins the parts that are not empty with newlines, as a
// shell's $( ) prints commands' outputs one after the other.
func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n")
}

// parseLocal reads zfs get -H -o name,property,value lines of one dataset.
func parseLocal(name string, lines []string) (map[string]string, error) {
	local := map[string]string{}
	last := ""
	for _, l := range lines {
		f := strings.SplitN(l, "\t", 3)
		switch {
		case len(f) == 3 && f[0] == name:
			last = f[1]
			local[last] = f[2]
		case last != "":
			// a user property's value may hold a newline (set by
			// something else than orch, which refuses them)
			local[last] += "\n" + l
		default:
			return nil, fmt.Errorf("zfs facts: unexpected zfs get line %q", l)
		}
	}
	if len(local) == 0 {
		return nil, nil
	}
	return local, nil
}

// describe reads what a pool's listing says of one name.
func describe(name string, pool []entry) State {
	d := State{Pool: true}
	byName := map[string]entry{}
	for _, e := range pool {
		byName[e.name] = e
	}
	if e, ok := byName[name]; ok {
		d.Exists, d.Type = true, e.typ
		if e.origin != "-" {
			d.Origin = e.origin
		}
	}
	ds, snap, isSnap := strings.Cut(name, "@")
	if isSnap {
		_, d.Parent = byName[ds]
	} else if i := strings.LastIndexByte(name, '/'); i >= 0 {
		_, d.Parent = byName[name[:i]]
	}
	var taken []string // what -r takes, with the name itself
	if isSnap {
		if d.Exists {
			taken = append(taken, name)
		}
		for _, e := range pool {
			if strings.HasPrefix(e.name, ds+"/") && e.typ != "snapshot" {
				s := e.name + "@" + snap
				if _, ok := byName[s]; ok {
					d.Children = append(d.Children, s)
					taken = append(taken, s)
				} else {
					d.Missing = append(d.Missing, e.name)
				}
			}
		}
	} else if d.Exists {
		taken = append(taken, name)
		for _, e := range pool {
			if strings.HasPrefix(e.name, name+"/") || strings.HasPrefix(e.name, name+"@") {
				d.Children = append(d.Children, e.name)
				taken = append(taken, e.name)
			}
		}
		slices.Reverse(d.Children) // deepest and newest first, as zfs destroy -r lists them
	}
	d.Clones = clonesOf(taken, pool)
	if isSnap && d.Exists {
		d.OwnClones = clonesOf([]string{name}, pool)
	}
	return d
}

// clonesOf finds what depends on the taken datasets and snapshots beyond
// themselves: clones of their snapshots, and what hangs under those
// clones, transitively, in the order of the listing.
func clonesOf(taken []string, pool []entry) []string {
	gone := map[string]bool{}
	for _, t := range taken {
		gone[t] = true
	}
	var out []string
	for grew := true; grew; {
		grew = false
		for _, e := range pool {
			if gone[e.name] || (!gone[e.origin] && !underAny(e.name, out)) {
				continue
			}
			gone[e.name] = true
			out = append(out, e.name)
			grew = true
		}
	}
	return out
}

// underAny reports whether name is a child or snapshot of one of tops.
func underAny(name string, tops []string) bool {
	for _, t := range tops {
		if strings.HasPrefix(name, t+"/") || strings.HasPrefix(name, t+"@") {
			return true
		}
	}
	return false
}

// Recheck holds while the pool's listing and the dataset's local
// properties read as they did.
func (fact) Recheck(key string, value any) string {
	d, ok := value.(State)
	if !ok || d.Err != "" {
		return "false"
	}
	cmd := listCmd + modules.Quote(poolOf(key)) + " 2>&1"
	if !strings.Contains(key, "@") {
		cmd += "; echo '#get'; " + getCmd + modules.Quote(key) + " 2>&1"
	}
	return fmt.Sprintf("[ \"$( { %s; } </dev/null)\" = %s ]", cmd, modules.Quote(d.raw))
}

// stillMissing holds while zfs does not know name.
func stillMissing(name string) string {
	return "{ ! zfs list -H -o name " + modules.Quote(name) + " >/dev/null 2>&1; }"
}

// stillThere holds while zfs knows name.
func stillThere(name string) string {
	return "zfs list -H -o name " + modules.Quote(name) + " >/dev/null 2>&1"
}

// sameLocal holds while a dataset's local properties read as gathered.
func sameLocal(name string, d State) string {
	return fmt.Sprintf("[ \"$( { %s%s 2>&1; } </dev/null)\" = %s ]", getCmd, modules.Quote(name), modules.Quote(d.get))
}

// recheckOf is a task's recheck: cond when the task's facts were
// gathered without error, else the fact's own recheck (which fails).
func recheckOf(req modules.CheckRequest, name string, cond func(State) string) string {
	d, ok := req.Facts[modules.FactKey{Fact: FactName, Key: name}].(State)
	if !ok || d.Err != "" {
		return "false"
	}
	return cond(d)
}
