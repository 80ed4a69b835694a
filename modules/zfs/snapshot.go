package zfs

import (
	"strings"

	"github.com/orch-dev/orch/modules"
)

// Snapshot is the argument struct of zfs.snapshot().
type Snapshot struct {
	Name      string `arg:"name,required" doc:"the snapshot: pool/ds@snap"`
	State     string `arg:"state" default:"present" doc:"present | absent"`
	Recursive bool   `arg:"recursive" default:"False" doc:"also the snapshots of the same name of every dataset below (zfs snapshot -r, zfs destroy -r; -R when clones depend on them)"`
}

var (
	_ modules.Task       = (*Snapshot)(nil)
	_ modules.Validator  = (*Snapshot)(nil)
	_ modules.FactReader = (*Snapshot)(nil)
	_ modules.Effector   = (*Snapshot)(nil)
	_ modules.Reader     = (*Snapshot)(nil)
	_ modules.Describer  = (*Snapshot)(nil)
	_ modules.Rechecker  = (*Snapshot)(nil)
)

func (s *Snapshot) Describe() string { return "zfs.snapshot " + s.Name }

func (s *Snapshot) Validate(*modules.Env) error {
	if err := checkSnapshot("name", s.Name); err != nil {
		return err
	}
	return checkState(s.State)
}

func (s *Snapshot) dataset() string { ds, _, _ := strings.Cut(s.Name, "@"); return ds }

func (s *Snapshot) Facts() []modules.FactKey {
	return []modules.FactKey{{Fact: FactName, Key: s.Name}}
}

// Reads: whether the dataset exists and, recursively, what is below it.
func (s *Snapshot) Reads() []string {
	out := []string{key(s.dataset())}
	if s.Recursive {
		out = append(out, key(s.dataset()+"/"))
	}
	return out
}

// Effects: the snapshot, and its dataset, which gains or loses it (and
// whose destroy depends on it).
func (s *Snapshot) Effects() []string {
	out := []string{key(s.Name), key(s.dataset())}
	if s.Recursive {
		out = append(out, key(s.dataset()+"/"))
		if s.State == "absent" {
			out = append(out, key(poolOf(s.Name)+"/"))
		}
	}
	return out
}

// Recheck: a snapshot that should exist is decided by its own existence
// alone (whether its dataset exists only changes the words); what is below
// it and what depends on it need the pool's listing.
func (s *Snapshot) Recheck(req modules.CheckRequest) string {
	return recheckOf(req, s.Name, func(st State) string {
		switch {
		case s.State == "absent" || s.Recursive:
			return fact{}.Recheck(s.Name, st)
		case st.Exists:
			return stillThere(s.Name)
		}
		return stillMissing(s.Name)
	})
}

func (s *Snapshot) Probe(modules.ProbeRequest) string { return "" }

func (s *Snapshot) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	st, err := factOf(req, s.Name)
	if err != nil {
		resp.Err = err
		return
	}
	_, snap, _ := strings.Cut(s.Name, "@")
	if s.State == "absent" {
		s.destroy(st, resp)
		return
	}
	var take []string // the snapshots to take, one zfs snapshot each
	var cmds []string
	switch {
	case !st.Exists && s.Recursive && len(st.Children) == 0:
		cmds = []string{"zfs snapshot -r " + modules.Quote(s.Name)}
		take = append([]string{s.Name}, withSnap(st.Missing, snap)...)
	default:
		if !st.Exists {
			take = append(take, s.Name)
		}
		if s.Recursive {
			take = append(take, withSnap(st.Missing, snap)...)
		}
		for _, t := range take {
			cmds = append(cmds, "zfs snapshot "+modules.Quote(t))
		}
	}
	if len(take) == 0 {
		resp.Reason = "snapshot " + s.Name + " exists"
		if s.Recursive && len(st.Children) > 0 {
			resp.Reason += ", and below: " + strings.Join(st.Children, ", ")
		}
		return
	}
	resp.Changed = true
	resp.Reason = "take snapshot " + strings.Join(take, ", ")
	if !st.Parent {
		resp.Reason += " (dataset " + s.dataset() + " does not exist yet)"
	}
	var diff []string
	for _, t := range take {
		diff = append(diff, "+"+t)
	}
	resp.Diff = diffOf(s.Name, diff)
	resp.Apply = strings.Join(cmds, "\n") + "\n"
}

func withSnap(datasets []string, snap string) []string {
	var out []string
	for _, d := range datasets {
		out = append(out, d+"@"+snap)
	}
	return out
}

func (s *Snapshot) destroy(st State, resp *modules.CheckResponse) {
	if !s.Recursive {
		if !st.Exists {
			resp.Reason = "snapshot " + s.Name + " does not exist"
			return
		}
		p, err := planDestroy("snapshot", s.Name, State{Clones: st.OwnClones}, false)
		if err != nil {
			resp.Err = err
			return
		}
		resp.Changed, resp.Reason, resp.Diff, resp.Apply = true, p.reason(), diffOf(s.Name, p.diff()), p.script(s.Name)
		return
	}
	if !st.Exists && len(st.Children) == 0 {
		resp.Reason = "no snapshot " + s.Name + ", nor of that name below"
		return
	}
	top := []string{}
	if st.Exists {
		top = []string{s.Name}
	}
	p, _ := planDestroy("snapshot", s.Name, State{Children: st.Children, Clones: st.Clones}, true)
	p.gone = append(top, p.gone[1:]...)
	resp.Changed, resp.Reason, resp.Diff = true, p.reason(), diffOf(s.Name, p.diff())
	if st.Exists {
		resp.Apply = p.script(s.Name)
		return
	}
	// zfs destroy -r needs the top snapshot; destroy each one below
	// (one of them may have gone with another's clones already).
	flag := "-r "
	if len(st.Clones) > 0 {
		flag = "-R "
	}
	var b strings.Builder
	b.WriteString(destroyHelper)
	for _, c := range st.Children {
		q := modules.Quote(c)
		b.WriteString("if zfs list -H -o name " + q + " >/dev/null 2>&1; then _orch_zfs_destroy " + flag + q + "; fi\n")
	}
	resp.Apply = b.String()
}
