package standin_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/orch-dev/orch/internal/freebsd"
	"github.com/orch-dev/orch/testkit/fixture"
)

// The recorded outputs use 192.0.2.10 for the jail www; the stand-in's
// jail has an address of the test network instead.
const fixtureIP = "192.0.2.10"

var pids = regexp.MustCompile(`(pid=|pid |PIDS: )[0-9]+`)

// replay runs a fixture's own command line (with the jail's address) on
// the host and checks that stdout, stderr and the exit status are the
// recorded ones. subs replace recorded values by the stand-in's, in order
// (a padded form before the plain one keeps columns aligned).
func (h *testHost) replay(t *testing.T, name string, subs ...string) result {
	t.Helper()
	fx := fixture.Load(t, "freebsd/"+name)
	r := strings.NewReplacer(subs...)
	got := h.run(r.Replace(fx.Command))
	want := result{r.Replace(fx.Output), r.Replace(fx.Stderr), fx.Exit}
	norm := func(s string) string { return pids.ReplaceAllString(s, "${1}N") }
	if norm(got.stdout) != norm(want.stdout) || norm(got.stderr) != norm(want.stderr) || got.exit != want.exit {
		t.Errorf("%s: %s\ngot  exit %d stdout %q stderr %q\nwant exit %d stdout %q stderr %q",
			name, r.Replace(fx.Command), got.exit, got.stdout, got.stderr, want.exit, want.stdout, want.stderr)
	}
	return got
}

// shape describes a JSON value by its keys and value kinds, not its values.
func shape(v any) string {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k, e := range v {
			keys = append(keys, k+":"+shape(e))
		}
		sort.Strings(keys)
		return "{" + strings.Join(keys, ",") + "}"
	case []any:
		if len(v) == 0 {
			return "[]"
		}
		return "[" + shape(v[0]) + "]"
	case float64:
		return "number"
	case string:
		return "string"
	case bool:
		return "bool"
	}
	return "null"
}

func jsonShape(t *testing.T, doc string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	return shape(v)
}

// TestRecordedFormats runs the stand-ins and compares what they print with
// the recorded FreeBSD outputs of testdata/freebsd, byte for byte where the
// values can be made the same, and parses both with the modules' parsers.
func TestRecordedFormats(t *testing.T) {
	h := startHost(t)
	ip := addr(h.subnet, 50)
	padded := []string{fmt.Sprintf("%-15s", fixtureIP), fmt.Sprintf("%-15s", ip), fixtureIP, ip}
	www := fmt.Sprintf("www {\n\tpath = \"/jails/www\";\n\thost.hostname = \"www.example.test\";\n\tip4.addr = %s;\n\tmount.devfs;\n\tpersist;\n}\n", ip)
	snap := h.Template()
	h.Must("zfs clone " + snap + " zroot/jails/www && mkdir -p /etc/jail.conf.d")

	t.Run("jail", func(t *testing.T) {
		h := h.with(t)
		h.Must("printf 'www { path = /jails/www }\\n' > /etc/jail.conf.d/www.conf")
		h.replay(t, "jail/syntax-error")
		h.Must("cat > /etc/jail.conf.d/www.conf <<'EOF'\n" + www + "EOF")
		h.replay(t, "jail/create-conf") // jid 1, as recorded
		h.replay(t, "jail/create-exists")
	})

	t.Run("jls", func(t *testing.T) {
		h := h.with(t)
		for _, name := range []string{"jls/default-json", "jls/verbose-json", "jls/params-json"} {
			got := h.replay(t, name, padded...)
			jails, err := freebsd.ParseJLS([]byte(got.stdout))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			fx := fixture.Load(t, "freebsd/"+name)
			if jsonShape(t, got.stdout) != jsonShape(t, fx.Output) {
				t.Errorf("%s: keys differ:\n%s\n%s", name, jsonShape(t, got.stdout), jsonShape(t, fx.Output))
			}
			want := strings.ReplaceAll(string(fx.Fact), fixtureIP, ip)
			gotFact, _ := json.Marshal(jails)
			var a, b any
			json.Unmarshal(gotFact, &a)
			json.Unmarshal([]byte(want), &b)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s: parsed %s, recorded fact %s", name, gotFact, want)
			}
		}
		h.replay(t, "jls/default-text", padded...)
		h.replay(t, "jls/verbose-text", padded...)
		h.replay(t, "jls/param-jid")
		h.replay(t, "jls/missing-json")

		// The transcript's jail object has the keys and kinds of ours.
		var doc struct {
			Info struct{ Jail []any } `json:"jail-information"`
		}
		json.Unmarshal([]byte(h.Must("jls -v --libxo json")), &doc)
		transcript := fixture.Load(t, "freebsd/jls/verbose-json-transcript")
		if len(doc.Info.Jail) != 1 {
			t.Fatalf("jls -v --libxo json: %d jails", len(doc.Info.Jail))
		}
		var tr any
		json.Unmarshal([]byte(transcript.Output), &tr)
		// The transcript's jail has an IPv6 address; ours has none.
		delete(tr.(map[string]any), "ipv6_addrs")
		delete(doc.Info.Jail[0].(map[string]any), "ipv6_addrs")
		if shape(doc.Info.Jail[0]) != shape(tr) {
			t.Errorf("jail object %s, transcript %s", shape(doc.Info.Jail[0]), shape(tr))
		}
	})

	t.Run("jexec", func(t *testing.T) {
		h := h.with(t)
		h.replay(t, "jexec/command")
		h.replay(t, "jexec/exit-status")
		h.replay(t, "jexec/missing")
		if got := h.Must("jexec www sysctl -n security.jail.jailed"); got != "1\n" {
			t.Errorf("security.jail.jailed in a jail: %q", got)
		}
	})

	t.Run("pkg in a jail", func(t *testing.T) {
		h := h.with(t)
		h.replay(t, "pkg/install-jailed")
	})

	t.Run("jail removal", func(t *testing.T) {
		h := h.with(t)
		h.replay(t, "jail/remove-conf")
		h.replay(t, "jail/remove-missing")
		h.replay(t, "jail/create-quiet")
		h.Must("jail -q -f /etc/jail.conf.d/www.conf -r www")
		h.Must("test ! -e /etc/jail.conf")
		h.replay(t, "jail/create-cmdline", padded...)
		h.replay(t, "jail/remove-noconf")
	})

	t.Run("sysrc", func(t *testing.T) {
		h := h.with(t)
		set := func(content string) {
			h.Must("sed -i '/^test_/d' /etc/rc.conf && printf '%s\\n' '" + content + "' >> /etc/rc.conf")
		}
		set(`test_enable="NO"`)
		h.replay(t, "sysrc/get")
		h.replay(t, "sysrc/check-same")
		h.replay(t, "sysrc/check-differs")
		h.replay(t, "sysrc/unknown")
		set(`test_enable="YES"`)
		h.replay(t, "sysrc/set-change")
		set(`test_enable="YES"`)
		h.replay(t, "sysrc/set-same")
		h.replay(t, "sysrc/remove")
		if got := h.run("grep -c '^test_enable=' /etc/rc.conf").stdout; got != "0\n" {
			t.Errorf("sysrc -x left test_enable in rc.conf: %q", got)
		}
		h.replay(t, "sysrc/set-new")
		set(`test_list="item1"`)
		h.replay(t, "sysrc/append")
		if got := h.Must("grep '^test_list=' /etc/rc.conf"); got != "test_list=\"item1 item2\"\n" {
			t.Errorf("rc.conf after +=: %q", got)
		}
		vars, err := freebsd.ParseSysrc([]byte(h.Must("sysrc test_list hostname")))
		if err != nil || vars["test_list"] != "item1 item2" || vars["hostname"] == "" {
			t.Errorf("sysrc get parsed to %v, %v", vars, err)
		}
	})

	t.Run("service", func(t *testing.T) {
		h := h.with(t)
		h.Must(`mkdir -p /usr/local/etc/rc.d && cat > /usr/local/etc/rc.d/nginx <<'EOF'
#!/bin/sh
# PROVIDE: nginx
. /etc/rc.subr
name=nginx
rcvar=nginx_enable
load_rc_config $name
: ${nginx_enable:="NO"}
command=/usr/sbin/nginx
pidfile=/var/run/nginx.pid
run_rc_command "$1"
EOF
chmod 755 /usr/local/etc/rc.d/nginx && sysrc nginx_enable=NO >/dev/null`)
		h.replay(t, "service/start-disabled")
		h.replay(t, "service/status-stopped")
		h.replay(t, "service/stop-not-running")
		h.replay(t, "service/enable")
		h.replay(t, "service/start")
		h.replay(t, "service/start-running")
		got := h.replay(t, "service/status-running")
		st, err := freebsd.ParseServiceStatus([]byte(got.stdout), got.exit)
		if err != nil || !st.Running || st.PID == 0 {
			t.Errorf("status parsed to %+v, %v", st, err)
		}
		// The wait line shows only when nginx outlives the signal a moment.
		stop := h.run("service nginx stop")
		if stop.exit != 0 || !regexp.MustCompile(`^Stopping nginx\.\n(Waiting for PIDS: [0-9]+\.\n)?$`).MatchString(stop.stdout) {
			t.Errorf("service nginx stop: exit %d %q", stop.exit, stop.stdout)
		}
		h.replay(t, "service/missing")
		enabled := h.Must("service -e")
		if !strings.Contains(enabled, "/usr/local/etc/rc.d/nginx\n") {
			t.Errorf("service -e: %q", enabled)
		}
		for _, line := range strings.Split(strings.TrimSpace(enabled), "\n") {
			if !strings.HasPrefix(line, "/etc/rc.d/") && !strings.HasPrefix(line, "/usr/local/etc/rc.d/") {
				t.Errorf("service -e line %q is not an rc.d script", line)
			}
		}
		h.Must("sysrc jail_enable=YES >/dev/null")
		h.replay(t, "service/jail-start")
		h.Must("service jail stop www && sysrc jail_enable=NO >/dev/null")
	})

	t.Run("pkg", func(t *testing.T) {
		h := h.with(t)
		h.replay(t, "pkg/info-missing")
		h.replay(t, "pkg/info-exists-missing")
		h.replay(t, "pkg/install-missing")
		h.replay(t, "pkg/install")
		h.replay(t, "pkg/install-installed")
		h.replay(t, "pkg/info-exists")
		h.Must("pkg install -y darkhttpd")
		got := h.replay(t, "pkg/info-all")
		if pkgs, err := freebsd.ParsePkgInfo([]byte(got.stdout)); err != nil || len(pkgs) != 2 {
			t.Errorf("pkg info parsed to %+v, %v", pkgs, err)
		}
		h.replay(t, "pkg/delete")
		if got := h.run("test -e /usr/local/bin/hello && echo left"); got.stdout != "" {
			t.Error("pkg delete left /usr/local/bin/hello")
		}
	})

	t.Run("bectl", func(t *testing.T) {
		h := h.with(t)
		h.replay(t, "bectl/create")
		h.replay(t, "bectl/create-exists")
		h.Must("bectl create current")
		h.replay(t, "bectl/activate-temporary")
		bes := h.bectlList(t)
		if !bes["current"].Temporary || !bes["default"].Active || !bes["default"].NextBoot {
			t.Errorf("after activate -t: %+v", bes)
		}
		fx := fixture.Load(t, "freebsd/bectl/list-transcript-temporary")
		if !strings.Contains(fx.Output, "current T -") {
			t.Fatal("the transcript does not show the T flag")
		}
		h.replay(t, "bectl/activate-remove-temporary")
		if h.bectlList(t)["current"].Temporary {
			t.Error("activate -T left the T flag")
		}
		h.replay(t, "bectl/activate")
		bes = h.bectlList(t)
		if !bes["new"].NextBoot || bes["default"].NextBoot || !bes["default"].Active {
			t.Errorf("after activate: %+v", bes)
		}
		if origin := h.Must("zfs get -H -o value origin zroot/ROOT/new"); origin != "-\n" {
			t.Errorf("activate left new a clone of %q (libbe promotes it)", origin)
		}
		h.replay(t, "bectl/activate-missing")
		h.replay(t, "bectl/destroy-active")
		h.replay(t, "bectl/destroy-missing")
		mount := h.run("bectl mount new")
		if mount.exit != 0 || !regexp.MustCompile(`^/tmp/be_mount\.[A-Za-z0-9]{4}\n$`).MatchString(mount.stdout) {
			t.Errorf("bectl mount new: exit %d %q %q", mount.exit, mount.stdout, mount.stderr)
		}
		if bes := h.bectlList(t); bes["new"].Mountpoint != strings.TrimSpace(mount.stdout) {
			t.Errorf("bectl list shows new mounted at %q, want %q", bes["new"].Mountpoint, mount.stdout)
		}
		h.Must("test -x " + strings.TrimSpace(mount.stdout) + "/sbin/init")
		h.replay(t, "bectl/umount")
		if got := h.Must("zfs get -H -o value,source mountpoint zroot/ROOT/new"); got != "/\tlocal\n" {
			t.Errorf("umount left the mountpoint at %q", got)
		}
		// Columns as recorded: both parse, with the same number of fields.
		for _, name := range []string{"bectl/list-H", "bectl/list-H-temporary"} {
			fx := fixture.Load(t, "freebsd/"+name)
			if _, err := freebsd.ParseBectlList([]byte(fx.Output)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		h.Must("bectl destroy current")
	})

	t.Run("sysctl", func(t *testing.T) {
		h := h.with(t)
		if _, err := h.BootID(t.Context()); err != nil {
			t.Error(err)
		}
		fx := fixture.Load(t, "freebsd/sysctl/boot_id")
		if _, err := freebsd.ParseBootID([]byte(fx.Output)); err != nil {
			t.Error(err)
		}
		if _, err := freebsd.ParseBoottime([]byte(h.Must("sysctl kern.boottime"))); err != nil {
			t.Error(err)
		}
		h.replay(t, "sysctl/jailed")
	})
}

// bectlList parses `bectl list -H` into BEs by name.
func (h *testHost) bectlList(t *testing.T) map[string]freebsd.BootEnv {
	t.Helper()
	bes, err := freebsd.ParseBectlList([]byte(h.Must("bectl list -H")))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]freebsd.BootEnv{}
	for _, be := range bes {
		m[be.Name] = be
	}
	return m
}
