package standin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/testkit/fixture"
)

func get(url string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// jail writes /etc/jail.conf.d/NAME.conf for a jail that runs the
// base system's rc, and prepares its clone with darkhttpd serving NAME.
func (h *testHost) jail(name, snap, ip string) {
	h.t.Helper()
	h.Must(fmt.Sprintf(`set -e
zfs clone %[2]s zroot/jails/%[1]s
pkg -r /jails/%[1]s install -qy darkhttpd
sysrc -q -R /jails/%[1]s darkhttpd_enable=YES
echo %[1]s > /jails/%[1]s/usr/local/www/data/index.html
mkdir -p /etc/jail.conf.d
cat > /etc/jail.conf.d/%[1]s.conf <<'EOF'
%[1]s {
	path = "/jails/$name";
	host.hostname = "$name";
	ip4.addr = %[3]s;
	mount.devfs;
	exec.start = "/bin/sh /etc/rc";
	exec.stop = "/bin/sh /etc/rc.shutdown";
}
EOF`, name, snap, ip))
}

// TestJailsAreIsolatedAndReachable starts two jails whose servers both bind
// port 80 on every address: each answers on its own address only, from the
// test process (another host of the network) and from the host, and
// removing a jail takes its address, processes and mounts away.
func TestJailsAreIsolatedAndReachable(t *testing.T) {
	h := startHost(t)
	snap := h.Template()
	blue, green := addr(h.subnet, 60), addr(h.subnet, 61)
	h.jail("blue", snap, blue)
	h.jail("green", snap, green)
	for _, j := range []string{"blue", "green"} {
		if out := h.Must("jail -f /etc/jail.conf.d/" + j + ".conf -c " + j); !strings.HasPrefix(out, j+": created\nStarting darkhttpd.\n") {
			t.Fatalf("jail -c %s: %q", j, out)
		}
	}
	for ip, want := range map[string]string{blue: "blue\n", green: "green\n"} {
		if body, err := get("http://" + ip + "/"); err != nil || body != want {
			t.Errorf("GET http://%s/ from the test: %q, %v; want %q", ip, body, err, want)
		}
		if body := h.Must("busybox wget -q -O - http://" + ip + "/"); body != want {
			t.Errorf("GET http://%s/ from the host: %q, want %q", ip, body, want)
		}
	}
	if got := h.Must("jexec blue hostname; jexec blue sh -c 'test -e /jails || echo chrooted'"); got != "blue\nchrooted\n" {
		t.Errorf("inside blue: %q", got)
	}
	if got := h.Must("jexec green cat /usr/local/www/data/index.html"); got != "green\n" {
		t.Errorf("green's root: %q", got)
	}

	h.Must("jail -q -f /etc/jail.conf.d/blue.conf -r blue")
	if _, err := get("http://" + blue + "/"); err == nil {
		t.Error("blue's address still answers after jail -r")
	}
	if body, err := get("http://" + green + "/"); err != nil || body != "green\n" {
		t.Errorf("green after blue's removal: %q, %v", body, err)
	}
	if got := h.run("jls -j blue").exit; got != 1 {
		t.Errorf("jls -j blue after jail -r: exit %d", got)
	}
	if got := h.Must("grep -c /jails/blue/ /proc/mounts || true; ip neigh show proxy"); strings.Contains(got, blue) || got[:2] != "0\n" {
		t.Errorf("blue left mounts or its proxy ARP entry: %q", got)
	}
	// zfs-fuse lets go of the dataset a moment after its last file closes.
	h.Must("for i in $(seq 100); do zfs destroy zroot/jails/blue 2>/dev/null && exit 0; sync; sleep 0.1; done; zfs destroy zroot/jails/blue")

	// A jail without persist ends with its last process.
	if out := h.Must("jail -c name=once path=/jails/green command=/bin/echo hi; jls name"); out != "once: created\nhi\ngreen\n" {
		t.Errorf("a command jail: %q", out)
	}
}

// TestRebootAndBootEnvironments reboots the host over SSH into a BE
// activated for one boot, makes it permanent, and then shows the fallback:
// a BE that cannot boot panics, and the next boot is the permanent BE again.
func TestRebootAndBootEnvironments(t *testing.T) {
	h := startHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sh := func(cmd string) string {
		t.Helper()
		out, err := h.SSH(cmd)
		if err != nil {
			t.Fatalf("ssh %s: %v\n%s", cmd, err, out)
		}
		return out
	}
	boot := func(previous string) string {
		t.Helper()
		id, err := h.WaitBoot(ctx, previous)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	flags := func() map[string]string {
		t.Helper()
		m := map[string]string{}
		for _, be := range h.bectlList(t) {
			m[be.Name] = be.Flags()
		}
		return m
	}
	hasFlags := func(be, want string) {
		t.Helper()
		got := flags()[be]
		for _, c := range want {
			if !strings.ContainsRune(got, c) {
				t.Errorf("%s has flags %q, want %q (%v)", be, got, want, flags())
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s has flags %q, want %q (%v)", be, got, want, flags())
		}
	}

	boot0, err := h.BootID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap := h.Template()
	h.jail("www", snap, addr(h.subnet, 70))
	sh("echo kept > /jails/www/root/note && sysrc -q jail_enable=YES jail_list=www")
	sh("bectl create new && bectl activate -t new")
	hasFlags("new", "T")

	out := sh("shutdown -r now")
	fx := fixture.Load(t, "freebsd/shutdown/reboot-now")
	if pids.ReplaceAllString(out, "${1}N") != pids.ReplaceAllString(fx.Output, "${1}N") {
		t.Errorf("shutdown -r now: %q, recorded %q", out, fx.Output)
	}
	boot1 := boot(boot0)
	hasFlags("new", "N")
	hasFlags("default", "R")
	if got := sh("cat /jails/www/root/note; jls -j www name"); got != "kept\nwww\n" {
		t.Errorf("after the reboot: %q (data and the enabled jail should be back)", got)
	}
	if body, err := get("http://" + addr(h.subnet, 70) + "/"); err != nil || body != "www\n" {
		t.Errorf("the jail's server after the reboot: %q, %v", body, err)
	}

	sh("bectl activate new")
	hasFlags("new", "NR")
	hasFlags("default", "")
	sh("reboot")
	boot2 := boot(boot1)
	hasFlags("new", "NR")

	// A BE without /sbin/init panics; the one-shot activation is spent, so
	// the boot after the panic is the permanent BE.
	sh(`bectl create broken && mp=$(bectl mount broken) && rm "$mp/sbin/init" && bectl umount broken && bectl activate -t broken`)
	hasFlags("broken", "T")
	restarts, err := h.RestartCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sh("shutdown -r now")
	boot3 := boot(boot2)
	hasFlags("new", "NR")
	hasFlags("broken", "")
	if n, _ := h.RestartCount(ctx); n != restarts+2 {
		t.Errorf("restarts %d, want %d: one for the reboot, one after the panic", n, restarts+2)
	}
	console := h.Console(ctx, 30)
	if !regexp.MustCompile(`panic: no init \(zroot/ROOT/broken`).MatchString(console) {
		t.Errorf("no panic on the console:\n%s", console)
	}
	if ids := map[string]bool{boot0: true, boot1: true, boot2: true, boot3: true}; len(ids) != 4 {
		t.Errorf("boot IDs repeat: %s %s %s %s", boot0, boot1, boot2, boot3)
	}
}
