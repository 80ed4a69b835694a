package nginx

import (
	"strings"
	"testing"
)

// TestPlanTest rewrites the include path from conf to the target in
// nginx -T's files: a glob that matches the target is expanded as nginx
// would (with the target when it does not exist yet), literal includes
// of files on the path point at their copies, and files off the path are
// left alone.
func TestPlanTest(t *testing.T) {
	dump := []file{
		{"/etc/nginx/nginx.conf", "events {}\nhttp {\n    include mime.types;\n    include sites/*.conf;\n}\nstream { include /etc/nginx/stream.d/*.conf; }"},
		{"/etc/nginx/mime.types", "types {}"},
		{"/etc/nginx/sites/a.conf", "include /etc/nginx/up/dns.conf;\nserver {}"},
		{"/etc/nginx/sites/b.conf", "server {}"},
		{"/etc/nginx/up/dns.conf", "upstream dns { server 10.0.0.1:53; }"},
		{"/etc/nginx/stream.d/x.conf", "upstream x { server 10.0.0.9:53; }"},
	}
	tp, err := planTest(dump, "/etc/nginx/nginx.conf", "/etc/nginx/up/dns.conf", ".N")
	if err != nil {
		t.Fatal(err)
	}
	if tp.newFile != "/etc/nginx/up/.orch.dns.conf.N" || len(tp.copies) != 2 {
		t.Fatalf("plan: %+v", tp)
	}
	main, site := tp.copies[0], tp.copies[1]
	if main.path != "/etc/nginx/.orch-test.nginx.conf.N" ||
		!strings.Contains(main.content, "    include mime.types;\n    include /etc/nginx/sites/.orch-test.a.conf.N; include /etc/nginx/sites/b.conf;\n") ||
		!strings.Contains(main.content, "stream { include /etc/nginx/stream.d/*.conf; }") {
		t.Errorf("conf's copy %s:\n%s", main.path, main.content)
	}
	if site.path != "/etc/nginx/sites/.orch-test.a.conf.N" || site.content != "include /etc/nginx/up/.orch.dns.conf.N;\nserver {}\n" {
		t.Errorf("a.conf's copy %s:\n%s", site.path, site.content)
	}

	// A new file in a globbed folder joins the glob's matches in order.
	tp, err = planTest(dump, "/etc/nginx/nginx.conf", "/etc/nginx/stream.d/dns.conf", ".N")
	if err != nil {
		t.Fatal(err)
	}
	if len(tp.copies) != 1 || !strings.Contains(tp.copies[0].content, "stream { include /etc/nginx/stream.d/.orch.dns.conf.N; include /etc/nginx/stream.d/x.conf; }") {
		t.Errorf("new file in a glob: %+v", tp.copies)
	}

	if _, err := planTest(dump, "/etc/nginx/nginx.conf", "/etc/nginx/elsewhere.conf", ".N"); err == nil || !strings.Contains(err.Error(), "is not included from /etc/nginx/nginx.conf") {
		t.Errorf("not included: %v", err)
	}
}

// TestParseProbe reads a probe whose nginx -T failed: conf alone is used,
// and nginx's message is kept.
func TestParseProbe(t *testing.T) {
	out := "#dump\nnginx: [emerg] open() \"/etc/nginx/up/dns.conf\" failed (2: No such file or directory)\n#rc 1\n#conf\ninclude /etc/nginx/up/dns.conf;\n"
	p, err := parseProbe([]byte(out), "/etc/nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.dump) != 1 || p.dump[0].content != "include /etc/nginx/up/dns.conf;" || !strings.Contains(p.dumpErr, "open()") || p.old != nil {
		t.Fatalf("%+v", p)
	}
	tp, err := planTest(p.dump, "/etc/nginx/nginx.conf", "/etc/nginx/up/dns.conf", ".N")
	if err != nil || tp.copies[0].content != "include /etc/nginx/up/.orch.dns.conf.N;\n" {
		t.Fatalf("%+v %v", tp, err)
	}
}

func TestValidateUpstream(t *testing.T) {
	for _, c := range []struct {
		u    Upstream
		want string
	}{
		{Upstream{Name: "dns", Servers: []string{"10.0.0.1:53; server evil"}, Conf: "/etc/nginx/nginx.conf"}, "is not an nginx server line"},
		{Upstream{Name: "dns", Servers: []string{"10.0.0.1:53 }"}, Conf: "/etc/nginx/nginx.conf"}, "is not an nginx server line"},
		{Upstream{Name: "dns x", Servers: []string{"10.0.0.1:53"}, Conf: "/etc/nginx/nginx.conf"}, `name "dns x"`},
		{Upstream{Name: "dns", Conf: "/etc/nginx/nginx.conf"}, "servers is empty"},
		{Upstream{Name: "dns", Servers: []string{"a:1"}, Path: "/etc/nginx/nginx.conf", Conf: "/etc/nginx/nginx.conf"}, "path is conf"},
		{Upstream{Name: "dns", Servers: []string{"a:1"}, Path: "rel.conf", Conf: "/etc/nginx/nginx.conf"}, `path "rel.conf"`},
	} {
		if err := c.u.Validate(nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.u, err, c.want)
		}
	}
	u := Upstream{Name: "dns", Servers: []string{"10.0.0.1:53 weight=2 max_fails=3", "[2001:db8::1]:53 backup"}, Stream: true, Conf: "/etc/nginx/nginx.conf"}
	if err := u.Validate(nil); err != nil || u.Path != "/etc/nginx/stream.d/dns.conf" ||
		string(u.content) != "# managed by orch (nginx.upstream, stream): changes here are overwritten\nupstream dns {\n\tserver 10.0.0.1:53 weight=2 max_fails=3;\n\tserver [2001:db8::1]:53 backup;\n}\n" {
		t.Fatalf("%v %s\n%s", err, u.Path, u.content)
	}
}
