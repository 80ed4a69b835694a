package digitalocean

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/godo"
	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab/cloud/cloudtest"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/internal/cloud/cloudtesting"
)

// testClient talks to url with fast polls and retries.
func testClient(t *testing.T, url, token string) *Client {
	t.Helper()
	c, err := New(Config{Token: token, URL: url, PollInterval: time.Millisecond, RetryDelay: time.Millisecond, Attempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const appUserData = `#cloud-config
# the app's settings
write_files:
  - path: /opt/app/conf.env
    content: |
      DB_HOST=db.internal
runcmd:
  - systemctl restart app
ssh_authorized_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOrch operator
`

// cloudConfig decodes user data the way cloud-init reads it.
func cloudConfig(t *testing.T, userData []byte) map[string]any {
	t.Helper()
	var cfg map[string]any
	cloudtesting.CloudConfig(t, userData, &cfg)
	return cfg
}

func TestCreatePinsHostKeysAndKeepsUserData(t *testing.T) {
	machines := cloudtest.NewMachines()
	machines.StartDelay = 20 * time.Millisecond
	lab := cloudtest.Start(t, machines)
	c := testClient(t, lab.URL, lab.Tokens.DigitalOcean)

	got, err := c.Create(context.Background(), CreateRequest{
		Names: []string{"app-green", "app-green2"}, Region: "ams3", Size: "s-1vcpu-1gb",
		Image: "58285042", UserData: appUserData, Tags: []string{"app"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].HostKey == got[1].HostKey {
		t.Fatalf("created %+v", got)
	}
	for _, d := range got {
		m, ok := machines.ByName(d.Name)
		if !ok {
			t.Fatalf("no machine %s", d.Name)
		}
		if d.Status != "active" || d.IPv4 != m.Address || !d.Created || d.Image != "58285042" || d.Region != "ams3" || !slices.Equal(d.Tags, []string{"app"}) {
			t.Errorf("droplet = %+v, machine %+v", d, m)
		}
		if m.Spec.Image != "58285042" {
			t.Errorf("machine image = %q", m.Spec.Image)
		}
		cfg := cloudConfig(t, m.Spec.UserData)
		if cfg["write_files"] == nil || cfg["runcmd"] == nil || cfg["ssh_authorized_keys"] == nil {
			t.Errorf("the user's cloud-config was not kept: %s", m.Spec.UserData)
		}
		if !strings.Contains(string(m.Spec.UserData), "# the app's settings") {
			t.Errorf("comments were lost: %s", m.Spec.UserData)
		}
		keys, _ := cfg["ssh_keys"].(map[string]any)
		if keys["ed25519_public"] != d.HostKey {
			t.Errorf("user data pins %v, Create returned %q", keys["ed25519_public"], d.HostKey)
		}
		priv, _ := keys["ed25519_private"].(string)
		signer, err := ssh.ParsePrivateKey([]byte(priv))
		if err != nil {
			t.Fatal(err)
		}
		check := cloudtesting.HostKeyCallback(t, d.KnownHostsLine())
		if err := check(d.IPv4+":22", &net.TCPAddr{IP: net.ParseIP(d.IPv4), Port: 22}, signer.PublicKey()); err != nil {
			t.Errorf("pinned key rejected: %v", err)
		}

		h := d.Host()
		if h.Name != d.Name || h.Address != d.IPv4 || h.User != "root" || h.Vars["droplet_id"] != d.ID {
			t.Errorf("host = %+v", h)
		}
		if id, err := IDFromHost(h); err != nil || id != d.ID {
			t.Errorf("IDFromHost = %d, %v", id, err)
		}
	}
}

func TestCreateWithSlugAndNoUserData(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.DigitalOcean)
	got, err := c.Create(context.Background(), CreateRequest{Names: []string{"web1"}, Region: "ams3", Size: "s", Image: "debian-12-x64"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := lab.Machines.ByName("web1")
	keys, _ := cloudConfig(t, m.Spec.UserData)["ssh_keys"].(map[string]any)
	if got[0].Image != "debian-12-x64" || m.Spec.Image != "debian-12-x64" || keys["ed25519_public"] != got[0].HostKey {
		t.Errorf("droplet %+v, machine %+v", got[0], m.Spec)
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.DigitalOcean)
	ctx := context.Background()
	req := CreateRequest{Names: []string{"a", "b"}, Region: "ams3", Size: "s", Image: "7"}
	first, err := c.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if lab.Machines.Starts() != 2 {
		t.Errorf("%d machines started, want 2", lab.Machines.Starts())
	}
	for i := range again {
		if again[i].ID != first[i].ID || again[i].Created || again[i].HostKey != "" {
			t.Errorf("second create = %+v", again[i])
		}
	}
}

func TestCreateRefusesUserDataItCannotPin(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.DigitalOcean)
	_, err := c.Create(context.Background(), CreateRequest{Names: []string{"a"}, Region: "r", Size: "s", Image: "7", UserData: "#!/bin/sh\necho hi\n"})
	if err == nil || !strings.Contains(err.Error(), "#cloud-config") {
		t.Fatalf("err = %v", err)
	}
	if lab.Machines.Starts() != 0 {
		t.Error("a droplet was created")
	}
}

func TestBlueGreenFlow(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.DigitalOcean)
	ctx := context.Background()
	const ip = "203.0.113.10"
	mk := func(name string) Droplet {
		d, err := c.Create(ctx, CreateRequest{Names: []string{name}, Region: "ams3", Size: "s", Image: "58285042", Tags: []string{"app"}})
		if err != nil {
			t.Fatal(err)
		}
		return d[0]
	}

	blue := mk("app-blue")
	if err := c.AssignIP(ctx, ip, blue.ID); err != nil {
		t.Fatal(err)
	}
	green := mk("app-green")
	lab.Machines.OpDelay = 20 * time.Millisecond // the move takes a while
	if err := c.AssignIP(ctx, ip, green.ID); err != nil {
		t.Fatal(err)
	}
	if m, _ := lab.Machines.ByName("app-green"); lab.Machines.Holder(ip) != m.ID {
		t.Errorf("%s held by %q, want green", ip, lab.Machines.Holder(ip))
	}
	if err := c.AssignIP(ctx, ip, green.ID); err != nil {
		t.Errorf("assigning again: %v", err)
	}

	all, err := c.Droplets(ctx, "app")
	if err != nil || len(all) != 2 {
		t.Fatalf("droplets tagged app: %+v, %v", all, err)
	}
	if err := c.Delete(ctx, blue.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, blue.ID); err != nil {
		t.Errorf("second delete: %v", err)
	}
	renamed, err := c.Rename(ctx, green.ID, "app")
	if err != nil || renamed.Name != "app" {
		t.Fatalf("rename: %+v, %v", renamed, err)
	}
	if _, ok := lab.Machines.ByName("app"); !ok {
		t.Error("machine not renamed")
	}
	if _, err := c.Rename(ctx, green.ID, "app"); err != nil {
		t.Errorf("second rename: %v", err)
	}
	all, _ = c.Droplets(ctx, "")
	if len(all) != 1 || all[0].Name != "app" {
		t.Errorf("after the flow: %+v", all)
	}
	if err := c.AssignIP(ctx, "203.0.113.99", green.ID); err == nil || !strings.Contains(err.Error(), "could not be found") {
		t.Errorf("unknown reserved IP: %v", err)
	}
}

// A rename issued while another action runs first gets the API's 422
// "pending event", and waits its turn.
func TestRenameWaitsForPendingEvent(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.DigitalOcean)
	ctx := context.Background()
	d, err := c.Create(ctx, CreateRequest{Names: []string{"web"}, Region: "r", Size: "s", Image: "7"})
	if err != nil {
		t.Fatal(err)
	}
	lab.Machines.OpDelay = 50 * time.Millisecond
	if _, _, err := c.api.DropletActions.Rename(ctx, d[0].ID, "web-busy"); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.api.DropletActions.Rename(ctx, d[0].ID, "web2")
	if _, ok := retryable(err); !ok {
		t.Fatalf("the lab did not answer pending event: %v", err)
	}
	patient, err := New(Config{Token: lab.Tokens.DigitalOcean, URL: lab.URL, PollInterval: time.Millisecond, RetryDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got, err := patient.Rename(ctx, d[0].ID, "web2")
	if err != nil || got.Name != "web2" {
		t.Fatalf("rename: %+v, %v", got, err)
	}
}

func TestDropletsReadsEveryPage(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.DigitalOcean)
	ctx := context.Background()
	// Straight through godo, five at a time, to keep the test quick.
	for i := 0; i < 205; i += 5 {
		var names []string
		for j := i; j < i+5; j++ {
			names = append(names, fmt.Sprintf("web%03d", j))
		}
		if _, _, err := c.api.Droplets.CreateMultiple(ctx, &godo.DropletMultiCreateRequest{
			Names: names, Region: "r", Size: "s", Image: godo.DropletCreateImage{ID: 7}, Tags: []string{"web"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Droplets(ctx, "web")
	if err != nil || len(got) != 205 || got[204].Name != "web204" {
		t.Fatalf("listed %d: %v", len(got), err)
	}
}

func TestCreateValidates(t *testing.T) {
	c := testClient(t, "http://127.0.0.1:1", "token")
	for _, req := range []CreateRequest{
		{Region: "r", Size: "s", Image: "i"},
		{Names: []string{"a"}, Size: "s", Image: "i"},
		{Names: []string{"a", "A"}, Region: "r", Size: "s", Image: "i"},
	} {
		if _, err := c.Create(context.Background(), req); err == nil || !strings.HasPrefix(err.Error(), "digitalocean.create: ") {
			t.Errorf("%+v: err = %v", req, err)
		}
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "DIGITALOCEAN_TOKEN") {
		t.Errorf("no token: %v", err)
	}
}

func TestCreateRefusesAmbiguousNames(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.DigitalOcean)
	ctx := context.Background()
	for range 2 {
		if _, _, err := c.api.Droplets.Create(ctx, &godo.DropletCreateRequest{Name: "twin", Region: "r", Size: "s", Image: godo.DropletCreateImage{ID: 7}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Create(ctx, CreateRequest{Names: []string{"twin"}, Region: "r", Size: "s", Image: "7"})
	if err == nil || !strings.Contains(err.Error(), "2 droplets are named twin") {
		t.Fatalf("err = %v", err)
	}
}

// TestCallsUseTheRunsEndpoint: a module call reaches the endpoint the
// run carries, never one from the environment.
func TestCallsUseTheRunsEndpoint(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	t.Setenv(TokenEnv, lab.Tokens.DigitalOcean) // a valid endpoint the package must not read
	t.Setenv(URLEnv, lab.URL+"/v2/")
	rec := &hostRecorder{}
	env := &modules.Env{Hosts: rec, Logf: func(string, ...any) {}}
	if _, err := new(dropletsCall).Call(context.Background(), env); err == nil || !strings.Contains(err.Error(), "no API token") {
		t.Fatalf("without an endpoint: err = %v, want no API token", err)
	}
	env.Endpoints = map[string]modules.Endpoint{Provider: {URL: lab.URL + "/v2/", Token: lab.Tokens.DigitalOcean}}
	if _, err := new(dropletsCall).Call(context.Background(), env); err != nil {
		t.Fatal(err)
	}
}

// hostRecorder is a modules.HostRecorder that keeps what it is told.
type hostRecorder struct{ added []string }

func (r *hostRecorder) AddHost(h *inventory.Host, _ string) error {
	r.added = append(r.added, h.Name)
	return nil
}
func (r *hostRecorder) RemoveHost(string) {}
