package nginx

import (
	"fmt"
	"strings"
	"testing"

	"github.com/orch-dev/orch/testkit/localrun"
	"github.com/orch-dev/orch/testkit/moduletest"
	"github.com/orch-dev/orch/testkit/traffic"
)

// httpFiles is an nginx whose upstream file sits two includes deep:
// nginx.conf includes http.d/*.conf, site.conf there includes
// upstreams/*.conf, where app.conf has the upstream.
func httpFiles(port int, servers ...string) map[string]string {
	var up strings.Builder
	up.WriteString("upstream app {\n")
	for _, s := range servers {
		fmt.Fprintf(&up, "\tserver %s;\n", s)
	}
	up.WriteString("}\n")
	return map[string]string{
		"nginx.conf": `pid DIR/nginx.pid;
error_log DIR/error.log;
worker_processes 1;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path DIR/tmp;
    proxy_temp_path DIR/tmp;
    include http.d/*.conf;
}
`,
		"http.d/site.conf": fmt.Sprintf(`include DIR/upstreams/*.conf;
server {
    listen 127.0.0.1:%d;
    location / { proxy_pass http://app; }
}
`, port),
		"upstreams/app.conf":   up.String(),
		"upstreams/other.conf": "upstream other { server 127.0.0.1:9; }\n",
	}
}

func upstreamPlan(s *server, servers ...string) string {
	return fmt.Sprintf(`
def role(h):
    nginx.upstream(name = "app", servers = %s, path = %q, conf = %q)

def main(ctx):
    ctx.apply("all", role)
`, starList(servers), s.dir+"/upstreams/app.conf", s.conf)
}

func starList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// TestHTTPBlueGreen switches an http upstream from blue to green under a
// client loop: 0 failed requests, one graceful reload, green answers, a
// rerun changes nothing in one exchange; check mode changed nothing.
func TestHTTPBlueGreen(t *testing.T) {
	blue, green := httpBackend(t, "blue"), httpBackend(t, "green")
	port := freePort(t)
	s := startNginx(t, httpFiles(port, blue))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	clients := traffic.Start(t, 4, func() (string, error) { return traffic.HTTPGet(url) })
	traffic.WaitFor(t, "blue to answer", func() bool { return clients.Count("blue") > 20 })

	before := s.read("upstreams/app.conf")
	if sum, _ := localrun.MustRun(t, upstreamPlan(s, green), true); sum.TasksChanged != 2 || sum.Exchanges != 1 {
		t.Fatalf("check run: %+v; want the task and its reload, in 1 exchange", sum)
	}
	if s.read("upstreams/app.conf") != before || len(s.leftovers()) != 0 {
		t.Fatalf("check mode changed something: %q, %v", s.read("upstreams/app.conf"), s.leftovers())
	}

	sum, events := localrun.MustRun(t, upstreamPlan(s, green), false)
	if sum.TasksChanged != 2 || sum.Exchanges != 2 {
		t.Fatalf("switch: %+v; want the task and one reload, in 2 exchanges%s", sum, localrun.Tasks(events))
	}
	traffic.WaitFor(t, "green to answer", func() bool { return clients.Count("green") > 20 })
	clients.Stop()
	if n := clients.Failed(); n != 0 {
		t.Fatalf("%d of %d requests failed; last: %s", n, clients.Sent(), clients.LastError())
	}
	t.Logf("%d requests, 0 failed, answered by %v", clients.Sent(), clients.Seen())
	want := "# managed by orch (nginx.upstream, http): changes here are overwritten\nupstream app {\n\tserver " + green + ";\n}\n"
	if got := s.read("upstreams/app.conf"); got != want {
		t.Fatalf("upstream file:\n%s\nwant:\n%s", got, want)
	}
	if left := s.leftovers(); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if sum, events := localrun.MustRun(t, upstreamPlan(s, green), false); sum.TasksChanged != 0 || sum.Exchanges != 1 {
		t.Fatalf("rerun: %+v; want nothing changed, in 1 exchange%s", sum, localrun.Tasks(events))
	}
}

// TestInvalidUpstreamRejected tries two upstreams that nginx rejects only
// as part of the whole configuration (a name no resolver knows; a second
// "upstream other", which the other include defines): each run fails with
// nginx's message naming the live file, the live file and the traffic
// are untouched, and no temporary file is left.
func TestInvalidUpstreamRejected(t *testing.T) {
	blue := httpBackend(t, "blue")
	port := freePort(t)
	s := startNginx(t, httpFiles(port, blue))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	clients := traffic.Start(t, 2, func() (string, error) { return traffic.HTTPGet(url) })
	traffic.WaitFor(t, "blue to answer", func() bool { return clients.Count("blue") > 10 })
	before := s.read("upstreams/app.conf")

	for _, c := range []struct{ name, server, want string }{
		{"app", "no-such-host.invalid:80", `host not found in upstream "no-such-host.invalid:80" in ` + s.dir + "/upstreams/app.conf:3"},
		{"other", "127.0.0.1:10", `duplicate upstream "other" in ` + s.dir + "/upstreams/other.conf:1"},
	} {
		src := fmt.Sprintf(`
def role(h):
    nginx.upstream(name = %q, servers = [%q], path = %q, conf = %q)

def main(ctx):
    ctx.apply("all", role)
`, c.name, c.server, s.dir+"/upstreams/app.conf", s.conf)
		_, events, err := localrun.Run(t, src, false)
		if err == nil || !strings.Contains(err.Error(), "nginx -t rejected the configuration with the new "+s.dir+"/upstreams/app.conf") || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: run error = %v; want nginx's message %q%s", c.server, err, c.want, localrun.Tasks(events))
		}
		if got := s.read("upstreams/app.conf"); got != before {
			t.Fatalf("%s: the live file changed:\n%s", c.server, got)
		}
		if left := s.leftovers(); len(left) != 0 {
			t.Fatalf("%s: temporary files left: %v", c.server, left)
		}
		for _, e := range events {
			if e.Task == "handler: reload nginx" {
				t.Fatalf("%s: nginx was reloaded after a rejected change", c.server)
			}
		}
	}
	n := clients.Count("blue")
	traffic.WaitFor(t, "more answers from blue", func() bool { return clients.Count("blue") > n+10 })
	clients.Stop()
	if f := clients.Failed(); f != 0 {
		t.Fatalf("%d requests failed; last: %s", f, clients.LastError())
	}
}

// TestNotIncluded refuses a path that conf never includes.
func TestNotIncluded(t *testing.T) {
	s := startNginx(t, httpFiles(freePort(t), "127.0.0.1:9"))
	src := fmt.Sprintf(`
def role(h):
    nginx.upstream(name = "x", servers = ["127.0.0.1:9"], path = %q, conf = %q)

def main(ctx):
    ctx.apply("all", role)
`, s.dir+"/elsewhere/x.conf", s.conf)
	_, _, err := localrun.Run(t, src, false)
	if err == nil || !strings.Contains(err.Error(), s.dir+"/elsewhere/x.conf is not included from "+s.conf) {
		t.Fatalf("run error = %v", err)
	}
}

// TestApplyTwice proves the module contract with testkit/moduletest, and
// that --diff shows the change.
func TestApplyTwice(t *testing.T) {
	s := startNginx(t, httpFiles(freePort(t), "127.0.0.1:9"))
	u := &Upstream{Name: "app", Servers: []string{"127.0.0.1:10 weight=2", "127.0.0.1:11 backup"}, Path: s.dir + "/upstreams/app.conf", Conf: s.conf}
	moduletest.Validate(t, u, nil)
	resp := moduletest.Check(t, u, true)
	if !resp.Changed || !strings.Contains(resp.Diff, "-\tserver 127.0.0.1:9;\n+\tserver 127.0.0.1:10 weight=2;\n+\tserver 127.0.0.1:11 backup;\n") {
		t.Fatalf("check: %q\n%s", resp.Reason, resp.Diff)
	}
	moduletest.ApplyTwice(t, u)
	if !strings.Contains(s.read("upstreams/app.conf"), "server 127.0.0.1:11 backup;") {
		t.Fatalf("file: %s", s.read("upstreams/app.conf"))
	}
}
