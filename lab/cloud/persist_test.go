package cloud_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/godo"
	"github.com/linode/linodego"

	"github.com/orch-dev/orch/lab/cloud"
	"github.com/orch-dev/orch/lab/cloud/cloudtest"
)

// TestStateSurvivesRestart restarts a file-backed cloud in the middle of
// things: what was done is still there, and what was in flight finishes.
func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cloud-state.json")
	machines := cloudtest.NewMachines()
	lab := cloudtest.Open(t, machines, path)
	lc := linodeClient(t, lab, lab.Tokens.Linode)
	dc := doClient(t, lab, lab.Tokens.DigitalOcean)
	ctx := context.Background()

	mkLinode := func(label string) *linodego.Instance {
		t.Helper()
		in, err := lc.CreateInstance(ctx, linodego.InstanceCreateOptions{Region: "lab", Type: "g6-nanode-1", Label: label,
			Image: "linode/debian12", RootPass: "Secret-123-pass", Tags: []string{"dns"}})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	ns1 := waitInstance(t, lc, mkLinode("ns1").ID, linodego.InstanceRunning)
	ns2 := waitInstance(t, lc, mkLinode("ns2-next").ID, linodego.InstanceRunning)
	if _, err := lc.RenameInstance(ctx, ns2.ID, "ns2"); err != nil {
		t.Fatal(err)
	}
	gone := waitInstance(t, lc, mkLinode("gone").ID, linodego.InstanceRunning)
	if err := lc.DeleteInstance(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	blue, _, err := dc.Droplets.Create(ctx, &godo.DropletCreateRequest{Name: "blue", Region: "lab", Size: "s", Image: godo.DropletCreateImage{ID: 7}})
	if err != nil {
		t.Fatal(err)
	}
	blue = waitDroplet(t, dc, blue.ID, "active")
	a, _, err := dc.ReservedIPActions.Assign(ctx, "203.0.113.10", blue.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitAction(t, func() (*godo.Action, *godo.Response, error) { return dc.Actions.Get(ctx, a.ID) })

	// In flight when the cloud stops: a start and a droplet rename.
	machines.StartDelay, machines.OpDelay = time.Hour, time.Hour
	slow := mkLinode("slow")
	rename, _, err := dc.DropletActions.Rename(ctx, blue.ID, "blue2")
	if err != nil {
		t.Fatal(err)
	}
	lab.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}

	machines.StartDelay, machines.OpDelay = 0, 0
	lab = cloudtest.Open(t, machines, path)
	lc = linodeClient(t, lab, lab.Tokens.Linode)
	dc = doClient(t, lab, lab.Tokens.DigitalOcean)

	list, err := lc.ListInstances(ctx, linodego.NewListOptions(0, `{"tags":"dns"}`))
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, in := range list {
		labels = append(labels, in.Label)
	}
	if !slices.Equal(labels, []string{"ns1", "ns2", "slow"}) {
		t.Fatalf("instances after the restart: %v", labels)
	}
	if list[0].ID != ns1.ID || list[0].IPv4[0].String() != ns1.IPv4[0].String() || list[1].ID != ns2.ID {
		t.Errorf("instances changed across the restart: %+v, %+v", list[0], list[1])
	}
	waitInstance(t, lc, slow.ID, linodego.InstanceRunning)
	if m, ok := machines.ByName("slow"); !ok || m.Spec.Key != "linode/"+strconv.Itoa(slow.ID) {
		t.Errorf("the interrupted start was not resumed with its key: %+v %v", m, ok)
	}

	a = waitAction(t, func() (*godo.Action, *godo.Response, error) { return dc.Actions.Get(ctx, rename.ID) })
	if a.Status != godo.ActionCompleted {
		t.Errorf("the interrupted rename: %+v", a)
	}
	if d, _, err := dc.Droplets.Get(ctx, blue.ID); err != nil || d.Name != "blue2" {
		t.Errorf("droplet after the resumed rename: %+v %v", d, err)
	}
	rip, _, err := dc.ReservedIPs.Get(ctx, "203.0.113.10")
	if err != nil || rip.Droplet == nil || rip.Droplet.ID != blue.ID {
		t.Errorf("reserved IP after the restart: %+v %v", rip, err)
	}

	// IDs carry on where they were: nothing is handed out twice.
	next := mkLinode("after")
	if next.ID <= slow.ID {
		t.Errorf("new instance ID %d after %d", next.ID, slow.ID)
	}
}

func TestOpenRefusesABadStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cloud-state.json")
	os.WriteFile(path, []byte("{not json"), 0o600)
	_, err := cloud.Open(cloudtest.NewMachines(), cloudtest.Tokens, path, nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open on a corrupt state file: %v", err)
	}
}
