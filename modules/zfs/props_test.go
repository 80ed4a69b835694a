package zfs

import (
	"strings"
	"testing"
)

// TestNiceStrToNum: sizes parse as libzfs's zfs_nicestrtonum parses them
// (lib/libzfs/libzfs_util.c, str2shift), so that the value a user writes
// compares with what zfs get -p prints.
func TestNiceStrToNum(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "512": 512, "1K": 1024, "1k": 1024, "1KB": 1024, "1kib": 1024, "128K": 131072,
		"1G": 1 << 30, "1GiB": 1 << 30, "1gb": 1 << 30, "1.5G": 3 << 29, ".5M": 1 << 19,
		"10T": 10 << 40, "1E": 1 << 60, "2B": 2, "0.0625M": 65536,
	} {
		got, err := niceStrToNum(in)
		if err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "1X", "1BB", "1BiB", "1GG", "1 G", "-1", "16E", "1Z", "99999999999999999999"} {
		if n, err := niceStrToNum(in); err == nil {
			t.Errorf("%q parsed as %d; want an error", in, n)
		}
	}
}

// TestProperties: what each value is compared as, and the refusals.
func TestProperties(t *testing.T) {
	props, err := properties(map[string]any{"quota": "none", "snapshot_limit": "none", "atime": true, "copies": 2, "compression": "on", "user:x": "a b", "mountpoint": "/srv/www"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range props {
		got[p.name] = p.value + "|" + p.exact
	}
	for k, want := range map[string]string{"quota": "none|0", "snapshot_limit": "none|none", "atime": "on|on", "copies": "2|2", "compression": "on|on", "user:x": "a b|a b", "mountpoint": "/srv/www|/srv/www"} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}
	for in, msg := range map[string]map[string]any{
		`"Quota" is not a ZFS property name`:               {"Quota": "1G"},
		`property quota: "1X": invalid numeric suffix "X"`: {"quota": "1X"},
		`userquota@bob" cannot be managed`:                 {"userquota@bob": "1G"},
		`write "/srv/www/" as "/srv/www"`:                  {"mountpoint": "/srv/www/"},
		`volumes are not managed`:                          {"volsize": "1G"},
		`want a string, an integer or a boolean`:           {"quota": 1.5},
		`cannot hold a newline`:                            {"user:x": "a\nb"},
	} {
		if _, err := properties(msg); err == nil || !strings.Contains(err.Error(), in) {
			t.Errorf("%v: error %v, want one saying %s", msg, err, in)
		}
	}
}

// TestValidate: bad arguments are refused before any host is touched,
// naming the argument.
func TestValidate(t *testing.T) {
	cases := map[string]error{
		"name tank is a pool's root file system":                 (&Dataset{Name: "tank", State: "absent"}).Validate(nil),
		"name \"tank/www@s\" is not a ZFS dataset name":          (&Dataset{Name: "tank/www@s", State: "present"}).Validate(nil),
		"name \"/tank\" is not a ZFS dataset name":               (&Dataset{Name: "/tank", State: "present"}).Validate(nil),
		"state \"gone\" is not one of present, absent":           (&Dataset{Name: "tank/www", State: "gone"}).Validate(nil),
		"properties make no sense with state=absent":             (&Dataset{Name: "tank/www", State: "absent", Properties: map[string]any{"atime": "off"}}).Validate(nil),
		"name \"tank/www\" is not a ZFS snapshot name":           (&Snapshot{Name: "tank/www", State: "present"}).Validate(nil),
		"snapshot \"tank/www\" is not a ZFS snapshot name":       (&Clone{Snapshot: "tank/www", Name: "tank/c", State: "present"}).Validate(nil),
		"name other/c is not in the pool of snapshot tank/www@s": (&Clone{Snapshot: "tank/www@s", Name: "other/c", State: "present"}).Validate(nil),
	}
	for want, err := range cases {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
	if err := (&Clone{Snapshot: "tank/www@s", Name: "tank/www-s", State: "present", Properties: map[string]any{"quota": "1G"}}).Validate(nil); err != nil {
		t.Errorf("a good clone: %v", err)
	}
}

// TestParseLocalNewline: a user property whose value holds a newline (set
// by another tool) is read whole, not taken for a broken line.
func TestParseLocalNewline(t *testing.T) {
	local, err := parseLocal("tank/www", []string{"tank/www\tuser:note\tfirst", "second", "tank/www\tatime\toff"})
	if err != nil || local["user:note"] != "first\nsecond" || local["atime"] != "off" {
		t.Fatalf("%q, %v", local, err)
	}
	if _, err := parseLocal("tank/www", []string{"garbage"}); err == nil {
		t.Fatal("a first line that is not the dataset's was accepted")
	}
}
