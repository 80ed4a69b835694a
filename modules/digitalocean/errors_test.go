package digitalocean

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/lab/cloud/cloudtest"
	"github.com/orch-dev/orch/modules/internal/cloud/cloudtesting"
)

// contentType is what the DigitalOcean API sends its errors with.
const contentType = "application/json; charset=utf-8"

// scripted starts a lab cloud behind a script of recorded DigitalOcean error
// bodies and returns a client for it.
func scripted(t *testing.T, match func(*http.Request) bool, replies ...cloudtesting.Reply) (*Client, *cloudtesting.Script) {
	t.Helper()
	s := cloudtesting.Serve(t, cloudtest.Start(t, nil), contentType, match, replies...)
	return testClient(t, s.URL, s.Lab.Tokens.DigitalOcean), s
}

// droplet makes an active droplet on the lab behind s.
func droplet(t *testing.T, c *Client, name string) Droplet {
	t.Helper()
	d, err := c.Create(context.Background(), CreateRequest{Names: []string{name}, Region: "ams3", Size: "s", Image: "7"})
	if err != nil {
		t.Fatal(err)
	}
	return d[0]
}

func TestUnauthorizedIsNotRetried(t *testing.T) {
	cloudtesting.QuietLog(t)
	c, s := scripted(t, cloudtesting.Every, cloudtesting.Reply{Status: 401, File: "error_401.json"})
	_, err := c.Droplets(context.Background(), "app")
	cloudtesting.CheckErr(t, err, s.Lab.Tokens.DigitalOcean, "digitalocean.droplets", "401 Unable to authenticate you")
	if s.Count() != 1 {
		t.Errorf("%d requests, want 1", s.Count())
	}

	lab := cloudtest.Start(t, nil)
	bad := testClient(t, lab.URL, "wrong-token-s3cr3t")
	_, err = bad.Create(context.Background(), CreateRequest{Names: []string{"a"}, Region: "r", Size: "s", Image: "7"})
	cloudtesting.CheckErr(t, err, "wrong-token-s3cr3t", "Unable to authenticate you")
}

func TestNotFound(t *testing.T) {
	c, s := scripted(t, cloudtesting.Is("GET", "/v2/droplets/42"), cloudtesting.Reply{Status: 404, File: "error_404.json"})
	_, err := c.Rename(context.Background(), 42, "app")
	cloudtesting.CheckErr(t, err, s.Lab.Tokens.DigitalOcean, "digitalocean.rename 42 to app", "404 The resource you were accessing could not be found.")
	if s.Count() != 1 {
		t.Errorf("%d requests, want 1", s.Count())
	}
	c, _ = scripted(t, cloudtesting.Is("DELETE", "/v2/droplets/42"), cloudtesting.Reply{Status: 404, File: "error_404.json"})
	if err := c.Delete(context.Background(), 42); err != nil {
		t.Errorf("deleting a deleted droplet: %v", err)
	}
}

func TestTooManyRequestsThenSuccess(t *testing.T) {
	cloudtesting.QuietLog(t)
	c, s := scripted(t, cloudtesting.Is("GET", "/v2/droplets"),
		cloudtesting.Reply{Status: 429, File: "error_429.json", Header: map[string]string{"Retry-After": "0"}},
		cloudtesting.Reply{Status: 429, File: "error_429.json"})
	got, err := c.Droplets(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || s.Count() != 3 {
		t.Errorf("got %v after %d requests, want 3 requests", got, s.Count())
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	c, _ := scripted(t, cloudtesting.Is("GET", "/v2/droplets"), cloudtesting.Reply{Status: 429, File: "error_429.json", Header: map[string]string{"Retry-After": "1"}})
	start := time.Now()
	if _, err := c.Droplets(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("retried after %v, Retry-After said 1s", waited)
	}
}

func TestServerErrorsThenSuccessCreateOnce(t *testing.T) {
	cloudtesting.QuietLog(t)
	c, s := scripted(t, cloudtesting.Is("POST", "/v2/droplets"),
		cloudtesting.Reply{Status: 500, File: "error_500.json"},
		cloudtesting.Reply{Status: 503, File: "error_500.json"})
	got, err := c.Create(context.Background(), CreateRequest{Names: []string{"app"}, Region: "r", Size: "s", Image: "7"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Count() != 3 || s.Lab.Machines.Starts() != 1 || !got[0].Created || got[0].Status != "active" {
		t.Errorf("%d POSTs, %d machines, %+v", s.Count(), s.Lab.Machines.Starts(), got)
	}
}

// A create that went through but answered 500 is not replayed blindly: the
// retry finds the droplet by name and adopts it with the key it sent.
func TestLostCreateAnswerAdoptsTheDroplet(t *testing.T) {
	// The create happens, but the answer is lost.
	c, s := scripted(t, cloudtesting.Is("POST", "/v2/droplets"), cloudtesting.Reply{Status: 500, File: "error_500.json", Lost: true})
	lab := s.Lab

	got, err := c.Create(context.Background(), CreateRequest{Names: []string{"app"}, Region: "r", Size: "s", Image: "7"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := lab.Machines.ByName("app")
	keys, _ := cloudConfig(t, m.Spec.UserData)["ssh_keys"].(map[string]any)
	if lab.Machines.Starts() != 1 || !got[0].Created || got[0].HostKey != keys["ed25519_public"] {
		t.Errorf("%d machines, droplet %+v", lab.Machines.Starts(), got[0])
	}
}

func TestPendingEventThenSuccess(t *testing.T) {
	cloudtesting.QuietLog(t)
	c, s := scripted(t, cloudtesting.Is("POST", "/v2/reserved_ips/203.0.113.10/actions"),
		cloudtesting.Reply{Status: 422, File: "error_422_pending.json"},
		cloudtesting.Reply{Status: 422, File: "error_422_pending.json"})
	d := droplet(t, c, "app")
	if err := c.AssignIP(context.Background(), "203.0.113.10", d.ID); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Lab.Machines.ByName("app"); s.Count() != 3 || s.Lab.Machines.Holder("203.0.113.10") != m.ID {
		t.Errorf("%d assign requests, holder %q", s.Count(), s.Lab.Machines.Holder("203.0.113.10"))
	}
}

func TestUnprocessableIsNotRetried(t *testing.T) {
	c, s := scripted(t, cloudtesting.Is("POST", "/v2/droplets"), cloudtesting.Reply{Status: 422, File: "error_422_name.json"})
	_, err := c.Create(context.Background(), CreateRequest{Names: []string{"app"}, Region: "r", Size: "s", Image: "7"})
	cloudtesting.CheckErr(t, err, s.Lab.Tokens.DigitalOcean, "digitalocean.create app: POST", "422 Only valid hostname characters are allowed.")
	if s.Count() != 1 || s.Lab.Machines.Starts() != 0 {
		t.Errorf("%d POSTs, %d machines", s.Count(), s.Lab.Machines.Starts())
	}
}

func TestGivesUpAfterAttempts(t *testing.T) {
	cloudtesting.QuietLog(t)
	var replies []cloudtesting.Reply
	for range 10 {
		replies = append(replies, cloudtesting.Reply{Status: 429, File: "error_429.json"})
	}
	c, s := scripted(t, cloudtesting.Every, replies...)
	_, err := c.Droplets(context.Background(), "")
	cloudtesting.CheckErr(t, err, s.Lab.Tokens.DigitalOcean, "429 API Rate limit exceeded.", "giving up after 4 attempts")
	if s.Count() != 4 {
		t.Errorf("%d requests, want 4", s.Count())
	}
}

func TestRetryWaitEndsWithContext(t *testing.T) {
	c, _ := scripted(t, cloudtesting.Every, cloudtesting.Reply{Status: 503, File: "error_500.json", Header: map[string]string{"Retry-After": "60"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Droplets(ctx, "")
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestTokenNeverShown(t *testing.T) {
	token := "tok-very-secret-0123"
	c := testClient(t, cloudtesting.EchoServer(t, `{"id":"bad_request","message":"bad header %s"}`), token)
	_, err := c.Droplets(context.Background(), "")
	cloudtesting.CheckErr(t, err, token, "[redacted]")
	_, err = c.Create(context.Background(), CreateRequest{Names: []string{"a"}, Region: "r", Size: "s", Image: "7"})
	cloudtesting.CheckErr(t, err, token, "digitalocean.create a")
	cloudtesting.CheckErr(t, c.AssignIP(context.Background(), "203.0.113.10", 1), token, "digitalocean.assign_ip")
	cloudtesting.CheckErr(t, c.Delete(context.Background(), 1), token, "digitalocean.delete 1")
}
