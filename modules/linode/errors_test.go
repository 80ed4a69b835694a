package linode

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orch-dev/orch/lab/cloud/cloudtest"
)

// reply is a canned API answer whose body is a recorded Linode error body.
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
	w.Header().Set("Content-Type", "application/json")
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
	return testClient(t, hs.URL, s.lab.Tokens.Linode), s
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

func TestUnauthorizedIsNotRetried(t *testing.T) {
	quietLog(t)
	c, s := scripted(t, every, reply{401, "error_401.json", nil})
	_, err := c.Instances(context.Background(), "dns", "")
	checkErr(t, err, s.lab.Tokens.Linode, "linode.instances", "[401] Invalid Token")
	if s.count() != 1 {
		t.Errorf("%d requests, want 1", s.count())
	}

	// A real 401 from the lab cloud, with a wrong token.
	lab := cloudtest.Start(t, nil)
	bad := testClient(t, lab.URL, "wrong-token-s3cr3t")
	_, err = bad.Create(context.Background(), CreateRequest{Labels: []string{"a"}, Region: "r", Type: "t", Image: "i"})
	checkErr(t, err, "wrong-token-s3cr3t", "Invalid Token")
}

func TestNotFound(t *testing.T) {
	c, s := scripted(t, is("GET", "/v4/linode/instances/42"), reply{404, "error_404.json", nil})
	_, err := c.Rename(context.Background(), 42, "ns1")
	checkErr(t, err, s.lab.Tokens.Linode, "linode.rename 42 to ns1", "[404] Not found")
	if s.count() != 1 {
		t.Errorf("%d requests, want 1", s.count())
	}

	c, _ = scripted(t, is("DELETE", "/v4/linode/instances/42"), reply{404, "error_404.json", nil})
	if err := c.Delete(context.Background(), 42); err != nil {
		t.Errorf("deleting a deleted instance: %v", err)
	}
}

func TestTooManyRequestsThenSuccess(t *testing.T) {
	quietLog(t)
	c, s := scripted(t, is("GET", "/v4/linode/instances"),
		reply{429, "error_429.json", map[string]string{"Retry-After": "0"}},
		reply{429, "error_429.json", nil})
	got, err := c.Instances(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || s.count() != 3 {
		t.Errorf("got %v after %d requests, want 3 requests", got, s.count())
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	c, _ := scripted(t, is("GET", "/v4/linode/instances"), reply{429, "error_429.json", map[string]string{"Retry-After": "1"}})
	start := time.Now()
	if _, err := c.Instances(context.Background(), "", ""); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("retried after %v, Retry-After said 1s", waited)
	}
}

func TestServerErrorsThenSuccessCreateOnce(t *testing.T) {
	quietLog(t)
	c, s := scripted(t, is("POST", "/v4/linode/instances"),
		reply{500, "error_500.json", nil},
		reply{503, "error_500.json", nil})
	got, err := c.Create(context.Background(), CreateRequest{Labels: []string{"ns1"}, Region: "r", Type: "t", Image: "i"})
	if err != nil {
		t.Fatal(err)
	}
	if s.count() != 3 || s.lab.Machines.Starts() != 1 || !got[0].Created || got[0].Status != "running" {
		t.Errorf("%d POSTs, %d machines, %+v", s.count(), s.lab.Machines.Starts(), got)
	}
}

// A create that went through but answered 500 is replayed; the replay finds
// the label taken, and Create adopts the instance with the key it sent.
func TestReplayedCreateAdoptsTheInstance(t *testing.T) {
	lab := cloudtest.Start(t, nil)
	var mu sync.Mutex
	failed := false
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := r.Method == "POST" && !failed
		failed = failed || fail
		mu.Unlock()
		if fail {
			lab.Server.ServeHTTP(httptest.NewRecorder(), r) // the create happens...
			body, _ := os.ReadFile("testdata/error_500.json")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(500) // ...but the answer is lost
			w.Write(body)
			return
		}
		lab.Server.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	c := testClient(t, hs.URL, lab.Tokens.Linode)

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
	quietLog(t)
	lab := cloudtest.Start(t, nil)
	c := testClient(t, lab.URL, lab.Tokens.Linode)
	in, err := c.Create(context.Background(), CreateRequest{Labels: []string{"ns1-next"}, Region: "r", Type: "t", Image: "i"})
	if err != nil {
		t.Fatal(err)
	}
	path := "/v4/linode/instances/" + strconv.Itoa(in[0].ID)
	s := &script{lab: lab, match: is("PUT", path), replies: []reply{{400, "error_400_busy.json", nil}, {400, "error_400_busy.json", nil}}}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	c = testClient(t, hs.URL, lab.Tokens.Linode)
	got, err := c.Rename(context.Background(), in[0].ID, "ns1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Label != "ns1" || s.count() != 3 {
		t.Errorf("%+v after %d PUTs", got, s.count())
	}
}

func TestValidationErrorIsNotRetried(t *testing.T) {
	c, s := scripted(t, is("POST", "/v4/linode/instances"), reply{400, "error_400_type.json", nil})
	_, err := c.Create(context.Background(), CreateRequest{Labels: []string{"ns1"}, Region: "us-east", Type: "g9-huge", Image: "i"})
	checkErr(t, err, s.lab.Tokens.Linode, "linode.create ns1: [400] [type] A valid plan type by that ID was not found")
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
	_, err := c.Instances(context.Background(), "", "")
	checkErr(t, err, s.lab.Tokens.Linode, "429 Too Many Requests", "giving up after 4 attempts")
	if s.count() != 4 {
		t.Errorf("%d requests, want 4", s.count())
	}
}

func TestRetryWaitEndsWithContext(t *testing.T) {
	c, _ := scripted(t, every, reply{503, "error_500.json", map[string]string{"Retry-After": "60"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Instances(ctx, "", "")
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestTokenNeverShown(t *testing.T) {
	token := "tok-very-secret-0123"
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A misbehaving server that echoes the credentials it got.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		w.Write([]byte(`{"errors":[{"reason":"bad header ` + r.Header.Get("Authorization") + `"}]}`))
	}))
	t.Cleanup(hs.Close)
	c := testClient(t, hs.URL, token)
	_, err := c.Instances(context.Background(), "", "")
	checkErr(t, err, token, "[redacted]")
	_, err = c.Create(context.Background(), CreateRequest{Labels: []string{"a"}, Region: "r", Type: "t", Image: "i"})
	checkErr(t, err, token, "linode.create")
	checkErr(t, c.Delete(context.Background(), 1), token, "linode.delete 1")
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
	rt := &retryTransport{base: http.DefaultTransport, attempts: 3, delay: time.Millisecond, maxDelay: time.Millisecond}
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
