package plan

import (
	"context"
	"strings"
	"testing"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules/pathfact"
)

const addHostPlan = `
def main(ctx):
    j = ctx.add_host("bsd1-blue", vars = {"connection": "jail", "jail_host": "bsd1", "jail_name": "blue"}, groups = ["jails"], new = True)
    ctx.apply(j, lambda h: file(path = "/etc/motd", content = h.vars["jail_name"] + "\n"))
    print(j.name, j.address)
`

// TestAddHost: ctx.add_host hands the engine a host with its vars and
// groups; a new one is a placeholder under --check only.
func TestAddHost(t *testing.T) {
	for _, check := range []bool{false, true} {
		r := newRunner("bsd1")
		p, err := Load(writePlan(t, map[string]string{"plan.star": addHostPlan}))
		if err != nil {
			t.Fatal(err)
		}
		err = p.Run(context.Background(), r, RunOptions{Check: check})
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		h := r.hosts[len(r.hosts)-1]
		if h.Name != "bsd1-blue" || h.Vars["connection"] != "jail" || h.Vars["jail_host"] != "bsd1" || len(h.Groups) != 1 || h.Groups[0] != "jails" {
			t.Errorf("check=%v: added %+v", check, *h)
		}
		if got := h.IsPlaceholder(); got != check {
			t.Errorf("check=%v: placeholder = %v", check, got)
		}
		if len(r.tasks["bsd1-blue"]) != 1 {
			t.Errorf("check=%v: tasks of the added host: %v", check, r.tasks)
		}
		want := "bsd1-blue"
		if check {
			want += " " + inventory.NotCreated
		}
		if strings.Join(r.out, "|") != want {
			t.Errorf("check=%v: print = %q", check, r.out)
		}
	}
}

func TestAddHostErrors(t *testing.T) {
	for src, want := range map[string]string{
		`ctx.add_host("j", vars = {1: "x"})`:            "ctx.add_host j: vars: want string keys, got int",
		`ctx.add_host("j", groups = [1])`:               "ctx.add_host j: groups: want strings, got int",
		`ctx.add_host("j", vars = {"f": lambda: None})`: `ctx.add_host j: vars["f"]`,
		`ctx.apply("all", lambda h: ctx.add_host("j"))`: "ctx.add_host: cannot be called inside a role",
	} {
		r := newRunner("web1")
		err := run(t, "def main(ctx):\n    "+src+"\n", r)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", src, err, want)
		}
	}
}

// pathRunner answers the path fact as the engine does, with a pathfact.State.
type pathRunner struct{ *fakeRunner }

func (r pathRunner) Fact(ctx context.Context, h *inventory.Host, name, key string) (any, error) {
	if name == "path" && key == "/etc/jail.conf.d/blue.conf" {
		return pathfact.State{Kind: "file", Mode: 0o644, Owner: "root", Group: "wheel", Sum: "ab12"}, nil
	}
	return r.fakeRunner.Fact(ctx, h, name, key)
}

// TestStructFactsComeOutAsDicts: a keyed fact whose value is a module's
// own type reaches the plan as a dict of its JSON form.
func TestStructFactsComeOutAsDicts(t *testing.T) {
	r := pathRunner{newRunner("bsd1")}
	p, err := Load(writePlan(t, map[string]string{"plan.star": `
def main(ctx):
    st = ctx.hosts("bsd1")[0].fact("path", "/etc/jail.conf.d/blue.conf")
    print(st["kind"], st["mode"], st["owner"], st["sha256"])
`}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Run(context.Background(), r, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.out, "|"); got != "file 420 root ab12" {
		t.Errorf("print = %q", got)
	}
}
