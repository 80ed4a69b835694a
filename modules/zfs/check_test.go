package zfs

import (
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/internal/facttest"
)

// decide checks a task against the facts of a recorded fixture.
func decide(t *testing.T, fixture string, task modules.Task) modules.CheckResponse {
	t.Helper()
	if err := task.(modules.Validator).Validate(nil); err != nil {
		t.Fatalf("validate: %v", err)
	}
	_, vals := facttest.Load(t, FactName, fixture)
	req := modules.CheckRequest{Facts: map[modules.FactKey]any{}}
	for _, k := range task.(modules.FactReader).Facts() {
		v, ok := vals[k.Key]
		if !ok {
			t.Fatalf("fixture %s has no key %s", fixture, k.Key)
		}
		req.Facts[k] = v
	}
	var resp modules.CheckResponse
	task.Check(req, &resp)
	return resp
}

// TestCheckFixtures decides tasks from the recorded facts of zfs-fuse and
// FreeBSD: what changes, why, with which commands, and what is refused.
func TestCheckFixtures(t *testing.T) {
	const fuse, bsd = "zfsfuse-layout", "freebsd14-jails"
	fx, _ := facttest.Load(t, FactName, fuse)
	P := poolOf(fx.Keys[0]) // the pool zfstest named when it was recorded
	for _, c := range []struct {
		about    string
		fixture  string
		task     modules.Task
		changed  bool
		reason   string // a part of the reason, or of the error
		commands []string
		err      bool
	}{
		{"other units are no change", bsd, &Dataset{Name: "zroot/jails/www", State: "present", Properties: map[string]any{"quota": "10G", "compression": "zstd", "user:role": "web"}},
			false, "zroot/jails/www exists with compression=zstd, quota=10G, user:role=web set locally", nil, false},
		{"GiB and bytes are no change", bsd, &Dataset{Name: "zroot/jails/www", State: "present", Properties: map[string]any{"quota": "10GiB"}},
			false, "exists", nil, false},
		{"a bigger quota is set", bsd, &Dataset{Name: "zroot/jails/www", State: "present", Properties: map[string]any{"quota": "20G"}},
			true, "set quota 10737418240 -> 20G on zroot/jails/www", []string{"zfs set quota=20G zroot/jails/www"}, false},
		{"on is not zstd", bsd, &Dataset{Name: "zroot/jails/www", State: "present", Properties: map[string]any{"compression": "on"}},
			true, "compression zstd -> on", []string{"zfs set compression=on zroot/jails/www"}, false},
		{"inherited is set locally once", bsd, &Dataset{Name: "zroot/ROOT/default", State: "present", Properties: map[string]any{"atime": false, "mountpoint": "/"}},
			true, "atime -> off (not set locally)", []string{"zfs set atime=off zroot/ROOT/default"}, false},
		{"missing dataset is created", bsd, &Dataset{Name: "zroot/jails/www2", State: "present", Properties: map[string]any{"quota": 1073741824}},
			true, "create file system zroot/jails/www2", []string{"zfs create -p -o quota=1073741824 zroot/jails/www2"}, false},
		{"missing parents", fuse, &Dataset{Name: P + "/new/child", State: "present"},
			true, "(and its missing parents)", []string{"zfs create -p " + P + "/new/child"}, false},
		{"missing pool", fuse, &Dataset{Name: "orchnosuchpool/x", State: "present"},
			true, "(pool orchnosuchpool does not exist yet)", []string{"zfs create -p orchnosuchpool/x"}, false},
		{"absent and missing", bsd, &Dataset{Name: "zroot/jails/www2", State: "absent"},
			false, "zroot/jails/www2 does not exist", nil, false},
		{"destroy refused, dependent clone named", bsd, &Dataset{Name: "zroot/jails/base", State: "absent"},
			false, "refusing to destroy dataset zroot/jails/base: it has children and snapshots zroot/jails/base@14.1 and dependent clones zroot/jails/www, zroot/jails/www@pre-upgrade; set recursive=True", nil, true},
		{"recursive destroy with a clone is -R", bsd, &Dataset{Name: "zroot/jails/base", State: "absent", Recursive: true},
			true, "destroy zroot/jails/base with zroot/jails/base@14.1, zroot/jails/www, zroot/jails/www@pre-upgrade (zfs destroy -R)", []string{"_orch_zfs_destroy -R zroot/jails/base"}, false},
		{"recursive destroy without clones is -r", fuse, &Dataset{Name: P + "/www/logs", State: "absent", Recursive: true},
			true, "(zfs destroy -r)", []string{"_orch_zfs_destroy -r " + P + "/www/logs"}, false},
		{"destroy refused, children named", fuse, &Dataset{Name: P + "/www/logs", State: "absent"},
			false, "children and snapshots " + P + "/www/logs@s1;", nil, true},
		{"snapshot destroy refused, clones named", fuse, &Snapshot{Name: P + "/www@s1", State: "absent"},
			false, "dependent clones " + P + "/www-next, " + P + "/www-next@s2, " + P + "/www-next2", nil, true},
		{"snapshot destroy, recursive", fuse, &Snapshot{Name: P + "/www@s1", State: "absent", Recursive: true},
			true, "(zfs destroy -R)", []string{"_orch_zfs_destroy -R " + P + "/www@s1"}, false},
		{"snapshot exists", fuse, &Snapshot{Name: P + "/www/logs@s1", State: "present"},
			false, "snapshot " + P + "/www/logs@s1 exists", nil, false},
		{"recursive snapshot fills in", fuse, &Snapshot{Name: P + "/www@s1", State: "present", Recursive: true},
			true, "take snapshot " + P + "/www/cache@s1", []string{"zfs snapshot " + P + "/www/cache@s1"}, false},
		{"recursive snapshot, none yet", fuse, &Snapshot{Name: P + "/www@s3", State: "present", Recursive: true},
			true, "take snapshot " + P + "/www@s3, " + P + "/www/cache@s3, " + P + "/www/logs@s3", []string{"zfs snapshot -r " + P + "/www@s3"}, false},
		{"clone as it should be", bsd, &Clone{Snapshot: "zroot/jails/base@14.1", Name: "zroot/jails/www", State: "present", Properties: map[string]any{"quota": "10g"}},
			false, "zroot/jails/www exists with quota=10g set locally", nil, false},
		{"clone of another snapshot", fuse, &Clone{Snapshot: P + "/www-next@s2", Name: P + "/www-next", State: "present"},
			false, P + "/www-next exists and is a clone of " + P + "/www@s1, not of " + P + "/www-next@s2", nil, true},
		{"not a clone is never destroyed", fuse, &Clone{Snapshot: P + "/www@s1", Name: P + "/www/logs", State: "absent"},
			false, "is not a clone, not of " + P + "/www@s1: orch is not destroying it", nil, true},
		{"clone with a clone of its own", fuse, &Clone{Snapshot: P + "/www@s1", Name: P + "/www-next", State: "absent"},
			false, "dependent clones " + P + "/www-next2", nil, true},
		{"clone destroyed with -R", fuse, &Clone{Snapshot: P + "/www@s1", Name: P + "/www-next", State: "absent", Recursive: true},
			true, "destroy " + P + "/www-next with " + P + "/www-next@s2, " + P + "/www-next2 (zfs destroy -R)", []string{"_orch_zfs_destroy -R " + P + "/www-next"}, false},
		{"new clone", fuse, &Clone{Snapshot: P + "/www@s1", Name: P + "/www/new", State: "present", Properties: map[string]any{"atime": "off"}},
			true, "clone " + P + "/www@s1 as " + P + "/www/new", []string{"zfs clone -p -o atime=off " + P + "/www@s1 " + P + "/www/new"}, false},
	} {
		t.Run(c.about, func(t *testing.T) {
			resp := decide(t, c.fixture, c.task)
			got := resp.Reason
			if resp.Err != nil {
				got = resp.Err.Error()
			}
			if (resp.Err != nil) != c.err || resp.Changed != c.changed || !strings.Contains(got, c.reason) {
				t.Fatalf("changed=%v err=%v %q; want changed=%v err=%v, containing %q", resp.Changed, resp.Err != nil, got, c.changed, c.err, c.reason)
			}
			var cmds []string
			for _, l := range strings.Split(strings.TrimSuffix(strings.Replace(resp.Apply, destroyHelper, "", 1), "\n"), "\n") {
				if l != "" {
					cmds = append(cmds, l)
				}
			}
			if strings.Join(cmds, "\n") != strings.Join(c.commands, "\n") {
				t.Errorf("commands\n%s\nwant\n%s", strings.Join(cmds, "\n"), strings.Join(c.commands, "\n"))
			}
			if resp.Changed && !strings.HasPrefix(resp.Diff, "--- zfs ") {
				t.Errorf("a change without a diff: %q", resp.Diff)
			}
		})
	}
}

// TestFactErrors: a host without zfs, and a zfs that fails for another
// reason than a missing name, fail the tasks with what was said.
func TestFactErrors(t *testing.T) {
	for out, want := range map[string]string{
		"#nozfs\n": "there is no zfs command on this host",
		"#list\n#exit 1\n#err internal error: failed to initialize ZFS library\n#get\n#exit 1\n": "zfs list failed: internal error: failed to initialize ZFS library",
		"#list\ntank\tfilesystem\t-\n#exit 0\n#get\n#exit 1\n#err permission denied\n":           "zfs get failed: permission denied",
	} {
		vals, err := fact{}.Parse([]byte(out), []string{"tank/www"})
		if err != nil {
			t.Fatal(err)
		}
		req := modules.CheckRequest{Facts: map[modules.FactKey]any{{Fact: FactName, Key: "tank/www"}: vals["tank/www"]}}
		var resp modules.CheckResponse
		(&Dataset{Name: "tank/www", State: "present"}).Check(req, &resp)
		if resp.Err == nil || resp.Err.Error() != want {
			t.Errorf("%q: error %v, want %q", out, resp.Err, want)
		}
		if c := (fact{}).Recheck("tank/www", vals["tank/www"]); c != "false" {
			t.Errorf("%q: a failed fact rechecks with %q", out, c)
		}
	}
	if _, err := (fact{}).Parse([]byte("garbage\n"), []string{"tank/www"}); err == nil {
		t.Error("garbage parsed")
	}
}
