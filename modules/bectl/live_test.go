package bectl_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/internal/freebsd"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab/standin/standintest"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/testkit/localrun"
)

// host is a stand-in host and an inventory that reaches it as root over
// SSH, in group freebsd.
type host struct {
	*standintest.Host
	inv *inventory.Inventory
}

func start(t *testing.T, prefix string) *host {
	t.Helper()
	h := standintest.Start(t, prefix)
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: "bsd1", Address: h.Address, User: "root", Key: h.KeyFile, Groups: []string{"freebsd"}}); err != nil {
		t.Fatal(err)
	}
	return &host{Host: h, inv: inv}
}

// must runs script on the host as root, outside orch, failing t (which
// may be a subtest) unless it exits 0.
func (h *host) must(t *testing.T, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := h.Exec(ctx, script)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("%s: %v, exit %d\nstdout: %s\nstderr: %s", script, err, res.ExitCode, res.Stdout, res.Stderr)
	}
	return string(res.Stdout)
}

// result is one run of a role on the stand-in host.
type result struct {
	rep    *engine.Report
	events []engine.Event
	err    error
}

func (r result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "err %v; summary %+v\n", r.err, r.rep.Summary)
	for _, e := range r.events {
		if e.Event == "task" || e.Event == "host_done" {
			fmt.Fprintf(&b, "  %s %s %s: %s\n", e.Event, e.Task, e.Status, e.Msg)
		}
	}
	return b.String()
}

// run applies role (a role function's body) to the stand-in over SSH.
func run(t *testing.T, h *host, role string, check bool) result {
	t.Helper()
	var body []string
	for _, l := range strings.Split(strings.TrimSpace(role), "\n") {
		body = append(body, "    "+strings.TrimSpace(l))
	}
	src := "def role(h):\n" + strings.Join(body, "\n") + "\ndef main(ctx):\n    ctx.apply(\"freebsd\", role)\n"
	var res result
	res.rep, res.events, res.err = localrun.RunPlan(t, src, h.inv, engine.Options{
		Check: check,
		Diff:  true,
		SSH:   engine.SSHOptions{KnownHosts: []string{h.KnownHosts}, HostKeyCheck: "strict", NoSSHConfig: true},
	})
	if res.rep == nil {
		t.Fatalf("no report: %v", res.err)
	}
	return res
}

// flags reads bectl list -H on the host (outside orch) with the parser
// the module uses: name -> "NRT" flags.
func flags(t *testing.T, h *host) map[string]string {
	t.Helper()
	bes, err := freebsd.ParseBectlList([]byte(h.must(t, "bectl list -H")))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, be := range bes {
		m[be.Name] = be.Flags()
	}
	return m
}

// converge proves the contract for one role on the live host: check mode
// changes nothing, the apply changes, and the rerun is ok in one exchange.
func converge(t *testing.T, h *host, role string, want func(map[string]string) string) {
	t.Helper()
	before := flags(t, h)
	chk := run(t, h, role, true)
	if chk.err != nil || chk.rep.Summary.TasksChanged == 0 {
		t.Fatalf("check: want a change\n%s", chk)
	}
	if after := flags(t, h); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("check mode changed the BEs: %v -> %v", before, after)
	}
	first := run(t, h, role, false)
	if first.err != nil || first.rep.Summary.TasksChanged == 0 {
		t.Fatalf("apply: want a change\n%s", first)
	}
	if msg := want(flags(t, h)); msg != "" {
		t.Fatalf("after the apply: %s (%v)\n%s", msg, flags(t, h), first)
	}
	second := run(t, h, role, false)
	if second.err != nil || second.rep.Summary.TasksChanged != 0 || second.rep.Summary.Changed != 0 {
		t.Fatalf("rerun: want no change\n%s", second)
	}
	if n := second.rep.Summary.Exchanges; n != 1 {
		t.Errorf("rerun took %d exchanges, want 1\n%s", n, second)
	}
}

// TestLive runs every state transition against a stand-in host over SSH:
// create from the running BE, from another BE and from a zfs send stream,
// activate for the next boot and for good, refuse to destroy the running
// BE, destroy.
func TestLive(t *testing.T) {
	h := start(t, "orch-bectl")
	has := func(be, want string) func(map[string]string) string {
		return func(m map[string]string) string {
			got, ok := m[be]
			switch {
			case want == "absent" && ok:
				return be + " still exists"
			case want == "absent":
				return ""
			case !ok:
				return be + " does not exist"
			case got != want:
				return fmt.Sprintf("%s has flags %q, want %q", be, got, want)
			}
			return ""
		}
	}

	t.Run("present from the running BE", func(t *testing.T) {
		converge(t, h, `bectl(name = "b1")`, has("b1", ""))
	})
	t.Run("present from a BE", func(t *testing.T) {
		converge(t, h, `bectl(name = "b2", source = "b1")`, has("b2", ""))
	})
	t.Run("present from a stream", func(t *testing.T) {
		h.must(t, "zfs snapshot zroot/ROOT/default@img && zfs send zroot/ROOT/default@img > /var/tmp/img.zfs")
		converge(t, h, `bectl(name = "b3", source = "/var/tmp/img.zfs")`, has("b3", ""))
		props := h.must(t, "zfs get -H -o value canmount,mountpoint zroot/ROOT/b3; test -x \"$(bectl mount b3)/sbin/init\" && echo init; bectl umount b3")
		if props != "noauto\n/\ninit\n" {
			t.Errorf("received BE: %q, want canmount=noauto, mountpoint=/ and its /sbin/init", props)
		}
	})
	t.Run("active for the next boot", func(t *testing.T) {
		converge(t, h, `bectl(name = "b3", state = "active", temporary = True)`, has("b3", "T"))
	})
	t.Run("active", func(t *testing.T) {
		converge(t, h, `bectl(name = "b2", state = "active")`, func(m map[string]string) string {
			return has("b2", "R")(m) + has("b3", "")(m) + has("default", "N")(m)
		})
	})
	t.Run("destroying the running BE is refused", func(t *testing.T) {
		res := run(t, h, `bectl(name = "default", state = "absent")`, false)
		if res.err == nil || res.rep.Summary.Failed != 1 || !strings.Contains(res.String(), "boot environment default is the one running now") {
			t.Fatalf("want a refusal naming the BE\n%s", res)
		}
		if _, ok := flags(t, h)["default"]; !ok {
			t.Fatal("default is gone")
		}
	})
	t.Run("absent", func(t *testing.T) {
		run(t, h, `bectl(name = "default", state = "active")`, false)
		converge(t, h, `bectl(name = "b1", state = "absent")`, has("b1", "absent"))
	})
	t.Run("one role", func(t *testing.T) {
		// The stream's BE, then its activation for the next boot: decided
		// again once the BE exists, and under --check reported as decided
		// only then.
		role := "bectl(name = \"b4\", source = \"/var/tmp/img.zfs\")\nbectl(name = \"b4\", state = \"active\", temporary = True)"
		chk := run(t, h, role, true)
		if chk.err != nil || chk.rep.Summary.TasksChanged != 2 || !strings.Contains(chk.String(), "decided only once the tasks before it have run") {
			t.Fatalf("check\n%s", chk)
		}
		converge(t, h, role, has("b4", "T"))
	})
}
