package zfs

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/testkit/localrun"
	"github.com/orch-dev/orch/testkit/zfstest"
)

// role wraps module calls into a plan that applies them to the local host.
func role(calls ...string) string {
	return "def role(h):\n    " + strings.Join(calls, "\n    ") + "\n\ndef main(ctx):\n    ctx.apply(\"all\", role)\n"
}

// run runs a plan that must succeed and returns its summary.
func run(t *testing.T, src string, check bool) (engine.Summary, []engine.Event) {
	t.Helper()
	return localrun.MustRun(t, src, check)
}

// expect asserts the tasks changed and the exchanges of a run: a check
// or a no-change run is the probe exchange alone, a run that changes
// things one more, however many zfs tasks depend on each other (their
// rechecks ride in the apply exchange).
func expect(t *testing.T, what string, s engine.Summary, events []engine.Event, changed int, exchanges int64) {
	t.Helper()
	if s.TasksChanged != changed || s.Exchanges != exchanges {
		t.Fatalf("%s: %d tasks changed in %d exchanges, want %d changed in %d exchanges%s", what, s.TasksChanged, s.Exchanges, changed, exchanges, localrun.Tasks(events))
	}
}

// exists reports whether zfs knows name.
func exists(name string) bool {
	_, err := zfstest.Run(context.Background(), zfstest.ZFS, "list", "-H", "-o", "name", name)
	return err == nil
}

// local reads one locally set property, exactly; "" when it is not set
// locally.
func local(t *testing.T, p *zfstest.Pool, name, prop string) string {
	t.Helper()
	out := p.ZFS(t, "get", "-H", "-p", "-o", "value,source", prop, name)
	value, source, _ := strings.Cut(strings.TrimSpace(out), "\t")
	if source != "local" {
		return ""
	}
	return value
}

// TestDatasetLive drives zfs.dataset through the engine against a real
// zfs-fuse pool: check mode creates nothing; apply; a rerun changes nothing
// in one exchange; a property changed outside orch, or inherited instead of
// set locally, is repaired as one changed task; values written in other
// units than zfs prints are not changes.
func TestDatasetLive(t *testing.T) {
	p := zfstest.New(t)
	ds := p.Name + "/www"
	mnt := p.Mountpoint + "/srv-www"
	src := role(fmt.Sprintf(`zfs.dataset(name = %q, properties = {"compression": "on", "quota": "1G", "recordsize": "64K", "atime": False, "user:owner": "web", "mountpoint": %q})`, ds, mnt))

	s, ev := run(t, src, true)
	expect(t, "check mode", s, ev, 1, 1)
	if exists(ds) {
		t.Fatalf("check mode created %s", ds)
	}

	s, ev = run(t, src, false)
	expect(t, "first apply", s, ev, 1, 2)
	for prop, want := range map[string]string{"compression": "on", "quota": "1073741824", "recordsize": "65536", "atime": "off", "user:owner": "web", "mountpoint": mnt} {
		if got := local(t, p, ds, prop); got != want {
			t.Errorf("%s: %s is %q locally, want %q", ds, prop, got, want)
		}
	}

	s, ev = run(t, src, false)
	expect(t, "no-change rerun", s, ev, 0, 1)

	// The same values in other units: still no change.
	same := role(fmt.Sprintf(`zfs.dataset(name = %q, properties = {"quota": "1073741824", "recordsize": "0.0625M", "atime": "off"})`, ds))
	s, ev = run(t, same, false)
	expect(t, "same values, other units", s, ev, 0, 1)

	// Changed outside orch: one changed, then quiet again.
	p.ZFS(t, "set", "compression=off", ds)
	p.ZFS(t, "inherit", "atime", ds)
	s, ev = run(t, src, true)
	expect(t, "drift, check mode", s, ev, 1, 1)
	if got := local(t, p, ds, "compression"); got != "off" {
		t.Fatalf("check mode changed compression to %q", got)
	}
	s, ev = run(t, src, false)
	expect(t, "drift repaired", s, ev, 1, 2)
	if local(t, p, ds, "compression") != "on" || local(t, p, ds, "atime") != "off" {
		t.Fatalf("drift not repaired: compression %q, atime %q", local(t, p, ds, "compression"), local(t, p, ds, "atime"))
	}
	s, ev = run(t, src, false)
	expect(t, "after repair", s, ev, 0, 1)

	// An inherited value equal to the wanted one is set locally once.
	child := ds + "/logs"
	p.ZFS(t, "create", child)
	inherits := role(fmt.Sprintf(`zfs.dataset(name = %q, properties = {"compression": "on"})`, child))
	s, ev = run(t, inherits, false)
	expect(t, "inherited value set locally", s, ev, 1, 2)
	s, ev = run(t, inherits, false)
	expect(t, "inherited value, rerun", s, ev, 0, 1)

	// Destroy: refused while it has a child, then recursive.
	gone := role(fmt.Sprintf(`zfs.dataset(name = %q, state = "absent")`, ds))
	_, ev, err := localrun.Run(t, gone, false)
	if err == nil || !strings.Contains(localrun.Tasks(ev), child) {
		t.Fatalf("destroying %s with a child: err %v, want a refusal naming %s%s", ds, err, child, localrun.Tasks(ev))
	}
	if !exists(ds) {
		t.Fatal("a refused destroy destroyed the dataset")
	}
	goneR := role(fmt.Sprintf(`zfs.dataset(name = %q, state = "absent", recursive = True)`, ds))
	s, ev = run(t, goneR, true)
	expect(t, "recursive destroy, check mode", s, ev, 1, 1)
	if !exists(child) {
		t.Fatal("check mode destroyed the child")
	}
	s, ev = run(t, goneR, false)
	expect(t, "recursive destroy", s, ev, 1, 2)
	if exists(ds) || exists(child) {
		t.Fatal("the recursive destroy left datasets behind")
	}
	s, ev = run(t, goneR, false)
	expect(t, "destroy rerun", s, ev, 0, 1)
}

// TestSnapshotCloneLive: a dataset, its snapshot and a clone of it, made
// in one run and idempotent; destroying the dataset with the dependent
// clone is refused naming the clone, and with recursive=True takes the
// clone too (zfs destroy -R); snapshot and clone destroys are idempotent.
func TestSnapshotCloneLive(t *testing.T) {
	p := zfstest.New(t)
	ds, snap, cl := p.Name+"/app", p.Name+"/app@v1", p.Name+"/app-v1"
	all := role(
		fmt.Sprintf(`zfs.dataset(name = %q)`, ds),
		fmt.Sprintf(`zfs.snapshot(name = %q)`, snap),
		fmt.Sprintf(`zfs.clone(snapshot = %q, name = %q, properties = {"atime": "off"})`, snap, cl),
	)
	s, ev := run(t, all, true)
	expect(t, "check mode", s, ev, 3, 1)
	if exists(ds) {
		t.Fatal("check mode created the dataset")
	}
	s, ev = run(t, all, false)
	expect(t, "first apply", s, ev, 3, 2)
	if out := p.ZFS(t, "get", "-H", "-o", "value", "origin", cl); strings.TrimSpace(out) != snap {
		t.Fatalf("origin of %s is %q", cl, out)
	}
	s, ev = run(t, all, false)
	expect(t, "no-change rerun", s, ev, 0, 1)

	// A dataset that is not a clone of the snapshot is never replaced.
	other := p.Name + "/other"
	p.ZFS(t, "create", other)
	_, ev, err := localrun.Run(t, role(fmt.Sprintf(`zfs.clone(snapshot = %q, name = %q)`, snap, other)), false)
	if err == nil || !strings.Contains(localrun.Tasks(ev), "is not a clone") {
		t.Fatalf("a clone over a plain dataset: err %v%s", err, localrun.Tasks(ev))
	}

	// The dataset's destroy is refused, naming the clone.
	gone := role(fmt.Sprintf(`zfs.dataset(name = %q, state = "absent")`, ds))
	_, ev, err = localrun.Run(t, gone, false)
	if err == nil || !strings.Contains(localrun.Tasks(ev), "dependent clones "+cl) {
		t.Fatalf("destroying %s with a dependent clone: err %v, want a refusal naming %s%s", ds, err, cl, localrun.Tasks(ev))
	}
	// So is the snapshot's.
	_, ev, err = localrun.Run(t, role(fmt.Sprintf(`zfs.snapshot(name = %q, state = "absent")`, snap)), false)
	if err == nil || !strings.Contains(localrun.Tasks(ev), cl) {
		t.Fatalf("destroying %s with a dependent clone: err %v%s", snap, err, localrun.Tasks(ev))
	}
	if !exists(ds) || !exists(snap) || !exists(cl) {
		t.Fatal("a refused destroy destroyed something")
	}

	// Clone, then snapshot, destroyed and idempotent.
	parts := role(
		fmt.Sprintf(`zfs.clone(snapshot = %q, name = %q, state = "absent")`, snap, cl),
		fmt.Sprintf(`zfs.snapshot(name = %q, state = "absent")`, snap),
	)
	// The snapshot's check saw the clone and refused; the clone's destroy
	// touches the snapshot's key, so the engine re-checks it on the host
	// (its recheck fails: the pool changed), gathers fresh facts in the
	// same exchange, and applies the snapshot's destroy in a third.
	s, ev = run(t, parts, false)
	expect(t, "clone and snapshot destroyed", s, ev, 2, 3)
	if exists(cl) || exists(snap) || !exists(ds) {
		t.Fatal("clone or snapshot left, or the dataset gone")
	}
	s, ev = run(t, parts, false)
	expect(t, "destroy rerun", s, ev, 0, 1)

	// Again with the clone, destroyed with recursive=True: zfs destroy -R.
	s, ev = run(t, all, false)
	expect(t, "recreated", s, ev, 2, 2)
	goneR := role(fmt.Sprintf(`zfs.dataset(name = %q, state = "absent", recursive = True)`, ds))
	s, ev = run(t, goneR, false)
	expect(t, "recursive destroy", s, ev, 1, 2)
	if !strings.Contains(localrun.Tasks(ev), "zfs destroy -R") {
		t.Errorf("the recursive destroy with a clone did not say -R:%s", localrun.Tasks(ev))
	}
	if exists(ds) || exists(cl) {
		t.Fatal("the recursive destroy left the dataset or its clone")
	}
	s, ev = run(t, goneR, false)
	expect(t, "recursive destroy rerun", s, ev, 0, 1)
}

// TestSnapshotRecursiveLive: zfs.snapshot(recursive=True) takes the
// snapshot below too, then fills in a dataset added later; its destroy
// takes them all.
func TestSnapshotRecursiveLive(t *testing.T) {
	p := zfstest.New(t)
	ds := p.Name + "/r"
	p.ZFS(t, "create", "-p", ds+"/a")
	take := role(fmt.Sprintf(`zfs.snapshot(name = %q, recursive = True)`, ds+"@s"))
	s, ev := run(t, take, false)
	expect(t, "recursive snapshot", s, ev, 1, 2)
	if !exists(ds+"@s") || !exists(ds+"/a@s") {
		t.Fatal("zfs snapshot -r did not take both")
	}
	s, ev = run(t, take, false)
	expect(t, "rerun", s, ev, 0, 1)
	p.ZFS(t, "create", ds+"/b")
	s, ev = run(t, take, false)
	expect(t, "a new dataset below", s, ev, 1, 2)
	if !exists(ds + "/b@s") {
		t.Fatal("the new dataset's snapshot was not taken")
	}
	drop := role(fmt.Sprintf(`zfs.snapshot(name = %q, state = "absent", recursive = True)`, ds+"@s"))
	s, ev = run(t, drop, false)
	expect(t, "recursive destroy", s, ev, 1, 2)
	for _, n := range []string{ds + "@s", ds + "/a@s", ds + "/b@s"} {
		if exists(n) {
			t.Errorf("%s left", n)
		}
	}
	s, ev = run(t, drop, false)
	expect(t, "destroy rerun", s, ev, 0, 1)
}
