package zfs

import (
	"fmt"
	"strings"

	"github.com/orch-dev/orch/modules"
)

// Clone is the argument struct of zfs.clone().
type Clone struct {
	Snapshot   string         `arg:"snapshot,required" doc:"the snapshot to clone: pool/ds@snap"`
	Name       string         `arg:"name,required" doc:"the clone: pool/path, in the snapshot's pool"`
	Properties map[string]any `arg:"properties" doc:"properties to set locally on the clone, as for zfs.dataset"`
	State      string         `arg:"state" default:"present" doc:"present | absent"`
	Recursive  bool           `arg:"recursive" default:"False" doc:"state=absent: destroy the clone's children, snapshots (zfs destroy -r) and dependent clones (-R) too, instead of refusing"`
}

var (
	_ modules.Task       = (*Clone)(nil)
	_ modules.Validator  = (*Clone)(nil)
	_ modules.FactReader = (*Clone)(nil)
	_ modules.Effector   = (*Clone)(nil)
	_ modules.Reader     = (*Clone)(nil)
	_ modules.Describer  = (*Clone)(nil)
	_ modules.Rechecker  = (*Clone)(nil)
)

func (c *Clone) Describe() string { return "zfs.clone " + c.Name }

func (c *Clone) Validate(*modules.Env) error {
	if err := checkSnapshot("snapshot", c.Snapshot); err != nil {
		return err
	}
	if err := checkDataset("name", c.Name); err != nil {
		return err
	}
	if poolOf(c.Name) != poolOf(c.Snapshot) {
		return fmt.Errorf("name %s is not in the pool of snapshot %s: a clone lives in its origin's pool", c.Name, c.Snapshot)
	}
	if err := checkState(c.State); err != nil {
		return err
	}
	props, err := properties(c.Properties)
	if err != nil {
		return err
	}
	if c.State == "absent" && len(props) > 0 {
		return fmt.Errorf("properties make no sense with state=absent")
	}
	return nil
}

func (c *Clone) origin() string { ds, _, _ := strings.Cut(c.Snapshot, "@"); return ds }

func (c *Clone) Facts() []modules.FactKey {
	return []modules.FactKey{{Fact: FactName, Key: c.Name}, {Fact: FactName, Key: c.Snapshot}}
}

// Reads: a destroy's decision depends on what is under the clone.
func (c *Clone) Reads() []string { return []string{key(c.Name + "/")} }

// Effects: the clone, and its origin snapshot and dataset, which gain or
// lose a dependent.
func (c *Clone) Effects() []string {
	out := []string{key(c.Name), key(c.Snapshot), key(c.origin())}
	if c.State == "absent" {
		out = append(out, key(c.Name+"/"))
		if c.Recursive {
			out = append(out, key(poolOf(c.Name)+"/"))
		}
		return out
	}
	return append(out, parents(c.Name)...)
}

// Recheck, as for zfs.dataset: a creation while the clone is still
// missing (whether its snapshot exists only changes the words), a property
// change while the clone's origin and local properties are as read.
func (c *Clone) Recheck(req modules.CheckRequest) string {
	return recheckOf(req, c.Name, func(st State) string {
		switch {
		case c.State == "absent":
			return fact{}.Recheck(c.Name, st)
		case !st.Exists:
			return stillMissing(c.Name)
		}
		return "{ [ \"$(zfs get -H -o value origin " + modules.Quote(c.Name) + " 2>&1 </dev/null)\" = " + modules.Quote(st.Origin) + " ] && " + sameLocal(c.Name, st) + "; }"
	})
}

func (c *Clone) Probe(modules.ProbeRequest) string { return "" }

func (c *Clone) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	props, err := properties(c.Properties)
	if err != nil {
		resp.Err = err
		return
	}
	st, err := factOf(req, c.Name)
	if err != nil {
		resp.Err = err
		return
	}
	snap, err := factOf(req, c.Snapshot)
	if err != nil {
		resp.Err = err
		return
	}
	if st.Exists && st.Origin != c.Snapshot {
		what := "not a clone"
		if st.Origin != "" {
			what = "a clone of " + st.Origin
		}
		verb := "replacing"
		if c.State == "absent" {
			verb = "destroying"
		}
		resp.Err = fmt.Errorf("%s exists and is %s, not of %s: orch is not %s it", c.Name, what, c.Snapshot, verb)
		return
	}
	if c.State == "absent" {
		if !st.Exists {
			resp.Reason = "clone " + c.Name + " does not exist"
			return
		}
		p, err := planDestroy("clone", c.Name, st, c.Recursive)
		if err != nil {
			resp.Err = err
			return
		}
		resp.Changed, resp.Reason, resp.Diff, resp.Apply = true, p.reason(), diffOf(c.Name, p.diff()), p.script(c.Name)
		return
	}
	present(resp, c.Name, st, props, func() (string, string) {
		reason := "clone " + c.Snapshot + " as " + c.Name
		if !snap.Exists {
			reason += " (snapshot " + c.Snapshot + " does not exist yet)"
		}
		return "zfs clone -p" + createOptions(props) + " " + modules.Quote(c.Snapshot) + " " + modules.Quote(c.Name), reason
	})
}
