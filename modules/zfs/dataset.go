package zfs

import (
	"fmt"
	"strings"

	"github.com/orch-dev/orch/modules"
)

// Dataset is the argument struct of zfs.dataset().
type Dataset struct {
	Name       string         `arg:"name,required" doc:"the file system: pool/path"`
	State      string         `arg:"state" default:"present" doc:"present | absent"`
	Properties map[string]any `arg:"properties" doc:"properties to set locally: {\"compression\": \"lz4\", \"quota\": \"10G\"}; values are strings, integers or booleans (on/off)"`
	Recursive  bool           `arg:"recursive" default:"False" doc:"state=absent: destroy children, snapshots (zfs destroy -r) and dependent clones (-R) too, instead of refusing"`
}

var (
	_ modules.Task       = (*Dataset)(nil)
	_ modules.Validator  = (*Dataset)(nil)
	_ modules.FactReader = (*Dataset)(nil)
	_ modules.Effector   = (*Dataset)(nil)
	_ modules.Reader     = (*Dataset)(nil)
	_ modules.Describer  = (*Dataset)(nil)
	_ modules.Rechecker  = (*Dataset)(nil)
)

func (d *Dataset) Describe() string { return "zfs.dataset " + d.Name }

func (d *Dataset) Validate(*modules.Env) error {
	if err := checkDataset("name", d.Name); err != nil {
		return err
	}
	if err := checkState(d.State); err != nil {
		return err
	}
	props, err := properties(d.Properties)
	if err != nil {
		return err
	}
	if d.State == "absent" && len(props) > 0 {
		return fmt.Errorf("properties make no sense with state=absent")
	}
	if d.State == "absent" && !strings.Contains(d.Name, "/") {
		return fmt.Errorf("name %s is a pool's root file system: zfs.dataset does not destroy pools", d.Name)
	}
	return nil
}

func (d *Dataset) Facts() []modules.FactKey {
	return []modules.FactKey{{Fact: FactName, Key: d.Name}}
}

// Reads: a destroy's decision depends on what is under the dataset.
func (d *Dataset) Reads() []string { return []string{key(d.Name + "/")} }

func (d *Dataset) Effects() []string {
	if d.State == "absent" {
		out := []string{key(d.Name), key(d.Name + "/")}
		if d.Recursive {
			out = append(out, key(poolOf(d.Name)+"/"))
		}
		return out
	}
	return append([]string{key(d.Name)}, parents(d.Name)...)
}

// Recheck confirms only what the decision read, so that the creation of
// a sibling or a parent in the same apply does not send the task back to
// be probed again: a creation while the dataset is still missing, a
// property change while its local properties are as read. A destroy
// depends on the whole pool (its clones may live anywhere in it).
func (d *Dataset) Recheck(req modules.CheckRequest) string {
	return recheckOf(req, d.Name, func(st State) string {
		switch {
		case d.State == "absent":
			return fact{}.Recheck(d.Name, st)
		case !st.Exists:
			return stillMissing(d.Name)
		}
		return sameLocal(d.Name, st)
	})
}

func (d *Dataset) Probe(modules.ProbeRequest) string { return "" }

func (d *Dataset) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	props, err := properties(d.Properties)
	if err != nil {
		resp.Err = err
		return
	}
	st, err := factOf(req, d.Name)
	if err != nil {
		resp.Err = err
		return
	}
	if st.Exists && st.Type != "filesystem" {
		resp.Err = fmt.Errorf("%s is a %s, not a file system", d.Name, st.Type)
		return
	}
	if !st.Exists && !strings.Contains(d.Name, "/") {
		resp.Err = fmt.Errorf("pool %s does not exist: zfs.dataset does not create pools", d.Name)
		return
	}
	if d.State == "absent" {
		if !st.Exists {
			resp.Reason = d.Name + " does not exist"
			return
		}
		p, err := planDestroy("dataset", d.Name, st, d.Recursive)
		if err != nil {
			resp.Err = err
			return
		}
		resp.Changed, resp.Reason = true, p.reason()
		resp.Diff = diffOf(d.Name, p.diff())
		resp.Apply = p.script(d.Name)
		return
	}
	present(resp, d.Name, st, props, func() (string, string) {
		return "zfs create -p" + createOptions(props) + " " + modules.Quote(d.Name), "create file system " + d.Name
	})
}

// present decides a dataset or clone that should exist: create it when it
// does not, else set the properties that differ.
func present(resp *modules.CheckResponse, name string, st State, props []property, create func() (cmd, reason string)) {
	if !st.Exists {
		cmd, reason := create()
		lines := []string{"+" + name}
		for _, p := range props {
			lines = append(lines, "+"+p.name+"="+p.value)
		}
		if !st.Pool {
			reason += " (pool " + poolOf(name) + " does not exist yet)"
		} else if strings.Contains(name, "/") && !st.Parent {
			reason += " (and its missing parents)"
		}
		resp.Changed, resp.Reason, resp.Diff, resp.Apply = true, reason, diffOf(name, lines), cmd+"\n"
		return
	}
	cmds, diff, words := setProperties(name, props, st.Local)
	if len(cmds) == 0 {
		resp.Reason = name + " exists"
		if len(props) > 0 {
			var ps []string
			for _, p := range props {
				ps = append(ps, p.name+"="+p.value)
			}
			resp.Reason += " with " + strings.Join(ps, ", ") + " set locally"
		}
		return
	}
	resp.Changed = true
	resp.Reason = "set " + strings.Join(words, ", ") + " on " + name
	resp.Diff = diffOf(name, diff)
	resp.Apply = strings.Join(cmds, "\n") + "\n"
}
