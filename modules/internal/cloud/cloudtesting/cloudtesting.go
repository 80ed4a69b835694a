// Package cloudtesting holds the test helpers of orch's cloud provider
// modules: a lab cloud with recorded API error bodies in front of it, error
// checks that keep the token out, and host key checks. Only tests import it.
package cloudtesting

import (
	"bytes"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"gopkg.in/yaml.v3"

	"github.com/orch-dev/orch/lab/cloud/cloudtest"
)

// Reply is a canned API answer whose body is a recorded error body.
type Reply struct {
	Status int
	File   string // in the testing package's testdata/
	Header map[string]string
	// Lost makes the lab cloud handle the request all the same, but its
	// answer is lost and this one sent instead: a create that went through
	// and answered an error.
	Lost bool
}

// Script answers requests that match with its replies, in order, and hands
// everything else (and matching requests once the replies run out) to the
// lab cloud, which answers in the real API's shapes.
type Script struct {
	Lab *cloudtest.Lab
	URL string // where the script serves

	contentType string
	match       func(*http.Request) bool
	mu          sync.Mutex
	replies     []Reply
	matched     int // matching requests seen, canned or not
}

// Serve puts a script in front of lab until the test ends. Its replies are
// sent with contentType, the one the provider's API sends its errors with.
func Serve(t testing.TB, lab *cloudtest.Lab, contentType string, match func(*http.Request) bool, replies ...Reply) *Script {
	t.Helper()
	s := &Script{Lab: lab, contentType: contentType, match: match, replies: replies}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

func (s *Script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var rep *Reply
	if s.match(r) {
		s.matched++
		if len(s.replies) > 0 {
			rep = &s.replies[0]
			s.replies = s.replies[1:]
		}
	}
	s.mu.Unlock()
	if rep == nil {
		s.Lab.Server.ServeHTTP(w, r)
		return
	}
	if rep.Lost {
		s.Lab.Server.ServeHTTP(httptest.NewRecorder(), r)
	}
	body, err := os.ReadFile(filepath.Join("testdata", rep.File))
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", s.contentType)
	for k, v := range rep.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.Status)
	w.Write(body)
}

// Count is the number of matching requests seen, canned or not.
func (s *Script) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.matched
}

// Is matches requests with method and path.
func Is(method, path string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method && r.URL.Path == path }
}

// Every matches every request.
func Every(*http.Request) bool { return true }

// EchoServer is a misbehaving API, serving until the test ends, that
// answers every request 400 with bodyFormat, its %s filled in with the
// credentials the request came with. It returns the server's URL.
func EchoServer(t testing.TB, bodyFormat string) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprintf(w, bodyFormat, r.Header.Get("Authorization"))
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

// CheckErr fails unless err is an error that says want and keeps the token out.
func CheckErr(t testing.TB, err error, token string, want ...string) {
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

// QuietLog fails the test if anything reaches the standard logger.
func QuietLog(t testing.TB) {
	var buf bytes.Buffer
	log.SetOutput(&buf)
	t.Cleanup(func() {
		log.SetOutput(os.Stderr)
		if buf.Len() > 0 {
			t.Errorf("the library logged: %s", buf.String())
		}
	})
}

// CloudConfig decodes user data into v the way cloud-init reads it, and
// fails the test unless it is a #cloud-config document.
func CloudConfig(t testing.TB, userData []byte, v any) {
	t.Helper()
	if !strings.HasPrefix(string(userData), "#cloud-config\n") {
		t.Fatalf("user data is not cloud-config: %q", userData)
	}
	if err := yaml.Unmarshal(userData, v); err != nil {
		t.Fatal(err)
	}
}

// HostKeyCallback verifies host keys strictly against a known_hosts file
// that holds line alone.
func HostKeyCallback(t testing.TB, line string) ssh.HostKeyCallback {
	t.Helper()
	path := t.TempDir() + "/known_hosts"
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cb, err := knownhosts.New(path)
	if err != nil {
		t.Fatal(err)
	}
	return cb
}
