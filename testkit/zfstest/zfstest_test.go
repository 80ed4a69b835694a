package zfstest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// result is one command's outcome.
type result struct {
	stdout, stderr string
	exit           int
}

func sh(t *testing.T, script string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", script, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// expect runs script and checks its exit status and that stdout (out) and
// stderr (errText) contain the given texts.
func expect(t *testing.T, script string, exit int, out, errText string) result {
	t.Helper()
	r := sh(t, script)
	if r.exit != exit || !strings.Contains(r.stdout, out) || !strings.Contains(r.stderr, errText) {
		t.Errorf("%s:\nexit %d (want %d)\nstdout %q (want it to contain %q)\nstderr %q (want it to contain %q)",
			script, r.exit, exit, r.stdout, out, r.stderr, errText)
	}
	return r
}

func TestPoolLifecycle(t *testing.T) {
	var name, file string
	t.Run("pool", func(t *testing.T) {
		p := New(t)
		name, file = p.Name, p.File
		got := strings.TrimSpace(p.ZFS(t, "get", "-H", "-o", "value", "mountpoint,mounted", p.Name))
		if got != p.Mountpoint+"\nyes" {
			t.Fatalf("pool root: %q, want %s mounted", got, p.Mountpoint)
		}
		if err := os.WriteFile(filepath.Join(p.Mountpoint, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := Run(context.Background(), Zpool, "list", name); err == nil {
		t.Fatalf("pool %s still exists after its test", name)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("backing file %s left behind: %v", file, err)
	}
}

func TestTwoPoolsAreIndependent(t *testing.T) {
	a, b := New(t), New(t)
	if a.Name == b.Name || a.Mountpoint == b.Mountpoint {
		t.Fatalf("pools share a name or mountpoint: %+v %+v", a, b)
	}
	a.ZFS(t, "create", a.Name+"/x")
	if _, err := Run(context.Background(), ZFS, "list", b.Name+"/x"); err == nil {
		t.Fatal("dataset created in one pool shows in the other")
	}
}

// retry runs a zfs command until zfs-fuse no longer finds the dataset busy
// (see the package doc), for up to ten seconds.
func retry(cmd string) string {
	return "sync; for i in $(seq 100); do " + cmd + " 2>/dev/null && exit 0; sleep 0.1; done; " + cmd
}

// TestZFSFuseBehaviour asserts what the package doc says zfs-fuse does.
func TestZFSFuseBehaviour(t *testing.T) {
	p := New(t)
	P := p.Name
	run := func(t *testing.T, script string) string {
		t.Helper()
		r := sh(t, script)
		if r.exit != 0 {
			t.Fatalf("%s: exit %d: %s", script, r.exit, r.stderr)
		}
		return r.stdout
	}
	run(t, "zfs create -p "+P+"/jails/templates/base && echo hello > "+p.Mountpoint+"/jails/templates/base/f")
	run(t, "zfs create -o compression=lzjb -o orch:role=web "+P+"/web")
	run(t, "zfs snapshot "+P+"/jails/templates/base@v1 && zfs clone "+P+"/jails/templates/base@v1 "+P+"/jails/blue")

	t.Run("list", func(t *testing.T) {
		expect(t, "zfs list -H -p -o name "+P, 2, "", "invalid option 'p'")
		got := run(t, "zfs list -H -o name,type,origin -t all -r "+P+"/jails")
		want := P + "/jails\tfilesystem\t-\n" +
			P + "/jails/blue\tfilesystem\t" + P + "/jails/templates/base@v1\n" +
			P + "/jails/templates\tfilesystem\t-\n" +
			P + "/jails/templates/base\tfilesystem\t-\n" +
			P + "/jails/templates/base@v1\tsnapshot\t-\n"
		if got != want {
			t.Errorf("list -H:\n%s\nwant\n%s", got, want)
		}
		if got := run(t, "zfs list -H -o used "+P); !strings.ContainsAny(got, "KMG") {
			t.Errorf("list sizes are not humanised: %q", got)
		}
	})

	t.Run("get", func(t *testing.T) {
		got := run(t, "zfs get -H -p -o name,property,value,source compression,orch:role,quota,origin,type "+P+"/web "+P+"/jails/blue "+P+"/jails/templates/base@v1")
		want := P + "/jails/blue\tcompression\toff\tdefault\n" +
			P + "/jails/blue\torch:role\t-\t-\n" +
			P + "/jails/blue\tquota\t0\tdefault\n" +
			P + "/jails/blue\torigin\t" + P + "/jails/templates/base@v1\t-\n" +
			P + "/jails/blue\ttype\tfilesystem\t-\n" +
			P + "/jails/templates/base@v1\tcompression\t-\t-\n" +
			P + "/jails/templates/base@v1\torch:role\t-\t-\n" +
			P + "/jails/templates/base@v1\tquota\t-\t-\n" +
			P + "/jails/templates/base@v1\torigin\t-\t-\n" +
			P + "/jails/templates/base@v1\ttype\tsnapshot\t-\n" +
			P + "/web\tcompression\tlzjb\tlocal\n" +
			P + "/web\torch:role\tweb\tlocal\n" +
			P + "/web\tquota\t0\tdefault\n" +
			P + "/web\torigin\t-\t-\n" +
			P + "/web\ttype\tfilesystem\t-\n"
		if got != want {
			t.Errorf("get -H -p:\n%s\nwant\n%s", got, want)
		}
		if got := run(t, "zfs get -H -p -o value creation "+P); strings.Trim(got, "0123456789\n") != "" {
			t.Errorf("creation with -p is not Unix seconds: %q", got)
		}
		if got := run(t, "zfs get -H -p -r -o name compression "+P+"/jails/templates"); !strings.Contains(got, "@v1") {
			t.Errorf("get -r leaves out snapshots: %q", got)
		}
		if got := run(t, "zfs get -H -s local -o name,property,value -r all "+P+"/web"); got != P+"/web\tcompression\tlzjb\n"+P+"/web\torch:role\tweb\n" {
			t.Errorf("get -s local: %q", got)
		}
		run(t, "zfs set compression=on "+P)
		if got := run(t, "zfs get -H -o source compression "+P+"/jails"); got != "inherited from "+P+"\n" {
			t.Errorf("inherited source: %q", got)
		}
		expect(t, "zfs get -t filesystem -H -o name type "+P, 2, "", "invalid option 't'")
		expect(t, "zfs get -H -o value type "+P+"/nope", 1, "", "cannot open '"+P+"/nope': dataset does not exist")
	})

	t.Run("create", func(t *testing.T) {
		expect(t, "zfs create "+P+"/web", 1, "", "cannot create '"+P+"/web': dataset already exists")
		expect(t, "zfs snapshot "+P+"/jails/templates/base@v1", 1, "", "cannot create snapshot '"+P+"/jails/templates/base@v1': dataset already exists")
		expect(t, "zfs clone "+P+"/web@nope "+P+"/c", 1, "", "cannot open '"+P+"/web@nope': dataset does not exist")
		if got := run(t, "cat "+p.Mountpoint+"/jails/blue/f"); got != "hello\n" {
			t.Errorf("clone content: %q", got)
		}
	})

	t.Run("destroy", func(t *testing.T) {
		expect(t, "zfs destroy "+P+"/jails/templates/base", 1, "",
			"cannot destroy '"+P+"/jails/templates/base': filesystem has children\nuse '-r' to destroy the following datasets:\n"+P+"/jails/templates/base@v1\n")
		expect(t, "zfs destroy "+P+"/jails/templates/base@v1", 1, "",
			"cannot destroy '"+P+"/jails/templates/base@v1': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\n"+P+"/jails/blue\n")
		expect(t, "zfs destroy -n "+P+"/web", 2, "", "invalid option 'n'")
		expect(t, "zfs destroy "+P+"/web@nope", 1, "", "cannot open '"+P+"/web@nope': dataset does not exist")
		run(t, "zfs create "+P+"/gone && zfs snapshot "+P+"/gone@s && "+retry("zfs destroy -r "+P+"/gone"))
	})

	t.Run("set and inherit", func(t *testing.T) {
		run(t, "zfs inherit compression "+P+"/web && zfs inherit orch:role "+P+"/web")
		if got := run(t, "zfs get -H -o value,source compression,orch:role "+P+"/web"); got != "on\tinherited from "+P+"\n-\t-\n" {
			t.Errorf("after inherit: %q", got)
		}
		expect(t, "zfs inherit quota "+P+"/web", 1, "", "'quota' property cannot be inherited\nuse 'zfs set quota=none' to clear")
		run(t, "zfs set quota=10M "+P+"/web && zfs set quota=none "+P+"/web")
		if got := run(t, "zfs get -H -p -o value,source quota "+P+"/web"); got != "0\tlocal\n" {
			t.Errorf("quota=none: %q", got)
		}
		expect(t, "zfs set jailed=on "+P+"/web", 1, "", "cannot set property for '"+P+"/web': invalid property 'jailed'")
		run(t, "zfs set zoned=off "+P+"/web")
		expect(t, "zfs set compression=lz4 "+P+"/web", 1, "", "'compression' must be one of")
	})

	t.Run("send and receive", func(t *testing.T) {
		run(t, "zfs send "+P+"/jails/templates/base@v1 | zfs receive "+P+"/copy")
		if got := run(t, "cat "+p.Mountpoint+"/copy/f; zfs list -H -o name -t snapshot -r "+P+"/copy"); got != "hello\n"+P+"/copy@v1\n" {
			t.Errorf("received: %q", got)
		}
		expect(t, "zfs send "+P+"/jails/templates/base@v1 | zfs receive "+P+"/copy", 1, "",
			"cannot receive new filesystem stream: destination '"+P+"/copy' exists\nmust specify -F to overwrite it")
		run(t, "zfs send "+P+"/jails/templates/base@v1 | zfs receive -u "+P+"/unmounted")
		if got := run(t, "zfs get -H -o value mounted "+P+"/unmounted"); got != "no\n" {
			t.Errorf("receive -u mounted it: %q", got)
		}
	})

	t.Run("promote", func(t *testing.T) {
		run(t, "zfs promote "+P+"/jails/blue")
		if got := run(t, "zfs get -H -o value origin "+P+"/jails/templates/base "+P+"/jails/blue"); got != "-\n"+P+"/jails/blue@v1\n" {
			t.Errorf("after promote: %q", got)
		}
		run(t, "zfs promote "+P+"/jails/templates/base")
	})

	t.Run("mount", func(t *testing.T) {
		dir := t.TempDir()
		run(t, "zfs create -o canmount=noauto -o mountpoint="+dir+"/be "+P+"/be")
		if got := run(t, "zfs get -H -o value mounted "+P+"/be"); got != "no\n" {
			t.Errorf("canmount=noauto dataset mounted on create: %q", got)
		}
		run(t, "zfs mount "+P+"/be")
		expect(t, "zfs mount "+P+"/be", 1, "", "cannot mount '"+P+"/be': filesystem already mounted")
		if got := run(t, "zfs mount"); !strings.Contains(got, P+"/be") {
			t.Errorf("zfs mount does not list it: %q", got)
		}
		run(t, "zfs set mountpoint="+dir+"/moved "+P+"/be")
		if got := run(t, "zfs get -H -o value mounted "+P+"/be; mountpoint -q "+dir+"/moved && echo moved"); got != "yes\nmoved\n" {
			t.Errorf("after moving a mounted dataset: %q", got)
		}
		run(t, retry("zfs unmount "+P+"/be"))
		expect(t, "zfs unmount "+P+"/be", 1, "", "cannot unmount '"+P+"/be': not currently mounted")
		run(t, "zfs set mountpoint=legacy "+P+"/be")
		expect(t, "zfs mount "+P+"/be", 1, "", "cannot mount '"+P+"/be': legacy mountpoint")
	})

	t.Run("zpool", func(t *testing.T) {
		run(t, "zpool set bootfs="+P+"/web "+P)
		if got := run(t, "zpool list -H -o name,bootfs "+P); got != P+"\t"+P+"/web\n" {
			t.Errorf("bootfs: %q", got)
		}
		expect(t, "zpool get -H -o value bootfs "+P, 2, "", "invalid property '-H'")
	})
}
