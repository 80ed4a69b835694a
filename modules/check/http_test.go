package check

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/testkit/proctest"
	"github.com/orch-dev/orch/testkit/require"
)

func httpCheck(url string, status int, contains *string) *httpCall {
	return &httpCall{URL: url, Status: status, Contains: contains, Tries: 3, Interval: time.Millisecond}
}

func ptr(s string) *string { return &s }

func TestHTTPPassFailAndRedirects(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/":
			if r.Host == "test" {
				fmt.Fprint(w, "hello from green\n")
				return
			}
			fmt.Fprint(w, "hello from blue\n")
		case "/old":
			http.Redirect(w, r, "/", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	var rec recorder
	res, err := run(t, context.Background(), httpCheck(srv.URL+"/", 200, ptr("blue")), rec.env(false))
	if err != nil {
		t.Fatal(err)
	}
	if res["tries"] != 1 || res["status"] != 200 || rec.statuses() != "1:ok" || rec.last().Target != srv.URL+"/" {
		t.Fatalf("result %v, events %s (%+v)", res, rec.statuses(), rec.last())
	}

	// Redirects are answers of their own, not followed.
	requests.Store(0)
	if _, err := run(t, context.Background(), httpCheck(srv.URL+"/old", 302, nil), rec.env(false)); err != nil {
		t.Fatal(err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests for a redirect, want 1 (not followed)", n)
	}

	rec = recorder{}
	_, err = run(t, context.Background(), httpCheck(srv.URL+"/", 200, ptr("green")), rec.env(false))
	wantErr(t, err, "GET "+srv.URL+`/: failed after 3 tries: want status 200 and a body containing "green", got status 200 and body "hello from blue\n"`)
	if rec.statuses() != "1:failed 2:failed 3:failed" {
		t.Errorf("events %s", rec.statuses())
	}

	// host= sends that Host header: the name-routed backend answers.
	named := httpCheck(srv.URL+"/", 200, ptr("green"))
	named.Host = "test"
	if _, err := run(t, context.Background(), named, rec.env(false)); err != nil {
		t.Errorf("with Host test: %v", err)
	}
	named.Contains = ptr("blue")
	_, err = run(t, context.Background(), named, rec.env(false))
	wantErr(t, err, "GET "+srv.URL+"/ (Host: test): failed after 3 tries")

	_, err = run(t, context.Background(), httpCheck(srv.URL+"/missing", 200, nil), rec.env(false))
	wantErr(t, err, `want status 200, got status 404 and body "404 page not found\n"`)

	closed := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))) + "/"
	_, err = run(t, context.Background(), httpCheck(closed, 200, nil), rec.env(false))
	wantErr(t, err, "want status 200, got no response:", "connection refused")
}

func TestHTTPRetriesUntilTheServerIsReady(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	var rec recorder
	rec.on = func(tr modules.CheckTry) {
		if tr.Try == 2 {
			ready.Store(true)
		}
	}
	c := httpCheck(srv.URL, 200, ptr("ok"))
	c.Tries = 5
	res, err := run(t, context.Background(), c, rec.env(false))
	if err != nil {
		t.Fatal(err)
	}
	if res["tries"] != 3 || rec.statuses() != "1:failed 2:failed 3:ok" {
		t.Fatalf("tries = %v, events %s", res["tries"], rec.statuses())
	}
	if msg := rec.tries[0].Msg; msg != `want status 200 and a body containing "ok", got status 503 and body "starting\n"` {
		t.Errorf("first try's message = %q", msg)
	}
}

// TestHTTPAgainstNginx checks a real nginx, started on a high port with a
// prefix of its own.
func TestHTTPAgainstNginx(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		require.Missing(t, "nginx is not installed (apt-get install nginx)")
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`user root;
daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/tmp; proxy_temp_path %[1]s/tmp; fastcgi_temp_path %[1]s/tmp;
	uwsgi_temp_path %[1]s/tmp; scgi_temp_path %[1]s/tmp;
	server {
		listen 127.0.0.1:%[2]d;
		root %[1]s/www;
	}
}
`, dir, port)
	for name, content := range map[string]string{"nginx.conf": conf, "www/index.html": "<h1>green</h1>\n"} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	var log proctest.Output
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	// nginx takes a moment to listen: the check's own retries cover that.
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var rec recorder
	c := httpCheck(url, 200, ptr("<h1>green</h1>"))
	c.Tries, c.Interval = 50, 100*time.Millisecond
	if _, err := run(t, context.Background(), c, rec.env(false)); err != nil {
		t.Fatalf("%v\nnginx: %s", err, log.String())
	}
	rec = recorder{}
	_, err = run(t, context.Background(), httpCheck(url+"missing.html", 200, nil), rec.env(false))
	wantErr(t, err, "want status 200, got status 404 and body", "nginx")
	if rec.statuses() != "1:failed 2:failed 3:failed" || !strings.Contains(rec.last().Msg, "404") {
		t.Errorf("events %s (%q)", rec.statuses(), rec.last().Msg)
	}
}
