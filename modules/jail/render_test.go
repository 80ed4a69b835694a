package jail

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRender shows the config for every kind of value.
func TestRender(t *testing.T) {
	j := &Jail{Name: "www", Path: "/jails/www", IP: []any{"192.0.2.10", "vtnet0|192.0.2.11/24", "2001:db8::1"}, State: "running",
		Params: map[string]any{"host.hostname": "www.example.test", "persist": true, "allow.mount": false, "mount.devfs": true,
			"devfs_ruleset": 4, "exec.start": []any{"/bin/sh /etc/rc", "echo up"}, "exec.stop": "/bin/sh /etc/rc.shutdown"}}
	if err := j.Validate(nil); err != nil {
		t.Fatal(err)
	}
	want := `# Managed by orch (jail www): changes made here are overwritten.
www {
	path = "/jails/www";
	ip4.addr = "192.0.2.10", "vtnet0|192.0.2.11/24";
	ip6.addr = "2001:db8::1";
	allow.nomount;
	devfs_ruleset = 4;
	exec.start = "/bin/sh /etc/rc", "echo up";
	exec.stop = "/bin/sh /etc/rc.shutdown";
	host.hostname = "www.example.test";
	mount.devfs;
	persist;
}
`
	if got := string(j.Conf()); got != want {
		t.Errorf("rendered\n%s\nwant\n%s", got, want)
	}
}

// TestRenderParses reads rendered configs back with the stand-in host's
// jail.conf parser (lab/standin, after usr.sbin/jail/jaillex.l and
// jailparse.y): quotes, backslashes, dollars (no variable expansion),
// newlines and tabs come back as they went in.
func TestRenderParses(t *testing.T) {
	awk, err := exec.LookPath("awk")
	if err != nil {
		t.Fatal("awk is part of every POSIX system: ", err)
	}
	tricky := "say \"hi\" $HOME ${name} \\ back\\slash\n\tnext 'single'"
	j := &Jail{Name: "w_1-x", Path: "/jails/w 1", State: "running",
		Params: map[string]any{"exec.start": tricky, "host.hostname": "$name", "persist": true, "allow.raw_sockets": false}}
	if err := j.Validate(nil); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "w_1-x.conf")
	if err := os.WriteFile(file, j.Conf(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(awk, "-v", "mode=params", "-v", "target=w_1-x", "-f",
		filepath.Join("..", "..", "lab", "standin", "root", "usr", "libexec", "standin", "jailconf.awk"), file).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s\n%s", err, out, j.Conf())
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		k, v, _ := strings.Cut(l, "\t")
		got[k] = strings.ReplaceAll(v, "\036", "\n") // the parser's newline marker
	}
	want := map[string]string{"name": "w_1-x", "path": "/jails/w 1", "exec.start": tricky, "host.hostname": "$name",
		"persist": "true", "allow.raw_sockets": "false"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: parsed %q, want %q (all: %q)", k, got[k], v, got)
		}
	}
}

// TestValidateErrors names the argument at fault.
func TestValidateErrors(t *testing.T) {
	for _, c := range []struct {
		j    Jail
		want string
	}{
		{Jail{Name: "a.b", Path: "/j"}, `name "a.b" is not a jail name`},
		{Jail{Name: "12", Path: "/j"}, `name "12" is only digits`},
		{Jail{Name: "w", Path: "j"}, `path "j" is not a clean absolute path`},
		{Jail{Name: "w", Path: "/j/../k"}, `path "/j/../k" is not a clean absolute path`},
		{Jail{Name: "w", Path: "/j", State: "up"}, `state "up" is not one of running, stopped, absent`},
		{Jail{Name: "w", Path: "/j", IP: "300.1.1.1"}, `ip "300.1.1.1": not an IPv4 or IPv6 address`},
		{Jail{Name: "w", Path: "/j", IP: []any{"192.0.2.1", 5}}, `ip: want a string or a list of strings`},
		{Jail{Name: "w", Path: "/j", IP: "192.0.2.1/33"}, `ip "192.0.2.1/33": /33 is not a prefix length`},
		{Jail{Name: "w", Path: "/j", Params: map[string]any{"path": "/x"}}, `params["path"]: set it with the path argument`},
		{Jail{Name: "w", Path: "/j", Params: map[string]any{"ip4.addr": "192.0.2.1"}}, `params["ip4.addr"]: set it with the ip argument`},
		{Jail{Name: "w", Path: "/j", Params: map[string]any{"Host Name": "x"}}, `params: "Host Name" is not a jail parameter name`},
		{Jail{Name: "w", Path: "/j", Params: map[string]any{"exec.start": []any{}}}, `params["exec.start"]: an empty list sets nothing`},
		{Jail{Name: "w", Path: "/j", Params: map[string]any{"x": map[string]any{}}}, `params["x"]: want a string, number, bool or list`},
	} {
		j := c.j
		if j.State == "" {
			j.State = "running"
		}
		err := j.Validate(nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.j, err, c.want)
		}
	}
}
