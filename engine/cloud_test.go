package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab/cloud/cloudtest"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/digitalocean"
	"github.com/orch-dev/orch/modules/linode"
)

// These tests drive the Starlark cloud modules through the lab cloud's
// Linode and DigitalOcean APIs (served here with machines that only record
// what they are asked), so they cover the plan-facing wiring: hosts
// returned to plans, pinned keys, rename, delete and check mode.

const linodePlan = `
def main(ctx):
    made = linode.create(labels = ["ns1-next", "ns2-next"], region = "lab", type = "g6-nanode-1", image = "linode/debian12", tags = ["dns"])
    print("made", [h.name for h in made], [h.vars["linode_id"] for h in made])
    again = linode.create(labels = ["ns1-next", "ns2-next"], region = "lab", type = "g6-nanode-1", image = "linode/debian12", tags = ["dns"])
    print("again", [h.name for h in again])
    print("tagged", sorted([h.name for h in linode.instances(tag = "dns")]))
    renamed = linode.rename(made[0], "ns1")
    print("renamed", renamed.name, [h.name for h in ctx.hosts("ns*")])
    linode.delete([made[1]])
    print("left", [h.name for h in linode.instances()])
`

// cloudEnv starts a lab cloud and returns it with the endpoints a run
// reaches it with.
func cloudEnv(t *testing.T) (*cloudtest.Lab, map[string]modules.Endpoint) {
	lab := cloudtest.Start(t, cloudtest.NewMachines())
	return lab, map[string]modules.Endpoint{
		linode.Provider:       {URL: lab.URL, Token: lab.Tokens.Linode},
		digitalocean.Provider: {URL: lab.URL, Token: lab.Tokens.DigitalOcean},
	}
}

func prints(rec *recorder) string {
	var out []string
	for _, e := range rec.of("print") {
		if !strings.HasPrefix(e.Msg, "linode.") && !strings.HasPrefix(e.Msg, "digitalocean.") && !strings.HasPrefix(e.Msg, "check:") {
			out = append(out, e.Msg)
		}
	}
	return strings.Join(out, "\n")
}

func TestLinodeModulesInPlans(t *testing.T) {
	lab, endpoints := cloudEnv(t)
	state := t.TempDir()
	_, rec, err := runPlan(t, writeFile(t, "plan.star", linodePlan), inventory.New(), Options{StateDir: state, Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	want := `made ["ns1-next", "ns2-next"] [1000, 1001]
again ["ns1-next", "ns2-next"]
tagged ["ns1-next", "ns2-next"]
renamed ns1 ["ns2-next", "ns1"]
left ["ns1"]`
	if got := prints(rec); got != want {
		t.Errorf("plan printed:\n%s\nwant:\n%s", got, want)
	}
	if lab.Machines.Starts() != 2 {
		t.Errorf("%d machines started, want 2", lab.Machines.Starts())
	}
	// The host keys of both created machines were pinned.
	pinned, err := os.ReadFile(filepath.Join(state, "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(pinned), "ssh-ed25519 "); lines != 2 {
		t.Errorf("pinned %d keys:\n%s", lines, pinned)
	}
	for _, m := range lab.Machines.List() {
		if !strings.Contains(string(pinned), m.Address) {
			t.Errorf("no key pinned for %s (%s)", m.Name, m.Address)
		}
	}
}

func TestCloudCheckModeCreatesNothing(t *testing.T) {
	lab, endpoints := cloudEnv(t)
	plan := writeFile(t, "plan.star", `
def main(ctx):
    made = linode.create(labels = ["web1"], region = "lab", type = "g6-nanode-1", image = "linode/debian12", tags = ["web"])
    drops = digitalocean.create(names = ["web2"], region = "lab", size = "s-1vcpu-1gb", image = "12345")
    print(len(made), len(drops), made[0].address, made[0].groups)
    ctx.apply(made + drops, lambda h: file(path = "/etc/motd", content = "hi\n"))
    renamed = linode.rename(made[0], "web1-live")
    linode.delete(made)
    print("renamed", renamed.name)
`)
	rep, rec, err := runPlan(t, plan, inventory.New(), Options{Check: true, Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Exchanges != 0 || rep.Summary.TasksChanged != 2 {
		t.Errorf("summary %+v: want 2 would-change tasks and no exchange", rep.Summary)
	}
	if !hasEvent(rec, "task", "would change (host not created yet)") {
		t.Errorf("tasks: %+v", rec.of("task"))
	}
	if lab.Machines.Starts() != 0 {
		t.Fatalf("check mode started %d machines", lab.Machines.Starts())
	}
	var said []string
	for _, e := range rec.of("print") {
		said = append(said, e.Msg)
	}
	all := strings.Join(said, "\n")
	for _, want := range []string{"check: linode.create would create web1", "check: digitalocean.create would create web2",
		`1 1 (known after create) ["web"]`, "check: linode.rename would rename web1 to web1-live", "check: linode.delete would delete web1", "renamed web1-live"} {
		if !strings.Contains(all, want) {
			t.Errorf("output lacks %q:\n%s", want, all)
		}
	}
}

// TestPartlyFailedCreateCleansUp: a create of two machines where one fails
// deletes the one it made before the plan's undos run, so the undo of the
// step before it sees the world as it left it.
func TestPartlyFailedCreateCleansUp(t *testing.T) {
	lab, endpoints := cloudEnv(t)
	lab.Machines.StartErr, lab.Machines.FailName = fmt.Errorf("no capacity in this region"), "ns2-next"
	plan := writeFile(t, "plan.star", `
def main(ctx):
    ctx.step("before", lambda: print("before"), undo = lambda: print("undo before, left:", [h.name for h in linode.instances()]))
    ctx.step("create", lambda: linode.create(labels = ["ns1-next", "ns2-next"], region = "lab", type = "g6-nanode-1", image = "linode/debian12"))
`)
	_, rec, err := runPlan(t, plan, inventory.New(), Options{Endpoints: endpoints})
	if err == nil || !strings.Contains(err.Error(), "deleted the machines it had made: ns1-next") {
		t.Fatalf("err = %v", err)
	}
	if got := prints(rec); !strings.Contains(got, "undo before, left: []") {
		t.Errorf("the undo saw: %s", got)
	}
	if lab.Machines.Count() != 0 {
		t.Errorf("%d machines left", lab.Machines.Count())
	}
}

func TestDigitalOceanFloatingIPSwap(t *testing.T) {
	lab, endpoints := cloudEnv(t)
	ip := lab.Machines.ReservedIPs()[0]
	plan := writeFile(t, "plan.star", `
def main(ctx):
    blue, green = digitalocean.create(names = ["blue", "green"], region = "lab", size = "s-1vcpu-1gb", image = "12345", tags = ["web"])
    digitalocean.assign_ip(ctx.args["ip"], blue)
    digitalocean.assign_ip(ctx.args["ip"], green)
    digitalocean.delete([blue])
    print([h.name for h in digitalocean.droplets(tag = "web")])
`)
	_, rec, err := runPlan(t, plan, inventory.New(), Options{Args: map[string]string{"ip": ip}, Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	if got := prints(rec); got != `["green"]` {
		t.Errorf("printed %q", got)
	}
	green, _ := lab.Machines.ByName("green")
	if holder := lab.Machines.Holder(ip); holder != green.ID {
		t.Errorf("%s is held by %q, want green (%s)", ip, holder, green.ID)
	}
}

func TestCloudTokenNeverPrinted(t *testing.T) {
	_, endpoints := cloudEnv(t)
	endpoints[linode.Provider] = modules.Endpoint{URL: endpoints[linode.Provider].URL, Token: "s3cr3t-token-value"}
	plan := writeFile(t, "plan.star", `
def main(ctx):
    linode.create(labels = ["x"], region = "lab", type = "t", image = "i")
`)
	_, rec, err := runPlan(t, plan, inventory.New(), Options{Endpoints: endpoints})
	if err == nil {
		t.Fatal("a wrong token was accepted")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error shows the token: %v", err)
	}
	for _, e := range rec.events {
		if strings.Contains(e.Msg, "s3cr3t") {
			t.Errorf("event shows the token: %+v", e)
		}
	}
}
