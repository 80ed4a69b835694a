package cloud_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linode/linodego"

	"github.com/orch-dev/orch/lab/cloud/cloudtest"
)

func linodeClient(t *testing.T, lab *cloudtest.Lab, token string) *linodego.Client {
	t.Helper()
	c := linodego.NewClient(&http.Client{Timeout: 10 * time.Second})
	c.SetBaseURL(lab.URL)
	c.SetAPIVersion("v4")
	if token != "" {
		c.SetToken(token)
	}
	return &c
}

// rawDo sends one request to the lab and returns the status and body.
func rawDo(t *testing.T, method, url, token string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitInstance(t *testing.T, c *linodego.Client, id int, status linodego.InstanceStatus) *linodego.Instance {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		in, err := c.GetInstance(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if in.Status == status {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %d still %s, want %s", id, in.Status, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLinodeLifecycle(t *testing.T) {
	machines := cloudtest.NewMachines()
	machines.StartDelay = 50 * time.Millisecond
	lab := cloudtest.Start(t, machines)
	c := linodeClient(t, lab, lab.Tokens.Linode)
	ctx := context.Background()

	userData := "#cloud-config\nruncmd:\n  - touch /tmp/ok\n"
	in, err := c.CreateInstance(ctx, linodego.InstanceCreateOptions{
		Region: "us-east", Type: "g6-nanode-1", Label: "ns1-next", Image: "linode/debian12",
		AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey user@host"},
		Tags:           []string{"dns"},
		Metadata:       &linodego.InstanceMetadataOptions{UserData: base64.StdEncoding.EncodeToString([]byte(userData))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != linodego.InstanceProvisioning || len(in.IPv4) != 0 || in.Label != "ns1-next" || !in.HasUserData {
		t.Fatalf("created instance = %+v", in)
	}
	if in.Created == nil || in.Created.IsZero() {
		t.Errorf("created time missing")
	}

	in = waitInstance(t, c, in.ID, linodego.InstanceRunning)
	m, ok := machines.ByName("ns1-next")
	if !ok {
		t.Fatal("no machine ns1-next")
	}
	if len(in.IPv4) != 1 || in.IPv4[0].String() != m.Address {
		t.Errorf("ipv4 = %v, want [%s]", in.IPv4, m.Address)
	}
	if string(m.Spec.UserData) != userData {
		t.Errorf("machine user data = %q, want %q", m.Spec.UserData, userData)
	}
	if !slices.Equal(m.Spec.SSHKeys, []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey user@host"}) || m.Spec.Image != "linode/debian12" {
		t.Errorf("machine spec = %+v", m.Spec)
	}

	in, err = c.RenameInstance(ctx, in.ID, "ns1")
	if err != nil {
		t.Fatal(err)
	}
	if in.Label != "ns1" {
		t.Errorf("label after rename = %q", in.Label)
	}
	if got, _ := machines.ByName("ns1"); got.ID != m.ID {
		t.Errorf("machine was not renamed: %+v", machines.List())
	}

	if err := c.DeleteInstance(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetInstance(ctx, in.ID)
	if !linodego.IsNotFound(err) || !strings.Contains(err.Error(), "Not found") {
		t.Fatalf("get after delete: %v", err)
	}
	if len(machines.List()) != 0 {
		t.Errorf("machines left: %+v", machines.List())
	}
	code, body := rawDo(t, "GET", fmt.Sprintf("%s/v4/linode/instances/%d", lab.URL, in.ID), lab.Tokens.Linode, nil, "")
	if code != 404 || body != `{"errors":[{"reason":"Not found"}]}` {
		t.Errorf("404 = %d %s", code, body)
	}
}

func TestLinodeUnauthorized(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	for _, token := range []string{"", "wrong"} {
		c := linodeClient(t, lab, token)
		_, err := c.ListInstances(context.Background(), nil)
		if !linodego.ErrHasStatus(err, 401) || !strings.Contains(err.Error(), "Invalid Token") {
			t.Errorf("token %q: err = %v", token, err)
		}
		code, body := rawDo(t, "GET", lab.URL+"/v4/linode/instances", token, nil, "")
		if code != 401 || body != `{"errors":[{"reason":"Invalid Token"}]}` {
			t.Errorf("token %q: %d %s", token, code, body)
		}
	}
	// The Linode token does not open the DigitalOcean API.
	if code, _ := rawDo(t, "GET", lab.URL+"/v2/droplets", lab.Tokens.Linode, nil, ""); code != 401 {
		t.Errorf("DigitalOcean API with the Linode token: %d", code)
	}
}

func TestLinodeListPagingAndFilters(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	c := linodeClient(t, lab, lab.Tokens.Linode)
	ctx := context.Background()
	for i := range 30 {
		tags := []string{"web"}
		if i%3 == 0 {
			tags = []string{"dns", "prod"}
		}
		if _, err := c.CreateInstance(ctx, linodego.InstanceCreateOptions{
			Region: "us-east", Type: "g6-nanode-1", Label: fmt.Sprintf("host%02d", i), Tags: tags,
		}); err != nil {
			t.Fatal(err)
		}
	}

	all, err := c.ListInstances(ctx, &linodego.ListOptions{PageSize: 25})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 30 || all[0].Label != "host00" || all[29].Label != "host29" {
		t.Fatalf("listed %d instances", len(all))
	}

	code, body := rawDo(t, "GET", lab.URL+"/v4/linode/instances?page=2&page_size=25", lab.Tokens.Linode, nil, "")
	var page struct {
		Data                 []json.RawMessage
		Page, Pages, Results int
	}
	if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil {
		t.Fatalf("page 2: %d %s", code, body)
	}
	if page.Page != 2 || page.Pages != 2 || page.Results != 30 || len(page.Data) != 5 {
		t.Errorf("page 2 = page %d pages %d results %d data %d", page.Page, page.Pages, page.Results, len(page.Data))
	}
	if code, body := rawDo(t, "GET", lab.URL+"/v4/linode/instances?page_size=10", lab.Tokens.Linode, nil, ""); code != 400 || !strings.Contains(body, `"field":"page_size"`) {
		t.Errorf("page_size 10: %d %s", code, body)
	}

	labels := func(filter string) []string {
		t.Helper()
		got, err := c.ListInstances(ctx, &linodego.ListOptions{Filter: filter})
		if err != nil {
			t.Fatalf("filter %s: %v", filter, err)
		}
		var out []string
		for _, in := range got {
			out = append(out, in.Label)
		}
		return out
	}
	mustJSON := func(f *linodego.Filter) string {
		b, err := f.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := labels(`{"label":"host07"}`); !slices.Equal(got, []string{"host07"}) {
		t.Errorf("label filter = %v", got)
	}
	if got := labels(`{"tags":"dns"}`); len(got) != 10 || got[0] != "host00" {
		t.Errorf("tag filter = %v", got)
	}
	and := linodego.And("", "", &linodego.Comp{Column: "tags", Operator: linodego.Eq, Value: "dns"},
		&linodego.Comp{Column: "label", Operator: linodego.Eq, Value: "host03"})
	if got := labels(mustJSON(and)); !slices.Equal(got, []string{"host03"}) {
		t.Errorf("+and filter = %v", got)
	}
	or := linodego.Or("desc", "label", &linodego.Comp{Column: "label", Operator: linodego.Eq, Value: "host01"},
		&linodego.Comp{Column: "label", Operator: linodego.Eq, Value: "host02"})
	if got := labels(mustJSON(or)); !slices.Equal(got, []string{"host02", "host01"}) {
		t.Errorf("+or filter ordered desc = %v", got)
	}
	two := &linodego.Filter{}
	two.AddField(linodego.Eq, "tags", "prod")
	two.AddField(linodego.Contains, "label", "host1")
	if got := labels(mustJSON(two)); !slices.Equal(got, []string{"host12", "host15", "host18"}) {
		t.Errorf("two-key filter = %v", got)
	}
	if got := labels(`{"tags":{"+neq":"web"}}`); len(got) != 10 {
		t.Errorf("+neq on tags = %v", got)
	}
	if _, err := c.ListInstances(ctx, &linodego.ListOptions{Filter: `{"nosuchfield":"x"}`}); !linodego.ErrHasStatus(err, 400) {
		t.Errorf("unknown field: %v", err)
	}
}

func TestLinodeRulesOfTheAPI(t *testing.T) {
	machines := cloudtest.NewMachines()
	machines.StartDelay = time.Hour // stays provisioning
	lab := cloudtest.Start(t, machines)
	c := linodeClient(t, lab, lab.Tokens.Linode)
	ctx := context.Background()
	opts := linodego.InstanceCreateOptions{Region: "us-east", Type: "g6-nanode-1", Label: "ns1"}
	in, err := c.CreateInstance(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}

	_, err = c.CreateInstance(ctx, opts)
	if !linodego.ErrHasStatus(err, 400) || !strings.Contains(err.Error(), "[label] Label must be unique among your linodes") {
		t.Errorf("duplicate label: %v", err)
	}
	_, err = c.CreateInstance(ctx, linodego.InstanceCreateOptions{Label: "x!"})
	if !linodego.ErrHasStatus(err, 400) || !strings.Contains(err.Error(), "[region]") || !strings.Contains(err.Error(), "[label]") {
		t.Errorf("invalid create: %v", err)
	}

	// A provisioning instance cannot be renamed yet. (Raw HTTP: linodego
	// itself would retry "Linode busy." until the context ends.)
	code, body := rawDo(t, "PUT", fmt.Sprintf("%s/v4/linode/instances/%d", lab.URL, in.ID), lab.Tokens.Linode, nil, `{"label":"ns2"}`)
	if code != 400 || body != `{"errors":[{"reason":"Linode busy."}]}` {
		t.Errorf("rename while provisioning: %d %s", code, body)
	}
	// But it can be deleted, which cancels the machine start.
	if err := c.DeleteInstance(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if code, _ := rawDo(t, "GET", fmt.Sprintf("%s/v4/linode/instances/%d", lab.URL, in.ID), lab.Tokens.Linode, nil, ""); code != 404 {
		t.Errorf("get after delete: %d", code)
	}
	if code, body := rawDo(t, "GET", lab.URL+"/v4/linode/nosuch", lab.Tokens.Linode, nil, ""); code != 404 || body != `{"errors":[{"reason":"Not found"}]}` {
		t.Errorf("unknown path: %d %s", code, body)
	}
	// Close must not wait for the hour-long start.
	done := make(chan struct{})
	go func() { lab.Server.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a pending start")
	}
}

func TestLinodeFailedStartGoesOffline(t *testing.T) {
	machines := cloudtest.NewMachines()
	machines.StartErr = fmt.Errorf("docker: no space left")
	lab := cloudtest.Start(t, machines)
	c := linodeClient(t, lab, lab.Tokens.Linode)
	in, err := c.CreateInstance(context.Background(), linodego.InstanceCreateOptions{Region: "r", Type: "t", Label: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	waitInstance(t, c, in.ID, linodego.InstanceOffline)
	if err := c.DeleteInstance(context.Background(), in.ID); err != nil {
		t.Fatal(err)
	}
}
