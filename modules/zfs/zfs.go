// Package zfs is the zfs module family: ZFS file systems with their
// properties (zfs.dataset), snapshots (zfs.snapshot) and clones
// (zfs.clone), present or absent, driven with the host's own zfs(8).
package zfs

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/orch-dev/orch/modules"
)

// common is the part of the docs that the three modules share.
const common = `
Facts: one shared fact for all of a host's zfs tasks, gathered in the probe
exchange with two commands: one "zfs list -H -o name,type,origin -t all -r
POOL..." of every pool the tasks name (a clone lives in the pool of its
origin, so the listing holds every dependent) and one "zfs get -H -p -s
local -o name,property,value all DATASET..." of every dataset or clone
named; both go on past a name that does not exist. zfs list needs no -p
(and zfs-fuse has none): names, types and origins are not numbers; the
numbers come from zfs get -p, which prints them exactly (sizes in bytes).

Properties are compared by the exact value zfs get -p prints. The value you
write is normalised the way zfs itself parses it before the comparison:
sizes (quota, refquota, reservation, refreservation, recordsize,
volblocksize, special_small_blocks, filesystem_limit, snapshot_limit) with
libzfs's zfs_nicestrtonum rules ("1G" = "1g" = "1GiB" = "1073741824",
"1.5G", powers of 1024; "none" is 0 for the quotas and reservations),
booleans as on and off, integers in decimal; every other value is compared
as written, since zfs stores it so ("on" is not "lz4": compression=on is
its own value, and zfs get -p prints "on"). A mountpoint must be written
in its clean form (no trailing slash): zfs-fuse keeps it as written, so
another form would never compare equal (OpenZFS was not tried). So a
quota of "1G" on a dataset whose quota is 1073741824 is not a change, and
formatting never makes one (ansible#19689).

Only locally set properties are managed. A property you name is set
locally unless zfs get -s local already shows it with the wanted value;
one that merely inherits the wanted value from its parent (or has it as
the default) is set locally once, so that it stays when the parent
changes, and is "ok" from then on, never "changed" again
(community.general#4699). Properties you do not name are left as they
are: orch does not inherit or reset them. A value set by zfs receive
(source "received") counts as not set locally. The user, group and
project quotas (userquota@...) are refused: zfs get all does not list
them.

Destroying refuses what has dependents, naming each: a dataset with
children or snapshots, a snapshot with clones, and anything whose
snapshots have clones elsewhere. recursive=True destroys them too: with
"zfs destroy -r" when everything that goes lies below the name (children
and snapshots; for a snapshot, the snapshots of the same name below its
dataset), and with "zfs destroy -R" only when clones elsewhere depend on
what goes (those clones, with their own children and clones, go too; the
reason and the diff list them all). The check decides from the facts, so
--check says exactly what would go.

zfs-fuse lets go of a dataset a while after its files are closed, and
says "dataset is busy" until then: a destroy retries for up to 10 seconds
while zfs says busy (OpenZFS says so only while something holds the
dataset open); a dataset that stays busy fails the task with zfs's
message.

Effects: zfs:NAME. A creation also zfs:PARENT for each parent (zfs
create -p may make them); a destroy zfs:NAME/ (what is under it), and with
recursive=True zfs:POOL/ (-R may take clones anywhere in the pool); a
snapshot or a clone zfs:DATASET of the dataset whose snapshot it is or
clones (its destroy depends on them), a clone also zfs:SNAPSHOT. A task
reads its own keys, a destroy also what is under its name. Destroy a clone
with zfs.clone(state="absent") rather than zfs.dataset, so that a later
destroy of its origin in the same run is decided again.

Exchanges: a no-change rerun of any mix of zfs tasks is one exchange per
host, and a run that changes things one more. Inside the apply each task
confirms on the host that what its decision read still holds (a dataset
still missing, its local properties as read), so tasks that depend on
each other (a dataset, its snapshot, a clone of that) apply in the same
exchange. A destroy that was refused because of a dependent that an
earlier task of the run destroys is decided again from fresh facts: one
exchange more.

Verified against: zfs-fuse 0.7.0 (Debian) on file-backed pools, live
through the engine (check mode, create, a no-change rerun in one exchange,
a property changed outside orch repaired, destroys refused and
recursive, snapshots and clones); FreeBSD 14's OpenZFS only on outputs
transcribed from the zfs-list(8) and zfs-get(8) manual pages and
zfs_main.c, not on a FreeBSD host. The zfs-fuse quirks the module meets
are listed in testkit/zfstest.`

func init() {
	modules.Register(modules.Info{ID: "zfs.dataset", New: func() any { return new(Dataset) }, Doc: `Creates or destroys a ZFS file system and sets its properties.

state="present" creates the file system (zfs create -p -o PROP=VALUE ...,
making missing parents), or sets the named properties that differ (zfs set
PROP=VALUE, one per property); state="absent" destroys it (zfs destroy).
recursive applies to state="absent" only. Volumes (volsize) are not
managed.
` + common})
	modules.Register(modules.Info{ID: "zfs.snapshot", New: func() any { return new(Snapshot) }, Doc: `Takes or destroys a ZFS snapshot ("pool/ds@snap").

state="present" takes it (zfs snapshot) if it does not exist; with
recursive=True also every dataset below that lacks a snapshot of that name
(zfs snapshot -r when none has it; otherwise each missing one, one by one,
since zfs snapshot -r refuses when the top one exists). An existing
snapshot is never retaken: a snapshot is a point in time. state="absent"
destroys it (zfs destroy), refusing while clones depend on it.
` + common})
	modules.Register(modules.Info{ID: "zfs.clone", New: func() any { return new(Clone) }, Doc: `Creates or destroys a ZFS clone of a snapshot, with its properties.

state="present" creates the clone (zfs clone -p -o PROP=VALUE SNAPSHOT
NAME), or sets the named properties that differ (zfs set). A dataset of
that name that is not a clone of snapshot fails the task, naming its
origin: orch never replaces it. state="absent" destroys the clone, and
refuses to destroy a dataset of that name that is not a clone of
snapshot; a clone with dependents (children, snapshots, clones of its
snapshots) is refused unless recursive=True. A promoted clone is no longer
a clone of snapshot (its origin swapped).
` + common})
}

var (
	// A dataset name: components of letters, digits, _ - . :, separated by
	// slashes. zfs allows spaces too; orch does not.
	datasetName  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*$`)
	snapshotPart = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
)

func checkDataset(what, name string) error {
	if !datasetName.MatchString(name) || len(name) > 255 || strings.Contains(name, "/./") || strings.HasSuffix(name, "/.") {
		return fmt.Errorf("%s %q is not a ZFS dataset name (pool/path, no @)", what, name)
	}
	return nil
}

func checkSnapshot(what, name string) error {
	ds, snap, ok := strings.Cut(name, "@")
	if !ok || checkDataset(what, ds) != nil || !snapshotPart.MatchString(snap) || len(name) > 255 {
		return fmt.Errorf("%s %q is not a ZFS snapshot name (pool/ds@snap)", what, name)
	}
	return nil
}

func checkState(state string) error {
	switch state {
	case "present", "absent":
	default:
		return fmt.Errorf("state %q is not one of present, absent", state)
	}
	return nil
}

func key(name string) string { return FactName + ":" + name }

// parents are the state keys of the datasets above name, which zfs create
// -p makes when they are missing.
func parents(name string) []string {
	var out []string
	for i := strings.LastIndexByte(name, '/'); i > 0; i = strings.LastIndexByte(name[:i], '/') {
		out = append(out, key(name[:i]))
	}
	return out
}

// factOf returns the zfs fact of a name, or an error when there is none.
func factOf(req modules.CheckRequest, name string) (State, error) {
	d, ok := req.Facts[modules.FactKey{Fact: FactName, Key: name}].(State)
	if !ok {
		return d, fmt.Errorf("no zfs facts gathered for %s", name)
	}
	if d.Err != "" {
		return d, fmt.Errorf("%s", d.Err)
	}
	return d, nil
}

// setProperties compares the wanted properties with the local ones and
// writes, for those that differ, the zfs set commands, the diff lines and
// the words of the reason.
func setProperties(name string, want []property, local map[string]string) (cmds, diff, words []string) {
	for _, p := range want {
		have, set := local[p.name]
		if set && have == p.exact {
			continue
		}
		cmds = append(cmds, "zfs set "+modules.Quote(p.name+"="+p.value)+" "+modules.Quote(name))
		shown := p.name + "=" + p.value
		if p.exact != p.value {
			shown += " (" + p.exact + ")"
		}
		if set {
			diff = append(diff, "-"+p.name+"="+have)
			words = append(words, p.name+" "+have+" -> "+p.value)
		} else {
			diff = append(diff, "-"+p.name+" (not set locally)")
			words = append(words, p.name+" -> "+p.value+" (not set locally)")
		}
		diff = append(diff, "+"+shown)
	}
	return cmds, diff, words
}

// createOptions are the -o options of zfs create and zfs clone.
func createOptions(want []property) string {
	var b strings.Builder
	for _, p := range want {
		b.WriteString(" -o " + modules.Quote(p.name+"="+p.value))
	}
	return b.String()
}

func diffOf(name string, lines []string) string {
	return "--- zfs " + name + "\n+++ zfs " + name + "\n" + strings.Join(lines, "\n") + "\n"
}

// destroyHelper retries zfs destroy while zfs-fuse says the dataset is
// busy (see the docs), and prints zfs's message when it gives up.
const destroyHelper = `_orch_zfs_destroy() {
  _orch_n=0
  while ! _orch_out=$(zfs destroy "$@" 2>&1); do
    _orch_n=$((_orch_n + 1))
    case $_orch_out in *"is busy"*) [ "$_orch_n" -lt 10 ] && { sync; sleep 1; continue; } ;; esac
    printf '%s\n' "$_orch_out" >&2
    return 1
  done
}
`

// destroyPlan decides a destroy of name from its facts: the zfs destroy
// flags, and everything that goes, or an error naming the dependents when
// recursive is false.
type destroyPlan struct {
	flag string   // "", "-r" or "-R"
	gone []string // the name, then what -r or -R takes with it
}

func planDestroy(kind, name string, d State, recursive bool) (destroyPlan, error) {
	if !recursive && (len(d.Children) > 0 || len(d.Clones) > 0) {
		var what []string
		if len(d.Children) > 0 {
			what = append(what, "children and snapshots "+strings.Join(d.Children, ", "))
		}
		if len(d.Clones) > 0 {
			what = append(what, "dependent clones "+strings.Join(d.Clones, ", "))
		}
		return destroyPlan{}, fmt.Errorf("refusing to destroy %s %s: it has %s; set recursive=True to destroy them too", kind, name, strings.Join(what, " and "))
	}
	p := destroyPlan{gone: append(append([]string{name}, d.Children...), d.Clones...)}
	switch {
	case len(d.Clones) > 0:
		p.flag = "-R"
	case len(d.Children) > 0:
		p.flag = "-r"
	}
	return p, nil
}

func (p destroyPlan) reason() string {
	r := "destroy " + p.gone[0]
	if len(p.gone) > 1 {
		r += " with " + strings.Join(p.gone[1:], ", ")
	}
	if p.flag != "" {
		r += " (zfs destroy " + p.flag + ")"
	}
	return r
}

func (p destroyPlan) diff() []string {
	var out []string
	for _, g := range p.gone {
		out = append(out, "-"+g)
	}
	return out
}

func (p destroyPlan) script(target string) string {
	args := modules.Quote(target)
	if p.flag != "" {
		args = p.flag + " " + args
	}
	return destroyHelper + "_orch_zfs_destroy " + args + "\n"
}
