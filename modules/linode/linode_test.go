package linode

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab/cloud/cloudtest"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/internal/cloud"
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

var nsRequest = CreateRequest{
	Labels: []string{"ns1-next", "ns2-next"}, Region: "us-east", Type: "g6-nanode-1", Image: "linode/debian12",
	Tags: []string{"dns"}, AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOrch operator"},
}

// pinnedKey returns the host key pair that the machine's cloud-init user data installs.
func pinnedKey(t *testing.T, userData []byte) (private, public string) {
	t.Helper()
	var cfg struct {
		SSHKeys map[string]string `yaml:"ssh_keys"`
	}
	cloudtesting.CloudConfig(t, userData, &cfg)
	return cfg.SSHKeys["ed25519_private"], cfg.SSHKeys["ed25519_public"]
}

func TestCreatePinsHostKeys(t *testing.T) {
	machines := cloudtest.NewMachines()
	machines.StartDelay = 20 * time.Millisecond
	lab := cloudtest.Start(t, machines)
	c := testClient(t, lab.URL, lab.Tokens.Linode)

	got, err := c.Create(context.Background(), nsRequest)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Label != "ns1-next" || got[1].Label != "ns2-next" {
		t.Fatalf("created %+v", got)
	}
	for _, in := range got {
		m, ok := machines.ByName(in.Label)
		if !ok {
			t.Fatalf("no machine for %s", in.Label)
		}
		if in.Status != "running" || in.IPv4 != m.Address || !in.Created || !slices.Equal(in.Tags, []string{"dns"}) {
			t.Errorf("instance = %+v, machine %+v", in, m)
		}
		if !slices.Equal(m.Spec.SSHKeys, nsRequest.AuthorizedKeys) {
			t.Errorf("authorized keys = %v", m.Spec.SSHKeys)
		}
		priv, pub := pinnedKey(t, m.Spec.UserData)
		if pub != in.HostKey {
			t.Errorf("user data pins %q, Create returned %q", pub, in.HostKey)
		}
		signer, err := ssh.ParsePrivateKey([]byte(priv))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))); got != in.HostKey {
			t.Errorf("private key does not match the returned host key")
		}

		// The known_hosts line verifies the machine's key, strictly.
		line := in.KnownHostsLine()
		if !strings.HasPrefix(line, in.IPv4+" ssh-ed25519 ") {
			t.Errorf("known_hosts line = %q", line)
		}
		check := cloudtesting.HostKeyCallback(t, line)
		remote := &net.TCPAddr{IP: net.ParseIP(in.IPv4), Port: 22}
		if err := check(in.IPv4+":22", remote, signer.PublicKey()); err != nil {
			t.Errorf("pinned key rejected: %v", err)
		}
		other, _ := cloud.NewHostKey()
		otherKey, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(other.Public))
		if err := check(in.IPv4+":22", remote, otherKey); err == nil {
			t.Errorf("a different key was accepted")
		}

		h := in.Host()
		if h.Name != in.Label || h.Address != in.IPv4 || h.User != "root" || h.Vars["linode_id"] != in.ID {
			t.Errorf("host = %+v", h)
		}
		if id, err := IDFromHost(h); err != nil || id != in.ID {
			t.Errorf("IDFromHost = %d, %v", id, err)
		}
	}
	if got[0].HostKey == got[1].HostKey {
		t.Error("two instances share a host key")
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.Linode)
	ctx := context.Background()

	first, err := c.Create(ctx, nsRequest)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Create(ctx, nsRequest)
	if err != nil {
		t.Fatal(err)
	}
	if starts := lab.Machines.Starts(); starts != 2 {
		t.Errorf("machines started %d times, want 2", starts)
	}
	for i := range again {
		if again[i].ID != first[i].ID || again[i].Created || again[i].HostKey != "" || again[i].IPv4 != first[i].IPv4 {
			t.Errorf("second create = %+v, first %+v", again[i], first[i])
		}
	}

	// A wider request creates only what is missing.
	wider := nsRequest
	wider.Labels = []string{"ns1-next", "ns3-next"}
	got, err := c.Create(ctx, wider)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Created || !got[1].Created || got[1].HostKey == "" || lab.Machines.Starts() != 3 {
		t.Errorf("wider create = %+v", got)
	}
}

func TestDNSSwapFlow(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.Linode)
	ctx := context.Background()

	old, err := c.Create(ctx, CreateRequest{Labels: []string{"ns1", "ns2"}, Region: "r", Type: "t", Image: "i", Tags: []string{"dns"}})
	if err != nil {
		t.Fatal(err)
	}
	next, err := c.Create(ctx, nsRequest)
	if err != nil {
		t.Fatal(err)
	}
	dns, err := c.Instances(ctx, "dns", "")
	if err != nil || len(dns) != 4 {
		t.Fatalf("instances tagged dns: %d, %v", len(dns), err)
	}
	one, err := c.Instances(ctx, "dns", "ns2-next")
	if err != nil || len(one) != 1 || one[0].ID != next[1].ID {
		t.Fatalf("instance ns2-next: %+v, %v", one, err)
	}

	// Step 6: delete the old servers; deleting twice is fine.
	if err := c.Delete(ctx, old[0].ID, old[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, old[0].ID); err != nil {
		t.Errorf("second delete: %v", err)
	}
	// Step 7: rename the new ones into place; renaming twice is fine.
	for i, label := range []string{"ns1", "ns2"} {
		in, err := c.Rename(ctx, next[i].ID, label)
		if err != nil || in.Label != label {
			t.Fatalf("rename: %+v, %v", in, err)
		}
		if _, err := c.Rename(ctx, next[i].ID, label); err != nil {
			t.Errorf("second rename: %v", err)
		}
		if m, ok := lab.Machines.ByName(label); !ok || m.Address != next[i].IPv4 {
			t.Errorf("machine %s = %+v", label, m)
		}
	}
	dns, _ = c.Instances(ctx, "dns", "")
	var labels []string
	for _, in := range dns {
		labels = append(labels, in.Label)
	}
	if !slices.Equal(labels, []string{"ns1", "ns2"}) {
		t.Errorf("after the swap: %v", labels)
	}
	if _, err := c.Rename(ctx, 999999, "x"); err == nil || !strings.Contains(err.Error(), "Not found") {
		t.Errorf("rename of a missing instance: %v", err)
	}
}

func TestInstancesReadsEveryPage(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.Linode)
	var labels []string
	for i := range 105 {
		labels = append(labels, fmt.Sprintf("web%03d", i))
	}
	if _, err := c.Create(context.Background(), CreateRequest{Labels: labels, Region: "r", Type: "t", Image: "i", Tags: []string{"web"}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Instances(context.Background(), "web", "")
	if err != nil || len(got) != 105 || got[104].Label != "web104" {
		t.Fatalf("listed %d: %v", len(got), err)
	}
}

func TestCreateFailsWhenTheMachineDoesNotStart(t *testing.T) {
	machines := cloudtest.NewMachines()
	machines.StartErr = fmt.Errorf("no space left on device")
	lab := cloudtest.Start(t, machines)
	c := testClient(t, lab.URL, lab.Tokens.Linode)
	got, err := c.Create(context.Background(), CreateRequest{Labels: []string{"ns1"}, Region: "r", Type: "t", Image: "i"})
	if err == nil || !strings.Contains(err.Error(), "is offline") {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 1 || got[0].ID == 0 || got[0].HostKey == "" {
		t.Errorf("the created instance is not returned for clean-up: %+v", got)
	}
}

func TestCreateWaitEndsWithContext(t *testing.T) {
	machines := cloudtest.NewMachines()
	machines.StartDelay = time.Hour
	lab := cloudtest.Start(t, machines)
	c := testClient(t, lab.URL, lab.Tokens.Linode)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Create(ctx, CreateRequest{Labels: []string{"slow"}, Region: "r", Type: "t", Image: "i"})
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("err = %v", err)
	}
}

func TestCreateValidates(t *testing.T) {
	c := testClient(t, "http://127.0.0.1:1", "token")
	for _, req := range []CreateRequest{
		{Region: "r", Type: "t", Image: "i"},
		{Labels: []string{"a"}, Type: "t", Image: "i"},
		{Labels: []string{"a", "a"}, Region: "r", Type: "t", Image: "i"},
	} {
		if _, err := c.Create(context.Background(), req); err == nil || !strings.HasPrefix(err.Error(), "linode.create: ") {
			t.Errorf("%+v: err = %v", req, err)
		}
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "LINODE_TOKEN") {
		t.Errorf("no token: %v", err)
	}
}

// TestCallsUseTheRunsEndpoint: a module call reaches the endpoint the
// run carries, never one from the environment.
func TestCallsUseTheRunsEndpoint(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	t.Setenv(TokenEnv, lab.Tokens.Linode) // a valid endpoint the package must not read
	t.Setenv(URLEnv, lab.URL+"/v4")
	rec := &hostRecorder{}
	env := &modules.Env{Hosts: rec, Logf: func(string, ...any) {}}
	if _, err := new(instancesCall).Call(context.Background(), env); err == nil || !strings.Contains(err.Error(), "no API token") {
		t.Fatalf("without an endpoint: err = %v, want no API token", err)
	}
	env.Endpoints = map[string]modules.Endpoint{Provider: {URL: lab.URL + "/v4", Token: lab.Tokens.Linode}}
	if _, err := new(instancesCall).Call(context.Background(), env); err != nil {
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
