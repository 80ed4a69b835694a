package zfs

import (
	"os/exec"
	"testing"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/testkit/zfstest"
)

// holds runs a recheck condition with this machine's /bin/sh.
func holds(t *testing.T, cond string) bool {
	t.Helper()
	err := exec.Command("/bin/sh", "-c", cond).Run()
	if _, failed := err.(*exec.ExitError); err != nil && !failed {
		t.Fatal(err)
	}
	return err == nil
}

// gather runs the fact's script here and returns a check request for keys.
func gather(t *testing.T, keys ...string) modules.CheckRequest {
	t.Helper()
	f, _ := modules.LookupFact(FactName)
	out, err := exec.Command("/bin/sh", "-c", f.Script(keys)).Output()
	if err != nil {
		t.Fatal(err)
	}
	vals, err := f.Parse(out, keys)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	req := modules.CheckRequest{Facts: map[modules.FactKey]any{}}
	for k, v := range vals {
		req.Facts[modules.FactKey{Fact: FactName, Key: k}] = v
	}
	return req
}

// TestRechecksLive gathers the zfs fact on a zfs-fuse pool and checks that
// the fact's and the tasks' rechecks hold right after, and fail once what
// the decision read has changed: the engine relies on them to confirm a
// decision inside the apply exchange.
func TestRechecksLive(t *testing.T) {
	p := zfstest.New(t)
	ds, snap, cl, fresh := p.Name+"/www", p.Name+"/www@s", p.Name+"/cl", p.Name+"/fresh"
	p.ZFS(t, "create", "-o", "atime=off", ds)
	p.ZFS(t, "snapshot", snap)
	p.ZFS(t, "clone", snap, cl)
	req := gather(t, ds, snap, cl, fresh)
	f, _ := modules.LookupFact(FactName)
	rc := f.(modules.FactRechecker)
	tasks := map[string]modules.Rechecker{
		"dataset":        &Dataset{Name: ds, State: "present", Properties: map[string]any{"atime": "off"}},
		"missing":        &Dataset{Name: fresh, State: "present"},
		"destroy":        &Dataset{Name: ds, State: "absent"},
		"snapshot":       &Snapshot{Name: snap, State: "present"},
		"clone":          &Clone{Snapshot: snap, Name: cl, State: "present"},
		"clone, destroy": &Clone{Snapshot: snap, Name: cl, State: "absent"},
	}
	for _, k := range []string{ds, snap, cl, fresh} {
		if c := rc.Recheck(k, req.Facts[modules.FactKey{Fact: FactName, Key: k}]); !holds(t, c) {
			t.Errorf("fact %s: the recheck fails right after gathering:\n%s", k, c)
		}
	}
	for what, task := range tasks {
		if c := task.Recheck(req); !holds(t, c) {
			t.Errorf("%s: the recheck fails right after gathering:\n%s", what, c)
		}
	}
	// A sibling created: the pool changed, but not what the property
	// decisions or the snapshot's existence read.
	p.ZFS(t, "create", p.Name+"/sibling")
	for what, want := range map[string]bool{"dataset": true, "missing": true, "snapshot": true, "clone": true, "destroy": false, "clone, destroy": false} {
		if got := holds(t, tasks[what].Recheck(req)); got != want {
			t.Errorf("after a sibling was created, %s's recheck holds=%v, want %v", what, got, want)
		}
	}
	// What the decisions read, changed.
	p.ZFS(t, "set", "atime=on", ds)
	p.ZFS(t, "set", "atime=on", cl)
	p.ZFS(t, "create", fresh)
	for _, what := range []string{"dataset", "missing", "clone"} {
		if holds(t, tasks[what].Recheck(req)) {
			t.Errorf("%s: the recheck holds after what it read changed", what)
		}
	}
	if c := rc.Recheck(ds, req.Facts[modules.FactKey{Fact: FactName, Key: ds}]); holds(t, c) {
		t.Error("the fact's recheck holds after the dataset changed")
	}
}
