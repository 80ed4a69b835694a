package cloud_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/godo"
	"golang.org/x/oauth2"

	"github.com/orch-dev/orch/lab/cloud/cloudtest"
)

func doClient(t *testing.T, lab *cloudtest.Lab, token string) *godo.Client {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	if token != "" {
		hc = oauth2.NewClient(context.Background(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}))
	}
	c, err := godo.New(hc, godo.SetBaseURL(lab.URL+"/"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitDroplet(t *testing.T, c *godo.Client, id int, status string) *godo.Droplet {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, _, err := c.Droplets.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == status {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("droplet %d still %s, want %s", id, d.Status, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitAction(t *testing.T, get func() (*godo.Action, *godo.Response, error)) *godo.Action {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, _, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != godo.ActionInProgress {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("action %d still in progress", a.ID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func asDOError(t *testing.T, err error, status int) *godo.ErrorResponse {
	t.Helper()
	var er *godo.ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != status {
		t.Fatalf("err = %v, want a %d", err, status)
	}
	return er
}

func TestDODropletLifecycle(t *testing.T) {
	machines := cloudtest.NewMachines()
	machines.StartDelay = 50 * time.Millisecond
	lab := cloudtest.Start(t, machines)
	c := doClient(t, lab, lab.Tokens.DigitalOcean)
	ctx := context.Background()

	userData := "#cloud-config\nwrite_files:\n  - path: /opt/app/conf.env\n    content: DB_HOST=db\n"
	d, resp, err := c.Droplets.Create(ctx, &godo.DropletCreateRequest{
		Name: "app", Region: "ams3", Size: "s-1vcpu-1gb",
		Image: godo.DropletCreateImage{ID: 58285042}, UserData: userData, Tags: []string{"app"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusAccepted || d.Status != "new" || d.Image.ID != 58285042 || d.Image.Type != "snapshot" {
		t.Fatalf("created droplet = %d %+v", resp.StatusCode, d)
	}
	if ip, _ := d.PublicIPv4(); ip != "" {
		t.Errorf("new droplet already has address %s", ip)
	}
	if resp.Links == nil || len(resp.Links.Actions) != 1 || resp.Links.Actions[0].Rel != "create" {
		t.Fatalf("links = %+v", resp.Links)
	}
	createAction := resp.Links.Actions[0].ID

	d = waitDroplet(t, c, d.ID, "active")
	m, ok := machines.ByName("app")
	if !ok {
		t.Fatal("no machine app")
	}
	if ip, _ := d.PublicIPv4(); ip != m.Address {
		t.Errorf("public ipv4 = %q, want %s", ip, m.Address)
	}
	if string(m.Spec.UserData) != userData || m.Spec.Image != "58285042" {
		t.Errorf("machine spec = %+v", m.Spec)
	}
	if a, _, err := c.Actions.Get(ctx, createAction); err != nil || a.Status != godo.ActionCompleted || a.CompletedAt == nil {
		t.Errorf("create action = %+v, %v", a, err)
	}

	machines.OpDelay = 100 * time.Millisecond
	a, resp, err := c.DropletActions.Rename(ctx, d.ID, "app-old")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || a.Status != godo.ActionInProgress || a.Type != "rename" || a.ResourceType != "droplet" || a.ResourceID != d.ID {
		t.Fatalf("rename action = %+v", a)
	}
	// A second action while the first runs gets the real API's pending-event answer.
	_, _, err = c.DropletActions.Rename(ctx, d.ID, "app-older")
	if er := asDOError(t, err, 422); er.Message != "Droplet already has a pending event." {
		t.Errorf("second action: %v", err)
	}
	a = waitAction(t, func() (*godo.Action, *godo.Response, error) { return c.DropletActions.Get(ctx, d.ID, a.ID) })
	if a.Status != godo.ActionCompleted {
		t.Fatalf("rename action = %+v", a)
	}
	if d, _, _ = c.Droplets.Get(ctx, d.ID); d.Name != "app-old" {
		t.Errorf("name after rename = %q", d.Name)
	}
	if got, _ := machines.ByName("app-old"); got.ID != m.ID {
		t.Error("machine not renamed")
	}

	resp, err = c.Droplets.Delete(ctx, d.ID)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %v", err)
	}
	_, _, err = c.Droplets.Get(ctx, d.ID)
	if er := asDOError(t, err, 404); er.Message != "The resource you were accessing could not be found." {
		t.Errorf("get after delete: %v", err)
	}
	if len(machines.List()) != 0 {
		t.Errorf("machines left: %+v", machines.List())
	}
}

func TestDOUnauthorized(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	for _, token := range []string{"", "wrong"} {
		_, _, err := doClient(t, lab, token).Droplets.List(context.Background(), nil)
		if er := asDOError(t, err, 401); er.Message != "Unable to authenticate you" {
			t.Errorf("token %q: %v", token, err)
		}
		code, body := rawDo(t, "GET", lab.URL+"/v2/reserved_ips", token, nil, "")
		if code != 401 || body != `{"id":"Unauthorized","message":"Unable to authenticate you"}` {
			t.Errorf("token %q: %d %s", token, code, body)
		}
	}
}

func TestDOMultiCreateListPaging(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := doClient(t, lab, lab.Tokens.DigitalOcean)
	ctx := context.Background()
	var names []string
	for i := range 5 {
		names = append(names, fmt.Sprintf("web%d", i))
	}
	drops, resp, err := c.Droplets.CreateMultiple(ctx, &godo.DropletMultiCreateRequest{
		Names: names, Region: "ams3", Size: "s-1vcpu-1gb", Image: godo.DropletCreateImage{Slug: "debian-12-x64"}, Tags: []string{"web"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(drops) != 5 || len(resp.Links.Actions) != 5 || drops[0].Image.Slug != "debian-12-x64" {
		t.Fatalf("created %d droplets, %d actions", len(drops), len(resp.Links.Actions))
	}
	if drops[0].ID >= drops[1].ID {
		t.Errorf("IDs do not increase: %d, %d", drops[0].ID, drops[1].ID)
	}
	if _, _, err := c.Droplets.Create(ctx, &godo.DropletCreateRequest{Name: "db", Region: "ams3", Size: "s", Image: godo.DropletCreateImage{Slug: "debian-12-x64"}}); err != nil {
		t.Fatal(err)
	}

	var got []string
	opt := &godo.ListOptions{PerPage: 2}
	for pages := 0; ; pages++ {
		page, resp, err := c.Droplets.ListByTag(ctx, "web", opt)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Meta == nil || resp.Meta.Total != 5 {
			t.Fatalf("meta = %+v", resp.Meta)
		}
		for _, d := range page {
			got = append(got, d.Name)
		}
		if resp.Links == nil || resp.Links.IsLastPage() {
			if pages != 2 {
				t.Errorf("read %d pages, want 3", pages+1)
			}
			break
		}
		cur, err := resp.Links.CurrentPage()
		if err != nil {
			t.Fatal(err)
		}
		opt.Page = cur + 1
	}
	if strings.Join(got, ",") != "web0,web1,web2,web3,web4" {
		t.Errorf("listed %v", got)
	}

	byName, _, err := c.Droplets.ListByName(ctx, "WEB3", nil)
	if err != nil || len(byName) != 1 || byName[0].Name != "web3" {
		t.Errorf("by name: %v %v", byName, err)
	}
	all, _, err := c.Droplets.List(ctx, nil)
	if err != nil || len(all) != 6 {
		t.Errorf("all: %d %v", len(all), err)
	}

	if _, err := c.Droplets.DeleteByTag(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if all, _, _ = c.Droplets.List(ctx, nil); len(all) != 1 || all[0].Name != "db" {
		t.Errorf("after delete by tag: %v", all)
	}
}

func TestDOCreateValidation(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := doClient(t, lab, lab.Tokens.DigitalOcean)
	ctx := context.Background()
	base := godo.DropletCreateRequest{Name: "ok", Region: "ams3", Size: "s", Image: godo.DropletCreateImage{Slug: "debian-12-x64"}}

	bad := base
	bad.Name = "under_score"
	_, _, err := c.Droplets.Create(ctx, &bad)
	if er := asDOError(t, err, 422); er.Message != "Only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)" {
		t.Errorf("bad name: %v", err)
	}
	bad = base
	bad.SSHKeys = []godo.DropletCreateSSHKey{{ID: 1}}
	_, _, err = c.Droplets.Create(ctx, &bad)
	asDOError(t, err, 422)
	bad = base
	bad.Region = ""
	_, _, err = c.Droplets.Create(ctx, &bad)
	asDOError(t, err, 422)
	code, body := rawDo(t, "GET", lab.URL+"/v2/droplets/12345", lab.Tokens.DigitalOcean, nil, "")
	if code != 404 || body != `{"id":"not_found","message":"The resource you were accessing could not be found."}` {
		t.Errorf("404 body: %d %s", code, body)
	}
}

func TestDOReservedIPs(t *testing.T) {
	machines := cloudtest.NewMachines()
	lab := cloudtest.Start(t, machines)
	c := doClient(t, lab, lab.Tokens.DigitalOcean)
	ctx := context.Background()

	ips, resp, err := c.ReservedIPs.List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) != 4 || resp.Meta.Total != 4 || ips[0].IP != "203.0.113.10" || ips[0].Droplet != nil {
		t.Fatalf("reserved IPs = %+v", ips)
	}

	mk := func(name string) *godo.Droplet {
		d, _, err := c.Droplets.Create(ctx, &godo.DropletCreateRequest{Name: name, Region: "ams3", Size: "s", Image: godo.DropletCreateImage{ID: 7}})
		if err != nil {
			t.Fatal(err)
		}
		return waitDroplet(t, c, d.ID, "active")
	}
	blue, green := mk("blue"), mk("green")
	blueMachine, _ := machines.ByName("blue")
	greenMachine, _ := machines.ByName("green")

	machines.OpDelay = 50 * time.Millisecond
	a, _, err := c.ReservedIPActions.Assign(ctx, "203.0.113.10", blue.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != godo.ActionInProgress || a.Type != "assign_ip" || a.ResourceType != "reserved_ip" || a.ResourceID != 203<<24|113<<8|10 {
		t.Fatalf("assign action = %+v", a)
	}
	_, _, err = c.ReservedIPActions.Assign(ctx, "203.0.113.10", green.ID)
	asDOError(t, err, 422) // pending event
	a = waitAction(t, func() (*godo.Action, *godo.Response, error) {
		return c.ReservedIPActions.Get(ctx, "203.0.113.10", a.ID)
	})
	if a.Status != godo.ActionCompleted || machines.Holder("203.0.113.10") != blueMachine.ID {
		t.Fatalf("after assign: %+v, holder %q", a, machines.Holder("203.0.113.10"))
	}
	rip, _, err := c.ReservedIPs.Get(ctx, "203.0.113.10")
	if err != nil || rip.Droplet == nil || rip.Droplet.ID != blue.ID {
		t.Fatalf("reserved IP = %+v, %v", rip, err)
	}

	// Blue/green: move the address to green.
	a, _, err = c.ReservedIPActions.Assign(ctx, "203.0.113.10", green.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitAction(t, func() (*godo.Action, *godo.Response, error) { return c.Actions.Get(ctx, a.ID) })
	if machines.Holder("203.0.113.10") != greenMachine.ID {
		t.Errorf("holder = %q, want green", machines.Holder("203.0.113.10"))
	}

	a, _, err = c.ReservedIPActions.Unassign(ctx, "203.0.113.10")
	if err != nil {
		t.Fatal(err)
	}
	waitAction(t, func() (*godo.Action, *godo.Response, error) { return c.Actions.Get(ctx, a.ID) })
	if rip, _, _ = c.ReservedIPs.Get(ctx, "203.0.113.10"); rip.Droplet != nil || machines.Holder("203.0.113.10") != "" {
		t.Errorf("after unassign: %+v", rip)
	}
	_, _, err = c.ReservedIPActions.Unassign(ctx, "203.0.113.10")
	asDOError(t, err, 422)

	// Deleting returns an address to the pool; creating reserves it again.
	if _, err := c.ReservedIPs.Delete(ctx, "203.0.113.11"); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.ReservedIPs.Get(ctx, "203.0.113.11")
	asDOError(t, err, 404)
	rip, resp, err = c.ReservedIPs.Create(ctx, &godo.ReservedIPCreateRequest{DropletID: blue.ID})
	if err != nil {
		t.Fatal(err)
	}
	if rip.IP != "203.0.113.11" || resp.StatusCode != http.StatusAccepted || len(resp.Links.Actions) != 1 {
		t.Fatalf("created reserved IP = %+v %+v", rip, resp.Links)
	}
	waitAction(t, func() (*godo.Action, *godo.Response, error) { return c.Actions.Get(ctx, resp.Links.Actions[0].ID) })
	if machines.Holder("203.0.113.11") != blueMachine.ID {
		t.Errorf("created reserved IP not on blue")
	}
	_, _, err = c.ReservedIPs.Create(ctx, &godo.ReservedIPCreateRequest{Region: "ams3"})
	asDOError(t, err, 422) // pool exhausted

	// Deleting a droplet frees the reserved IPs it held.
	if _, err := c.Droplets.Delete(ctx, blue.ID); err != nil {
		t.Fatal(err)
	}
	if rip, _, _ = c.ReservedIPs.Get(ctx, "203.0.113.11"); rip.Droplet != nil || machines.Holder("203.0.113.11") != "" {
		t.Errorf("reserved IP still held after droplet delete: %+v", rip)
	}
}
