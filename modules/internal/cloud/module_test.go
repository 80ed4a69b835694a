package cloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
)

// recorder is a modules.HostRecorder that remembers what it was told.
type recorder struct {
	added   []string
	removed []string
	fail    string // AddHost fails for this host
}

func (r *recorder) AddHost(h *inventory.Host, line string) error {
	if h.Name == r.fail {
		return errors.New("inventory: add: bad name")
	}
	r.added = append(r.added, h.Name+" "+line)
	return nil
}

func (r *recorder) RemoveHost(name string) { r.removed = append(r.removed, name) }

type machine struct {
	name    string
	created bool
}

func pin(m machine) (*inventory.Host, string, bool) {
	return Host(m.name, "198.51.100.7", nil, "x_id", 1), "line-" + m.name, m.created
}

func testEnv(check bool) (*modules.Env, *recorder, *[]string) {
	rec := &recorder{}
	var logs []string
	env := &modules.Env{Check: check, Hosts: rec, Logf: func(format string, args ...any) {
		logs = append(logs, fmt.Sprintf(format, args...))
	}}
	return env, rec, &logs
}

func TestRecord(t *testing.T) {
	env, rec, logs := testEnv(false)
	hosts, err := Record(env, "x.create", []machine{{"a", true}, {"b", false}}, pin)
	if err != nil || len(hosts) != 2 || hosts[1].Name != "b" {
		t.Fatalf("hosts %v, %v", hosts, err)
	}
	if !slices.Equal(rec.added, []string{"a line-a", "b line-b"}) || !slices.Equal(*logs, []string{"x.create: created a (198.51.100.7)"}) {
		t.Errorf("added %q, logged %q", rec.added, *logs)
	}

	// The hosts recorded before a failure are returned with it.
	env, rec, _ = testEnv(false)
	rec.fail = "b"
	hosts, err = Record(env, "x.create", []machine{{"a", true}, {"b", true}, {"c", true}}, pin)
	if err == nil || len(hosts) != 1 || hosts[0].Name != "a" {
		t.Errorf("hosts %v, %v", hosts, err)
	}
}

func TestDelete(t *testing.T) {
	hosts := []*inventory.Host{Host("a", "", nil, "x_id", 1), Host("b", "", nil, "x_id", 2)}
	id := func(h *inventory.Host) (int, error) { return IDFromHost(h, "x", "x_id") }

	env, rec, logs := testEnv(false)
	var deleted []int
	err := Delete(context.Background(), env, "x.delete", hosts, id, func(_ context.Context, ids []int) error {
		deleted = ids
		return nil
	})
	if err != nil || !slices.Equal(deleted, []int{1, 2}) || !slices.Equal(rec.removed, []string{"a", "b"}) ||
		!slices.Equal(*logs, []string{"x.delete: deleted a", "x.delete: deleted b"}) {
		t.Errorf("err %v, deleted %v, removed %v, logged %q", err, deleted, rec.removed, *logs)
	}

	env, rec, logs = testEnv(true)
	err = Delete(context.Background(), env, "x.delete", hosts, id, func(context.Context, []int) error {
		t.Error("deleted under --check")
		return nil
	})
	if err != nil || rec.removed != nil || !slices.Equal(*logs, []string{"check: x.delete would delete a", "check: x.delete would delete b"}) {
		t.Errorf("check: err %v, removed %v, logged %q", err, rec.removed, *logs)
	}

	// A failed delete forgets nothing; a host without an ID stops it first.
	env, rec, _ = testEnv(false)
	err = Delete(context.Background(), env, "x.delete", hosts, id, func(context.Context, []int) error { return errors.New("x.delete 2: boom") })
	if err == nil || rec.removed != nil {
		t.Errorf("failed delete: err %v, removed %v", err, rec.removed)
	}
	bad := append(hosts, &inventory.Host{Name: "c"})
	err = Delete(context.Background(), env, "x.delete", bad, id, func(context.Context, []int) error {
		t.Error("deleted with a host without an ID")
		return nil
	})
	if err == nil || err.Error() != "x: host c has no x_id var" {
		t.Errorf("host without an ID: %v", err)
	}
}
