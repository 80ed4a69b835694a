package bectl

import (
	"slices"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/internal/facttest"
)

// checkFixture is one decision, pyinfra style: the arguments, the recorded
// bectl fact (a fixture under testdata/facts/bectl) and the probe's output
// in; the decision and the commands out.
type checkFixture struct {
	About    string   `json:"about"`
	Args     args     `json:"args"`
	Facts    string   `json:"facts"`
	Probe    *string  `json:"probe"`
	Changed  bool     `json:"changed"`
	Reason   string   `json:"reason"`
	Commands []string `json:"commands"`
	Err      string   `json:"err"`
}

type args struct {
	Name      string  `json:"name"`
	State     string  `json:"state"`
	Source    *string `json:"source"`
	Temporary bool    `json:"temporary"`
}

func (a args) task(t *testing.T) *Bectl {
	t.Helper()
	b := &Bectl{Name: a.Name, State: a.State, Source: a.Source, Temporary: a.Temporary}
	if b.State == "" {
		b.State = "present"
	}
	if err := b.Validate(nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckFixtures decides every fixture's task from its recorded facts:
// each state's change and no-change paths and refusals.
func TestCheckFixtures(t *testing.T) {
	paths := facttest.Paths{}
	facttest.EachCheck(t, func(t *testing.T, file string, fx checkFixture) {
		task := fx.Args.task(t)
		_, vals := facttest.Load(t, FactName, fx.Facts)
		req := modules.CheckRequest{Facts: map[modules.FactKey]any{}}
		for _, k := range task.Facts() {
			v, ok := vals[k.Key]
			if !ok {
				t.Fatalf("fact fixture %s has no key %q", fx.Facts, k.Key)
			}
			req.Facts[k] = v
		}
		if p := task.Probe(modules.ProbeRequest{}); (p != "") != (fx.Probe != nil) {
			t.Fatalf("probe %q, fixture probe output %v", p, fx.Probe)
		}
		if fx.Probe != nil {
			req.Output = []byte(*fx.Probe)
		}
		var resp modules.CheckResponse
		task.Check(req, &resp)
		if fx.Err != "" {
			if resp.Err == nil || !strings.Contains(resp.Err.Error(), fx.Err) {
				t.Fatalf("err %v, want one containing %q", resp.Err, fx.Err)
			}
			return
		}
		if resp.Err != nil {
			t.Fatalf("check: %v", resp.Err)
		}
		if resp.Changed != fx.Changed || resp.Reason != fx.Reason {
			t.Errorf("changed %v (%q), want %v (%q)", resp.Changed, resp.Reason, fx.Changed, fx.Reason)
		}
		var cmds []string
		if resp.Apply != "" {
			cmds = strings.Split(strings.TrimSuffix(resp.Apply, "\n"), "\n")
		}
		if !slices.Equal(cmds, fx.Commands) {
			t.Errorf("commands\n%q\nwant\n%q", cmds, fx.Commands)
		}
		// The diff is the list of commands, for --check --diff.
		var diff string
		for _, c := range fx.Commands {
			diff += "+ " + c + "\n"
		}
		if resp.Diff != diff {
			t.Errorf("diff %q, want %q", resp.Diff, diff)
		}
		paths.Saw(task.State, resp.Changed)
	})
	paths.Require(t, "state", "present", "active", "absent")
}

// TestValidate: bad arguments are refused before any host is touched, with
// the argument named.
func TestValidate(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, c := range []struct {
		b    Bectl
		want string
	}{
		{Bectl{Name: "-r", State: "present"}, `name "-r" is not a boot environment name`},
		{Bectl{Name: "a b", State: "present"}, `name "a b"`},
		{Bectl{Name: "new", State: "running"}, `state "running" is not one of present, active, absent`},
		{Bectl{Name: "new", State: "present", Temporary: true}, `temporary=True needs state="active"`},
		{Bectl{Name: "new", State: "absent", Source: s("default")}, `makes no sense with state="absent"`},
		{Bectl{Name: "new", State: "present", Source: s("/var/tmp/../x")}, `not a clean absolute path`},
		{Bectl{Name: "new", State: "present", Source: s("tank/ROOT/x")}, `neither a boot environment`},
		{Bectl{Name: "new", State: "present", Source: s("new@snap")}, `is the boot environment itself`},
	} {
		err := c.b.Validate(nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.b, err, c.want)
		}
	}
	for _, b := range []Bectl{
		{Name: "13.1-RELEASE_2023-03-21_152313", State: "absent"},
		{Name: "new", State: "active", Temporary: true, Source: s("/var/tmp/image.zfs")},
		{Name: "new", State: "present", Source: s("default@2023-03-21-13:49:00")},
	} {
		if err := b.Validate(nil); err != nil {
			t.Errorf("%+v: %v", b, err)
		}
	}
}

// TestKeys: an activation touches what every other bectl task reads (the
// flags of all BEs); creating a BE touches zfs state; receiving a stream
// reads its file.
func TestKeys(t *testing.T) {
	s := func(v string) *string { return &v }
	activate := &Bectl{Name: "new", State: "active"}
	other := &Bectl{Name: "old", State: "absent"}
	create := &Bectl{Name: "new", State: "present", Source: s("/var/tmp/image.zfs")}
	if !modules.OverlapAny(activate.Effects(), other.Reads()) {
		t.Errorf("activation effects %v do not reach another BE's reads %v", activate.Effects(), other.Reads())
	}
	if destroy := (&Bectl{Name: "pending", State: "absent"}); !modules.OverlapAny(destroy.Effects(), activate.Reads()) {
		t.Errorf("destruction effects %v (it may drop a temporary activation) do not reach an activation's reads %v", destroy.Effects(), activate.Reads())
	}
	activateReads := append(activate.Reads(), Key("new").StateKey())
	if other := (&Bectl{Name: "other", State: "present"}); modules.OverlapAny(other.Effects(), activateReads) {
		t.Errorf("creating another BE %v re-checks an activation %v for nothing", other.Effects(), activateReads)
	}
	if !modules.OverlapAny(create.Effects(), []string{"zfs:zroot/ROOT/new"}) {
		t.Errorf("creation effects %v do not reach zfs:zroot/ROOT/new", create.Effects())
	}
	if !modules.OverlapAny(create.Effects(), []string{Key("new").StateKey()}) {
		t.Errorf("creation effects %v do not reach the BE's own fact", create.Effects())
	}
	if !slices.Contains(create.Reads(), "path:/var/tmp/image.zfs") {
		t.Errorf("reads %v miss the stream", create.Reads())
	}
}

// TestRecheck: the fact's recheck compares names and flags only.
func TestRecheck(t *testing.T) {
	_, vals := facttest.Load(t, FactName, "freebsd14-temporary")
	got := fact{}.Recheck("new", vals["new"])
	want := `[ "$(bectl list -H 2>/dev/null | cut -f1,2 | LC_ALL=C sort; echo x)" = 'default	NR
new	T
x' ]`
	if got != want {
		t.Errorf("recheck\n%s\nwant\n%s", got, want)
	}
}
