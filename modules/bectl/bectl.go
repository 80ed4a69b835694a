// Package bectl is the bectl module: FreeBSD boot environments created
// (from the running BE, another BE or snapshot, or a zfs send stream),
// activated for good or for the next boot only, and destroyed.
package bectl

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/orch-dev/orch/modules"
)

func init() {
	modules.Register(modules.Info{ID: "bectl", New: func() any { return new(Bectl) }, Doc: `Creates, activates and destroys FreeBSD boot environments with bectl(8).

States: "present" creates the BE when it does not exist; "absent" destroys
it; "active" makes it the BE the next boot uses: for good (bectl activate
NAME), or with temporary=True for the next boot only (bectl activate -t
NAME; the boot after that returns to the permanent one, which is how a
new BE is tried safely). A BE that exists is never re-created or compared
with its source.

source= says where a new BE comes from:
- None: the BE running now (bectl create NAME);
- "BE" or "BE@snapshot": another BE, or a snapshot of one (bectl create
  -e SOURCE NAME);
- a path starting with "/": a zfs send stream in a file on the host,
  received into the BE root (zfs recv -u POOL/ROOT/NAME < PATH, then
  canmount=noauto and mountpoint=/ as bectl import sets them). The BE root
  is the parent of the boot pool's bootfs.
state="active" creates a missing BE only from an explicit source=: an
active BE that does not exist and has no source is an error, so that a
misspelt name never clones the running system and boots it. (In one role,
a bectl(state="present", source=…) task before it provides the BE: the
activation is decided again once it exists, and under --check it is
reported as decided only then.)

Already done, and reported "ok": present when the BE exists; absent when
it does not; active when it has R (next boot) and no other BE is pending
a temporary activation; active with temporary=True when it has T, or has
R with no T elsewhere. A permanent activation while another BE is pending
a temporary one first removes that (bectl activate -T), so the next boot
is the one asked for.

Refused, with an error naming the BE: destroying the BE running now (N in
bectl list) or the BE the next boots use (R): activate and boot another
first. A BE pending a temporary activation has it removed before it is
destroyed. The diff (--diff) lists the commands a change runs.

Facts: one bectl list -H and zpool list -H -o name,bootfs per host for all
its bectl tasks (the shared fact "bectl", keyed by BE name; plans read it
as h.fact("bectl", NAME), a dict with exists, active, next_boot,
temporary, mountpoint, booted, next_boot_be, temporary_be, root and flags).
Effects: bectl:NAME, and bectl: for activations and destruction (they
change the other BEs' flags, or drop a pending temporary activation);
creating or destroying a BE also touches zfs:* (its datasets and the
snapshot it is cloned from).

Verified against: recorded FreeBSD behaviour (testdata/freebsd/bectl,
transcribed from freebsd-src's sbin/bectl (bectl.8, bectl.c,
bectl_list.c) and lib/libbe, and a published EuroBSDcon 2023 transcript)
and live on the lab's FreeBSD stand-in (lab/standin: bectl, zfs and
reboots over zfs-fuse, with the loader's one-shot fallback), not on a
FreeBSD kernel.`})
}

// Bectl is the argument struct of bectl().
type Bectl struct {
	Name      string  `arg:"name,required" doc:"the boot environment"`
	State     string  `arg:"state" default:"present" doc:"present | active | absent"`
	Source    *string `arg:"source" doc:"where a new BE comes from: None (the running BE), \"BE\" or \"BE@snap\", or \"/path\" to a zfs send stream on the host"`
	Temporary bool    `arg:"temporary" default:"False" doc:"with state=\"active\": for the next boot only (bectl activate -t)"`
}

var (
	_ modules.Task       = (*Bectl)(nil)
	_ modules.Validator  = (*Bectl)(nil)
	_ modules.FactReader = (*Bectl)(nil)
	_ modules.Effector   = (*Bectl)(nil)
	_ modules.Reader     = (*Bectl)(nil)
	_ modules.Describer  = (*Bectl)(nil)
)

func (b *Bectl) Describe() string { return "bectl " + b.Name }

// validName is what libbe accepts in a BE name (no spaces, no slashes),
// narrowed to what is safe in a dataset name and never an option.
var validName = regexp.MustCompile(`^[A-Za-z0-9_.:][A-Za-z0-9_.:-]*$`)

func (b *Bectl) Validate(*modules.Env) error {
	if !validName.MatchString(b.Name) {
		return fmt.Errorf("name %q is not a boot environment name (letters, digits, . _ : -, not starting with -)", b.Name)
	}
	switch b.State {
	case "present", "active", "absent":
	default:
		return fmt.Errorf("state %q is not one of present, active, absent", b.State)
	}
	if b.Temporary && b.State != "active" {
		return fmt.Errorf("temporary=True needs state=\"active\" (it activates for the next boot only), not %q", b.State)
	}
	if b.Source == nil {
		return nil
	}
	src := *b.Source
	switch {
	case b.State == "absent":
		return fmt.Errorf("source %q makes no sense with state=\"absent\"", src)
	case strings.HasPrefix(src, "/"):
		if path.Clean(src) != src || strings.ContainsAny(src, "\x00\n") {
			return fmt.Errorf("source %q is not a clean absolute path to a zfs send stream", src)
		}
	default:
		be, snap, hasSnap := strings.Cut(src, "@")
		if !validName.MatchString(be) || hasSnap && !validName.MatchString(snap) {
			return fmt.Errorf("source %q is neither a boot environment (\"BE\", \"BE@snapshot\") nor an absolute path to a stream", src)
		}
		if be == b.Name {
			return fmt.Errorf("source %q is the boot environment itself", src)
		}
	}
	return nil
}

func (b *Bectl) source() string {
	if b.Source == nil {
		return ""
	}
	return *b.Source
}

// sourceBE is the BE a new BE is cloned from, "" for the running one or a stream.
func (b *Bectl) sourceBE() string {
	src := b.source()
	if src == "" || strings.HasPrefix(src, "/") {
		return ""
	}
	be, _, _ := strings.Cut(src, "@")
	return be
}

func (b *Bectl) stream() string {
	if src := b.source(); strings.HasPrefix(src, "/") {
		return src
	}
	return ""
}

func (b *Bectl) Facts() []modules.FactKey {
	keys := []modules.FactKey{Key(b.Name)}
	if be := b.sourceBE(); be != "" {
		keys = append(keys, Key(be))
	}
	return keys
}

// Effects: the BE; activations change the others' flags (bectl:), and so
// does destroying a BE pending a temporary activation (it removes that);
// making or destroying a BE makes or destroys datasets and snapshots.
func (b *Bectl) Effects() []string {
	out := []string{"bectl:" + b.Name}
	if b.State != "present" {
		out = append(out, "bectl:")
	}
	if b.State != "active" || b.Source != nil {
		out = append(out, "zfs:*")
	}
	return out
}

// Reads: every BE's flags (an activation elsewhere changes what is next)
// and the stream file.
func (b *Bectl) Reads() []string {
	out := []string{"bectl:"}
	if s := b.stream(); s != "" {
		out = append(out, modules.PathKey(s))
	}
	return out
}

// Probe says whether the stream file is there; the rest is the shared fact.
func (b *Bectl) Probe(modules.ProbeRequest) string {
	s := b.stream()
	if s == "" {
		return ""
	}
	return fmt.Sprintf("if [ -f %[1]s ] && [ -r %[1]s ]; then echo stream; else echo nostream; fi", modules.Quote(s))
}

func (b *Bectl) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	v, ok := req.Facts[Key(b.Name)]
	if !ok {
		resp.Err = fmt.Errorf("no bectl facts gathered for %s", b.Name)
		return
	}
	st := stateOf(v)
	var cmds []string
	var why []string
	switch b.State {
	case "absent":
		switch {
		case !st.exists:
			resp.Reason = "boot environment " + b.Name + " does not exist"
			return
		case st.active:
			resp.Err = fmt.Errorf("boot environment %s is the one running now (N in bectl list); boot another BE before destroying it", b.Name)
			return
		case st.nextBoot:
			resp.Err = fmt.Errorf("boot environment %s is the one the next boots use (R in bectl list); activate another BE before destroying it", b.Name)
			return
		}
		if st.temporary {
			cmds = append(cmds, "bectl activate -T")
			why = append(why, "remove its temporary activation")
		}
		cmds = append(cmds, "bectl destroy "+modules.Quote(b.Name))
		why = append(why, "destroy boot environment "+b.Name)
	case "present", "active":
		if !st.exists {
			if b.State == "active" && b.Source == nil {
				resp.Err = fmt.Errorf("boot environment %s does not exist (yet): source= or an earlier bectl task must create it before bectl activate%s %s",
					b.Name, map[bool]string{true: " -t"}[b.Temporary], b.Name)
				return
			}
			c, w, err := b.create(req, st)
			if err != nil {
				resp.Err = err
				return
			}
			cmds, why = append(cmds, c...), append(why, w)
		} else if b.State == "present" {
			resp.Reason = "boot environment " + b.Name + " exists (" + st.flags[b.Name] + ")"
			return
		}
		if b.State == "active" {
			c, w := b.activate(st)
			if len(c) == 0 && len(cmds) == 0 {
				resp.Reason = w
				return
			}
			cmds, why = append(cmds, c...), append(why, w)
		}
	}
	resp.Changed = true
	resp.Reason = strings.Join(why, ", then ")
	var diff strings.Builder
	for _, c := range cmds {
		diff.WriteString("+ " + c + "\n")
	}
	resp.Diff = diff.String()
	resp.Apply = strings.Join(cmds, "\n") + "\n"
}

// create returns the commands that make the BE from its source.
func (b *Bectl) create(req modules.CheckRequest, st state) ([]string, string, error) {
	name := modules.Quote(b.Name)
	switch src := b.source(); {
	case src == "":
		from := st.booted
		if from == "" {
			from = "the running system"
		}
		return []string{"bectl create " + name}, "create boot environment " + b.Name + " from " + from, nil
	case strings.HasPrefix(src, "/"):
		if strings.TrimSpace(string(req.Output)) != "stream" {
			return nil, "", fmt.Errorf("source %s: no such readable file on the host (a zfs send stream to receive into boot environment %s)", src, b.Name)
		}
		if st.root == "" {
			return nil, "", fmt.Errorf("cannot tell where boot environments live: no pool has bootfs set (zpool list -o name,bootfs)")
		}
		ds := modules.Quote(st.root + "/" + b.Name)
		return []string{
			"zfs recv -u " + ds + " < " + modules.Quote(src),
			"zfs set canmount=noauto " + ds,
			"zfs set mountpoint=/ " + ds,
		}, "receive " + src + " into boot environment " + b.Name + " (" + st.root + "/" + b.Name + ")", nil
	default:
		if s := stateOf(req.Facts[Key(b.sourceBE())]); !s.exists {
			return nil, "", fmt.Errorf("source boot environment %s does not exist", b.sourceBE())
		}
		return []string{"bectl create -e " + modules.Quote(src) + " " + name}, "create boot environment " + b.Name + " from " + src, nil
	}
}

// activate returns the commands that make the BE the next boot's, or none
// and why none are needed.
func (b *Bectl) activate(st state) ([]string, string) {
	name := modules.Quote(b.Name)
	pendingElsewhere := st.temporaryBE != "" && st.temporaryBE != b.Name
	if b.Temporary {
		switch {
		case st.temporary:
			return nil, "boot environment " + b.Name + " is already activated for the next boot (T)"
		case st.nextBoot && st.temporaryBE == "":
			return nil, "boot environment " + b.Name + " is already the one the next boots use (R)"
		}
		return []string{"bectl activate -t " + name}, "activate " + b.Name + " for the next boot only"
	}
	switch {
	case st.nextBoot && !pendingElsewhere:
		return nil, "boot environment " + b.Name + " is already active (" + st.flags[b.Name] + ")"
	case st.nextBoot:
		return []string{"bectl activate -T"}, "remove the temporary activation of " + st.temporaryBE + " (" + b.Name + " is already active)"
	case pendingElsewhere:
		return []string{"bectl activate -T", "bectl activate " + name}, "remove the temporary activation of " + st.temporaryBE + " and activate " + b.Name
	}
	return []string{"bectl activate " + name}, "activate boot environment " + b.Name
}
