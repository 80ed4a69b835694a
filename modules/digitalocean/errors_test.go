package digitalocean

import (
	"bytes"
	"context"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orch-dev/orch/lab/cloud/cloudtest"
)

// reply is a canned API answer whose body is a recorded DigitalOcean error body.
type reply struct {
	status int
	file   string // in testdata/
	header map[string]string
}

// script answers requests that match with its replies, in order, and hands
// everything else (and matching requests once the replies run out) to the
// lab cloud, which answers in the real API's shapes.
type script struct {
	lab     *cloudtest.Lab
	match   func(*http.Request) bool
	mu      sync.Mutex
	replies []reply
	matched int // matching requests seen, canned or not
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var rep *reply
	if s.match(r) {
		s.matched++
		if len(s.replies) > 0 {
			rep = &s.replies[0]
			s.replies = s.replies[1:]
		}
	}
	s.mu.Unlock()
	if rep == nil {
		s.lab.Server.ServeHTTP(w, r)
		return
	}
	body, err := os.ReadFile(filepath.Join("testdata", rep.file))
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	w.Write(body)
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.matched
}

// scripted starts a lab cloud behind a script and returns a client for it.
func scripted(t *testing.T, match func(*http.Request) bool, replies ...reply) (*Client, *script) {
	t.Helper()
	s := &script{lab: cloudtest.Start(t, nil), match: match, replies: replies}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return testClient(t, hs.URL, s.lab.Tokens.DigitalOcean), s
}

func is(method, path string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method && r.URL.Path == path }
}

func every(*http.Request) bool { return true }

// checkErr fails unless err is an error that says want and keeps the token out.
func checkErr(t *testing.T, err error, token string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("error shows the token: %q", err)
	}
}

// quietLog fails the test if anything reaches the standard logger.
func quietLog(t *testing.T) {
	var buf bytes.Buffer
	log.SetOutput(&buf)
	t.Cleanup(func() {
		log.SetOutput(os.Stderr)
		if buf.Len() > 0 {
			t.Errorf("the library logged: %s", buf.String())
		}
	})
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
	quietLog(t)
	c, s := scripted(t, every, reply{401, "error_401.json", nil})
	_, err := c.Droplets(context.Background(), "app")
	checkErr(t, err, s.lab.Tokens.DigitalOcean, "digitalocean.droplets", "401 Unable to authenticate you")
	if s.count() != 1 {
		t.Errorf("%d requests, want 1", s.count())
	}

	lab := cloudtest.Start(t, nil)
	bad := testClient(t, lab.URL, "wrong-token-s3cr3t")
	_, err = bad.Create(context.Background(), CreateRequest{Names: []string{"a"}, Region: "r", Size: "s", Image: "7"})
	checkErr(t, err, "wrong-token-s3cr3t", "Unable to authenticate you")
}

func TestNotFound(t *testing.T) {
	c, s := scripted(t, is("GET", "/v2/droplets/42"), reply{404, "error_404.json", nil})
	_, err := c.Rename(context.Background(), 42, "app")
	checkErr(t, err, s.lab.Tokens.DigitalOcean, "digitalocean.rename 42 to app", "404 The resource you were accessing could not be found.")
	if s.count() != 1 {
		t.Errorf("%d requests, want 1", s.count())
	}
	c, _ = scripted(t, is("DELETE", "/v2/droplets/42"), reply{404, "error_404.json", nil})
	if err := c.Delete(context.Background(), 42); err != nil {
		t.Errorf("deleting a deleted droplet: %v", err)
	}
}

func TestTooManyRequestsThenSuccess(t *testing.T) {
	quietLog(t)
	c, s := scripted(t, is("GET", "/v2/droplets"),
		reply{429, "error_429.json", map[string]string{"Retry-After": "0"}},
		reply{429, "error_429.json", nil})
	got, err := c.Droplets(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || s.count() != 3 {
		t.Errorf("got %v after %d requests, want 3 requests", got, s.count())
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	c, _ := scripted(t, is("GET", "/v2/droplets"), reply{429, "error_429.json", map[string]string{"Retry-After": "1"}})
	start := time.Now()
	if _, err := c.Droplets(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("retried after %v, Retry-After said 1s", waited)
	}
}

func TestServerErrorsThenSuccessCreateOnce(t *testing.T) {
	quietLog(t)
	c, s := scripted(t, is("POST", "/v2/droplets"),
		reply{500, "error_500.json", nil},
		reply{503, "error_500.json", nil})
	got, err := c.Create(context.Background(), CreateRequest{Names: []string{"app"}, Region: "r", Size: "s", Image: "7"})
	if err != nil {
		t.Fatal(err)
	}
	if s.count() != 3 || s.lab.Machines.Starts() != 1 || !got[0].Created || got[0].Status != "active" {
		t.Errorf("%d POSTs, %d machines, %+v", s.count(), s.lab.Machines.Starts(), got)
	}
}

// A create that went through but answered 500 is not replayed blindly: the
// retry finds the droplet by name and adopts it with the key it sent.
func TestLostCreateAnswerAdoptsTheDroplet(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	var mu sync.Mutex
	failed := false
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := r.Method == "POST" && r.URL.Path == "/v2/droplets" && !failed
		failed = failed || fail
		mu.Unlock()
		if fail {
			lab.Server.ServeHTTP(httptest.NewRecorder(), r) // the create happens...
			body, _ := os.ReadFile("testdata/error_500.json")
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(500) // ...but the answer is lost
			w.Write(body)
			return
		}
		lab.Server.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	c := testClient(t, hs.URL, lab.Tokens.DigitalOcean)

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
	quietLog(t)
	c, s := scripted(t, is("POST", "/v2/reserved_ips/203.0.113.10/actions"),
		reply{422, "error_422_pending.json", nil},
		reply{422, "error_422_pending.json", nil})
	d := droplet(t, c, "app")
	if err := c.AssignIP(context.Background(), "203.0.113.10", d.ID); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.lab.Machines.ByName("app"); s.count() != 3 || s.lab.Machines.Holder("203.0.113.10") != m.ID {
		t.Errorf("%d assign requests, holder %q", s.count(), s.lab.Machines.Holder("203.0.113.10"))
	}
}

func TestUnprocessableIsNotRetried(t *testing.T) {
	c, s := scripted(t, is("POST", "/v2/droplets"), reply{422, "error_422_name.json", nil})
	_, err := c.Create(context.Background(), CreateRequest{Names: []string{"app"}, Region: "r", Size: "s", Image: "7"})
	checkErr(t, err, s.lab.Tokens.DigitalOcean, "digitalocean.create app: POST", "422 Only valid hostname characters are allowed.")
	if s.count() != 1 || s.lab.Machines.Starts() != 0 {
		t.Errorf("%d POSTs, %d machines", s.count(), s.lab.Machines.Starts())
	}
}

func TestGivesUpAfterAttempts(t *testing.T) {
	quietLog(t)
	var replies []reply
	for range 10 {
		replies = append(replies, reply{429, "error_429.json", nil})
	}
	c, s := scripted(t, every, replies...)
	_, err := c.Droplets(context.Background(), "")
	checkErr(t, err, s.lab.Tokens.DigitalOcean, "429 API Rate limit exceeded.", "giving up after 4 attempts")
	if s.count() != 4 {
		t.Errorf("%d requests, want 4", s.count())
	}
}

func TestRetryWaitEndsWithContext(t *testing.T) {
	c, _ := scripted(t, every, reply{503, "error_500.json", map[string]string{"Retry-After": "60"}})
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
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A misbehaving server that echoes the credentials it got.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		w.Write([]byte(`{"id":"bad_request","message":"bad header ` + r.Header.Get("Authorization") + `"}`))
	}))
	t.Cleanup(hs.Close)
	c := testClient(t, hs.URL, token)
	_, err := c.Droplets(context.Background(), "")
	checkErr(t, err, token, "[redacted]")
	_, err = c.Create(context.Background(), CreateRequest{Names: []string{"a"}, Region: "r", Size: "s", Image: "7"})
	checkErr(t, err, token, "digitalocean.create a")
	checkErr(t, c.AssignIP(context.Background(), "203.0.113.10", 1), token, "digitalocean.assign_ip")
	checkErr(t, c.Delete(context.Background(), 1), token, "digitalocean.delete 1")
}
