package linode

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orch-dev/orch/lab/cloud/cloudtest"
	"github.com/orch-dev/orch/modules/internal/cloud"
	"github.com/orch-dev/orch/modules/internal/cloud/cloudtesting"
)

// contentType is what the Linode API sends its errors with.
const contentType = "application/json"

// scripted starts a lab cloud behind a script of recorded Linode error
// bodies and returns a client for it.
func scripted(t *testing.T, match func(*http.Request) bool, replies ...cloudtesting.Reply) (*Client, *cloudtesting.Script) {
	t.Helper()
	s := cloudtesting.Serve(t, cloudtest.Start(t, nil), contentType, match, replies...)
	return testClient(t, s.URL, s.Lab.Tokens.Linode), s
}

func TestUnauthorizedIsNotRetried(t *testing.T) {
	cloudtesting.QuietLog(t)
	c, s := scripted(t, cloudtesting.Every, cloudtesting.Reply{Status: 401, File: "error_401.json"})
	_, err := c.Instances(context.Background(), "dns", "")
	cloudtesting.CheckErr(t, err, s.Lab.Tokens.Linode, "linode.instances", "[401] Invalid Token")
	if s.Count() != 1 {
		t.Errorf("%d requests, want 1", s.Count())
	}

	// A real 401 from the lab cloud, with a wrong token.
	lab := cloudtest.Start(t, nil)
	bad := testClient(t, lab.URL, "wrong-token-s3cr3t")
	_, err = bad.Create(context.Background(), CreateRequest{Labels: []string{"a"}, Region: "r", Type: "t", Image: "i"})
	cloudtesting.CheckErr(t, err, "wrong-token-s3cr3t", "Invalid Token")
}

func TestNotFound(t *testing.T) {
	c, s := scripted(t, cloudtesting.Is("GET", "/v4/linode/instances/42"), cloudtesting.Reply{Status: 404, File: "error_404.json"})
	_, err := c.Rename(context.Background(), 42, "ns1")
	cloudtesting.CheckErr(t, err, s.Lab.Tokens.Linode, "linode.rename 42 to ns1", "[404] Not found")
	if s.Count() != 1 {
		t.Errorf("%d requests, want 1", s.Count())
	}

	c, _ = scripted(t, cloudtesting.Is("DELETE", "/v4/linode/instances/42"), cloudtesting.Reply{Status: 404, File: "error_404.json"})
	if err := c.Delete(context.Background(), 42); err != nil {
		t.Errorf("deleting a deleted instance: %v", err)
	}
}

func TestTooManyRequestsThenSuccess(t *testing.T) {
	cloudtesting.QuietLog(t)
	c, s := scripted(t, cloudtesting.Is("GET", "/v4/linode/instances"),
		cloudtesting.Reply{Status: 429, File: "error_429.json", Header: map[string]string{"Retry-After": "0"}},
		cloudtesting.Reply{Status: 429, File: "error_429.json"})
	got, err := c.Instances(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || s.Count() != 3 {
		t.Errorf("got %v after %d requests, want 3 requests", got, s.Count())
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	c, _ := scripted(t, cloudtesting.Is("GET", "/v4/linode/instances"), cloudtesting.Reply{Status: 429, File: "error_429.json", Header: map[string]string{"Retry-After": "1"}})
	start := time.Now()
	if _, err := c.Instances(context.Background(), "", ""); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("retried after %v, Retry-After said 1s", waited)
	}
}

func TestServerErrorsThenSuccessCreateOnce(t *testing.T) {
	cloudtesting.QuietLog(t)
	c, s := scripted(t, cloudtesting.Is("POST", "/v4/linode/instances"),
		cloudtesting.Reply{Status: 500, File: "error_500.json"},
		cloudtesting.Reply{Status: 503, File: "error_500.json"})
	got, err := c.Create(context.Background(), CreateRequest{Labels: []string{"ns1"}, Region: "r", Type: "t", Image: "i"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Count() != 3 || s.Lab.Machines.Starts() != 1 || !got[0].Created || got[0].Status != "running" {
		t.Errorf("%d POSTs, %d machines, %+v", s.Count(), s.Lab.Machines.Starts(), got)
	}
}

// A create that went through but answered 500 is replayed; the replay finds
// the label taken, and Create adopts the instance with the key it sent.
func TestReplayedCreateAdoptsTheInstance(t *testing.T) {
	post := func(r *http.Request) bool { return r.Method == "POST" }
	// The create happens, but the answer is lost.
	c, s := scripted(t, post, cloudtesting.Reply{Status: 500, File: "error_500.json", Lost: true})
	lab := s.Lab

	got, err := c.Create(context.Background(), CreateRequest{Labels: []string{"ns1"}, Region: "r", Type: "t", Image: "i"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := lab.Machines.ByName("ns1")
	if _, pub := pinnedKey(t, m.Spec.UserData); lab.Machines.Starts() != 1 || !got[0].Created || got[0].HostKey != pub {
		t.Errorf("%d machines, instance %+v, pinned %s", lab.Machines.Starts(), got[0], pub)
	}
}

func TestBusyThenSuccess(t *testing.T) {
	cloudtesting.QuietLog(t)
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.Linode)
	in, err := c.Create(context.Background(), CreateRequest{Labels: []string{"ns1-next"}, Region: "r", Type: "t", Image: "i"})
	if err != nil {
		t.Fatal(err)
	}
	path := "/v4/linode/instances/" + strconv.Itoa(in[0].ID)
	busy := cloudtesting.Reply{Status: 400, File: "error_400_busy.json"}
	s := cloudtesting.Serve(t, lab, contentType, cloudtesting.Is("PUT", path), busy, busy)
	c = testClient(t, s.URL, lab.Tokens.Linode)
	got, err := c.Rename(context.Background(), in[0].ID, "ns1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Label != "ns1" || s.Count() != 3 {
		t.Errorf("%+v after %d PUTs", got, s.Count())
	}
}

func TestValidationErrorIsNotRetried(t *testing.T) {
	c, s := scripted(t, cloudtesting.Is("POST", "/v4/linode/instances"), cloudtesting.Reply{Status: 400, File: "error_400_type.json"})
	_, err := c.Create(context.Background(), CreateRequest{Labels: []string{"ns1"}, Region: "us-east", Type: "g9-huge", Image: "i"})
	cloudtesting.CheckErr(t, err, s.Lab.Tokens.Linode, "linode.create ns1: [400] [type] A valid plan type by that ID was not found")
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
	_, err := c.Instances(context.Background(), "", "")
	cloudtesting.CheckErr(t, err, s.Lab.Tokens.Linode, "429 Too Many Requests", "giving up after 4 attempts")
	if s.Count() != 4 {
		t.Errorf("%d requests, want 4", s.Count())
	}
}

func TestRetryWaitEndsWithContext(t *testing.T) {
	c, _ := scripted(t, cloudtesting.Every, cloudtesting.Reply{Status: 503, File: "error_500.json", Header: map[string]string{"Retry-After": "60"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Instances(ctx, "", "")
	// linodego flattens the error chain, so the text is what is left to check.
	if err == nil || !strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
}

func TestTokenNeverShown(t *testing.T) {
	token := "tok-very-secret-0123"
	c := testClient(t, cloudtesting.EchoServer(t, `{"errors":[{"reason":"bad header %s"}]}`), token)
	_, err := c.Instances(context.Background(), "", "")
	cloudtesting.CheckErr(t, err, token, "[redacted]")
	_, err = c.Create(context.Background(), CreateRequest{Labels: []string{"a"}, Region: "r", Type: "t", Image: "i"})
	cloudtesting.CheckErr(t, err, token, "linode.create")
	cloudtesting.CheckErr(t, c.Delete(context.Background(), 1), token, "linode.delete 1")
}

func TestRetryTransportResendsTheBody(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		n := len(bodies)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(hs.Close)
	rt := &retryTransport{base: http.DefaultTransport, retry: cloud.Retry{Attempts: 3, Delay: time.Millisecond, MaxDelay: time.Millisecond}}
	// A body without GetBody, which the transport must buffer itself.
	req, _ := http.NewRequest("POST", hs.URL, io.NopCloser(strings.NewReader(`{"label":"ns1"}`)))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(bodies) != 2 || bodies[0] != `{"label":"ns1"}` || bodies[1] != bodies[0] {
		t.Errorf("bodies sent: %q", bodies)
	}
}
