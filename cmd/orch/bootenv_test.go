package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/internal/freebsd"
	"github.com/orch-dev/orch/lab/standin/standintest"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/bootenv-check.golden from this run")

// TestBootenv runs the shipped plans/bootenv.star through the CLI against
// a FreeBSD stand-in host: --check --diff (its output, every command in
// order, against a golden file; nothing changes), a broken image (the host
// falls back to the BE it ran, the plan fails saying so and leaves nothing
// behind), and a good image made on the host by zfs send of a snapshot of
// the running BE (booted, confirmed, activated for good, local state
// carried over).
func TestBootenv(t *testing.T) {
	h := standintest.Start(t, "orch-bectl-cli")
	inv := filepath.Join(t.TempDir(), "inventory.ini")
	if err := os.WriteFile(inv, []byte("[freebsd]\nbsd1 ansible_host="+h.Address+" ansible_user=root ansible_ssh_private_key_file="+h.KeyFile+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// must runs a script on the host outside orch, failing t (a subtest too).
	must := func(t *testing.T, script string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		res, err := h.Exec(ctx, script)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("%s: %v, exit %d\nstdout: %s\nstderr: %s", script, err, res.ExitCode, res.Stdout, res.Stderr)
		}
		return string(res.Stdout)
	}
	t.Setenv("ORCH_STATE", filepath.Join(t.TempDir(), "state"))
	t.Setenv("HOME", t.TempDir())
	must(t, `set -e
mkdir -p /usr/local/etc/app
echo kept > /usr/local/etc/app/marker
zfs snapshot zroot/ROOT/default@image
zfs send zroot/ROOT/default@image > /var/tmp/good.zfs
zfs destroy zroot/ROOT/default@image
bectl create broken
mp=$(bectl mount broken)
chmod a-x "$mp/sbin/init"
bectl umount broken
zfs snapshot zroot/ROOT/broken@image
zfs send zroot/ROOT/broken@image > /var/tmp/broken.zfs
bectl destroy -o broken`)

	orch := func(args ...string) (string, int) {
		t.Helper()
		var out, errOut bytes.Buffer
		base := []string{"run", "bootenv", "-i", inv, "--known-hosts", h.KnownHosts, "--host-key-check", "strict", "-e", "be=next"}
		if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "keep=") }) {
			base = append(base, "-e", "keep=/etc/rc.conf,/usr/local/etc/app")
		}
		code := Main(append(base, args...), &out, &errOut)
		return out.String() + errOut.String(), code
	}
	flags := func() map[string]string {
		t.Helper()
		bes, err := freebsd.ParseBectlList([]byte(must(t, "bectl list -H")))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, be := range bes {
			m[be.Name] = be.Flags()
		}
		return m
	}
	bootID := func() string {
		t.Helper()
		id, err := h.BootID(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	want := func(got map[string]string, be, f string) {
		t.Helper()
		if g, ok := got[be]; !ok && f != "absent" || ok && g != f {
			t.Errorf("%s has flags %q (exists %v), want %q: %v", be, g, ok, f, got)
		}
	}

	t.Run("check", func(t *testing.T) {
		boot := bootID()
		out, code := orch("--check", "--diff", "-e", "image=/var/tmp/good.zfs")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		got := normalize(out, h.Address)
		golden := filepath.Join("testdata", "bootenv-check.golden")
		if *updateGolden {
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		wantOut, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(wantOut) {
			t.Errorf("--check --diff output differs from %s (go test -run TestBootenv -update rewrites it):\n%s", golden, got)
		}
		fl := flags()
		want(fl, "default", "NR")
		want(fl, "next", "absent")
		if b := bootID(); b != boot {
			t.Errorf("--check rebooted the host: boot %s -> %s", boot, b)
		}
	})

	t.Run("broken image falls back", func(t *testing.T) {
		boot := bootID()
		restarts, err := h.RestartCount(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out, code := orch("-e", "image=/var/tmp/broken.zfs")
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, out)
		}
		for _, w := range []string{
			"came back on boot environment default, not next: next did not boot",
			"nothing permanent changed",
			"step 3 confirm: failed",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		fl := flags()
		want(fl, "default", "NR")
		want(fl, "next", "absent")
		if b := bootID(); b == boot {
			t.Error("the host did not reboot")
		}
		// One restart for the reboot, one after the panic.
		if n, _ := h.RestartCount(context.Background()); n != restarts+2 {
			t.Errorf("restarts %d, want %d", n, restarts+2)
		}
		if console := h.Console(context.Background(), 200); !strings.Contains(console, "panic: no init (zroot/ROOT/next") {
			t.Errorf("no panic of next on the console:\n%s", console)
		}
	})

	t.Run("failed preparation cleans up", func(t *testing.T) {
		boot := bootID()
		out, code := orch("-e", "image=/var/tmp/good.zfs", "-e", "keep=/etc/rc.conf,/usr/local/etc/nosuch")
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, out)
		}
		for _, w := range []string{"keep: /usr/local/etc/nosuch does not exist on the running system",
			"preparing boot environment next on bsd1 failed; it was destroyed again"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		fl := flags()
		want(fl, "default", "NR")
		want(fl, "next", "absent")
		if b := bootID(); b != boot {
			t.Error("the host rebooted")
		}
		if m := must(t, "grep -c be_mount /proc/mounts || true"); m != "0\n" {
			t.Errorf("a BE is still mounted: %q", m)
		}
	})

	t.Run("good image", func(t *testing.T) {
		boot := bootID()
		must(t, "echo 'orch_test_marker=\"YES\"' >> /etc/rc.conf")
		out, code := orch("-e", "image=/var/tmp/good.zfs")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if !strings.Contains(out, "bootenv: bsd1 booted next") {
			t.Errorf("no confirmation in the output:\n%s", out)
		}
		fl := flags()
		want(fl, "next", "NR")
		want(fl, "default", "")
		if b := bootID(); b == boot {
			t.Error("the host did not reboot")
		}
		// The booted BE is not mounted on the stand-in: look at a clone.
		got := must(t, `set -e
bectl create -e next look >/dev/null
mp=$(bectl mount look)
cat "$mp/usr/local/etc/app/marker"; grep -c orch_test_marker "$mp/etc/rc.conf"
bectl umount look; bectl destroy -o look`)
		if got != "kept\n1\n" {
			t.Errorf("the new BE's copies of the kept state: %q", got)
		}

		// For good: the boot after next is next again.
		booted := bootID()
		must(t, "shutdown -r now >/dev/null")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, err := h.WaitBoot(ctx, booted); err != nil {
			t.Fatal(err)
		}
		fl = flags()
		want(fl, "next", "NR")

		// A rerun finds the BE there and refuses before changing anything
		// (exit 2: nothing was touched).
		booted = bootID()
		out, code = orch("-e", "image=/var/tmp/good.zfs")
		if code != 2 || !strings.Contains(out, "boot environment next exists already on bsd1 (flags NR)") {
			t.Errorf("rerun: exit %d\n%s", code, out)
		}
		fl = flags()
		want(fl, "next", "NR")
		want(fl, "default", "")
		if b := bootID(); b != booted {
			t.Error("the refused rerun rebooted the host")
		}
	})
}

var (
	runIDRE    = regexp.MustCompile(`run \S+: `)
	bootRE     = regexp.MustCompile(`\b[0-9a-f]{32}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	sshWarnRE  = regexp.MustCompile(`(?m)^warning: ssh config: .*\n`)
	durationRE = regexp.MustCompile(` in [0-9.]+[µnm]?s\b`)
)

// normalize drops what differs between runs: the run ID, boot IDs,
// durations, the host's address, and what this machine's ssh_config
// makes orch warn about.
func normalize(out, address string) string {
	out = runIDRE.ReplaceAllString(out, "run RUN: ")
	out = bootRE.ReplaceAllString(out, "BOOTID")
	out = durationRE.ReplaceAllString(out, "")
	out = strings.ReplaceAll(out, address, "ADDRESS")
	out = sshWarnRE.ReplaceAllString(out, "") // this machine's /etc/ssh/ssh_config
	return out
}

// TestBootenvArguments: the plan refuses missing or bad arguments before
// it contacts a host (exit 2), naming the argument.
func TestBootenvArguments(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ORCH_STATE", filepath.Join(dir, "state"))
	inv := filepath.Join(dir, "inventory.ini")
	if err := os.WriteFile(inv, []byte("[freebsd]\nbsd1 ansible_host=127.0.0.1 ansible_port=1\nbsd2 ansible_host=127.0.0.1 ansible_port=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-e", "be=next"}, "-e image=PATH is required"},
		{[]string{"-e", "image=relative.zfs", "-e", "be=next"}, "-e image=PATH is required"},
		{[]string{"-e", "image=/var/tmp/x.zfs"}, "-e be=NAME is required"},
		{[]string{"-e", "image=/var/tmp/x.zfs", "-e", "be=next", "-e", "keep=etc/rc.conf"}, `-e keep: "etc/rc.conf" is not an absolute path`},
		{[]string{"-e", "image=/var/tmp/x.zfs", "-e", "be=next", "-e", "keep=/etc/../root"}, `-e keep: "/etc/../root"`},
		{[]string{"-e", "image=/var/tmp/x.zfs", "-e", "be=next"}, `bootenv reboots one host at a time: "freebsd" matches 2 hosts (bsd1, bsd2)`},
	} {
		var out, errOut bytes.Buffer
		code := Main(append([]string{"run", "bootenv", "-i", inv}, c.args...), &out, &errOut)
		if code != 2 || !strings.Contains(out.String()+errOut.String(), c.want) {
			t.Errorf("%v: exit %d, want 2 and %q:\n%s%s", c.args, code, c.want, out.String(), errOut.String())
		}
	}
}
