package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// sshInventory lists the fleet's hosts; each converges its own directory,
// since every sshd runs on this one machine.
func sshInventory(t *testing.T, f *sshdtest.Fleet) (*inventory.Inventory, string) {
	t.Helper()
	dir := t.TempDir()
	inv := inventory.New()
	for _, h := range f.Hosts {
		err := inv.Add(&inventory.Host{Name: h.Name, Address: h.IP, Port: h.Port, User: f.User, Key: f.ClientKey,
			Groups: []string{"web"}, Vars: map[string]any{"root": filepath.Join(dir, h.Name)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return inv, dir
}

func strictSSH(knownHosts string) SSHOptions {
	return SSHOptions{KnownHosts: []string{knownHosts}, HostKeyCheck: "strict", NoSSHConfig: true}
}

func TestSSHCheckApplyRerun(t *testing.T) {
	fleet := sshdtest.Start(t, 5, sshdtest.Options{})
	inv, dir := sshInventory(t, fleet)
	opts := Options{SSH: strictSSH(fleet.KnownHosts)}

	check := opts
	check.Check = true
	rep, _, err := runPlan(t, "testdata/site.star", inv, check)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.TasksChanged != 5*21 {
		t.Errorf("check: %+v", rep.Summary)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("check mode wrote %d entries", len(entries))
	}

	rep, _, err = runPlan(t, "testdata/site.star", inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.TasksChanged != 5*21 || s.Changed != 5 {
		t.Errorf("apply: %+v", s)
	}

	rep, _, err = runPlan(t, "testdata/site.star", inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.TasksChanged != 0 || s.OK != 5 || s.Changed != 0 {
		t.Errorf("rerun: %+v", s)
	}
	for _, h := range rep.Hosts {
		if h.Exchanges > 2 {
			t.Errorf("rerun on %s: %d exchanges, want at most 2", h.Name, h.Exchanges)
		}
	}

	os.WriteFile(filepath.Join(dir, "h4", "f11.txt"), []byte("edited by hand\n"), 0o644)
	rep, _, err = runPlan(t, "testdata/site.star", inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.TasksChanged != 1 || s.Changed != 1 {
		t.Errorf("repair: %+v", s)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "h4", "f11.txt")); string(got) != "file 11 on h4\n" {
		t.Errorf("f11 on h4 = %q", got)
	}
}

func hostDone(rec *recorder, host string) Event {
	for _, e := range rec.of("host_done") {
		if e.Host == host {
			return e
		}
	}
	return Event{}
}

func TestSSHStrictUnknownHostKey(t *testing.T) {
	fleet := sshdtest.Start(t, 1, sshdtest.Options{})
	inv, dir := sshInventory(t, fleet)
	empty := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(empty, nil, 0o600)
	rep, rec, err := runPlan(t, "testdata/site.star", inv, Options{SSH: strictSSH(empty)})
	if !errors.Is(err, ErrTooManyFailures) || rep.Summary.Unreachable != 1 {
		t.Fatalf("err = %v, summary %+v", err, rep.Summary)
	}
	msg := hostDone(rec, "h1").Msg
	for _, want := range []string{"h1", "unknown", fleet.Hosts[0].Fingerprint} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "h1")); !os.IsNotExist(err) {
		t.Error("a host with an unknown key was changed")
	}
}

func TestSSHChangedHostKeyFailsEvenUnderAcceptNew(t *testing.T) {
	fleet := sshdtest.Start(t, 2, sshdtest.Options{})
	inv, dir := sshInventory(t, fleet)
	old := fleet.Hosts[0].Fingerprint
	newFP, err := fleet.Hosts[0].RotateKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{SSH: SSHOptions{KnownHosts: []string{fleet.KnownHosts}, HostKeyCheck: "accept-new", NoSSHConfig: true}}
	rep, rec, err := runPlan(t, "testdata/site.star", inv, opts)
	if !errors.Is(err, ErrTooManyFailures) || rep.Summary.Unreachable != 1 || rep.Summary.OK != 1 {
		t.Fatalf("err = %v, summary %+v", err, rep.Summary)
	}
	msg := hostDone(rec, "h1").Msg
	for _, want := range []string{"h1", old, newFP} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "h1")); !os.IsNotExist(err) {
		t.Error("a host with a changed key was changed")
	}
}

func TestSSHOneUnreachableOfFive(t *testing.T) {
	fleet := sshdtest.Start(t, 5, sshdtest.Options{})
	inv, dir := sshInventory(t, fleet)
	fleet.Hosts[2].Stop()
	rep, rec, err := runPlan(t, "testdata/site.star", inv, Options{SSH: strictSSH(fleet.KnownHosts)})
	if !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("err = %v", err)
	}
	if s := rep.Summary; s.Unreachable != 1 || s.OK != 4 || s.Changed != 4 || s.Failed != 0 || s.Hosts != 5 {
		t.Errorf("summary: %+v", s)
	}
	if e := hostDone(rec, "h3"); e.Status != "unreachable" || !strings.Contains(e.Msg, fleet.Hosts[2].Addr()) {
		t.Errorf("h3: %+v", e)
	}
	for _, h := range []string{"h1", "h2", "h4", "h5"} {
		if got, _ := os.ReadFile(filepath.Join(dir, h, "f19.txt")); string(got) != fmt.Sprintf("file 19 on %s\n", h) {
			t.Errorf("%s did not complete: %q", h, got)
		}
	}
}

// TestSSHLargeFileGoesOverSFTP: content too large for a script is written
// with SFTP beside the target and renamed into place; reruns compare hashes.
func TestSSHLargeFileGoesOverSFTP(t *testing.T) {
	fleet := sshdtest.Start(t, 1, sshdtest.Options{})
	inv, dir := sshInventory(t, fleet)
	plan := writeFile(t, "plan.star", `
def role(h):
    file(path = h.vars["root"], state = "directory")
    file(path = h.vars["root"] + "/big", content = "0123456789abcdef" * 131072, mode = "0640")

def main(ctx):
    ctx.apply("all", role)
`)
	opts := Options{SSH: strictSSH(fleet.KnownHosts)}
	rep, _, err := runPlan(t, plan, inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	// check + SFTP requests + apply: more than two exchanges, and honest about it.
	if s := rep.Summary; s.TasksChanged != 2 || s.Exchanges <= 2 {
		t.Errorf("first run: %+v", s)
	}
	big := filepath.Join(dir, "h1", "big")
	got, err := os.ReadFile(big)
	if err != nil || len(got) != 16*131072 || string(got[:16]) != "0123456789abcdef" {
		t.Fatalf("big: %d bytes, %v", len(got), err)
	}
	if fi, _ := os.Stat(big); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "h1")); len(entries) != 1 {
		t.Errorf("%d entries, want only big (no upload left behind)", len(entries))
	}
	rep, _, err = runPlan(t, plan, inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.TasksChanged != 0 || s.Exchanges != 1 {
		t.Errorf("rerun: %+v", s)
	}
}
