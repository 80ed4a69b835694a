package bectl

import (
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules/internal/facttest"
)

// TestFactFixtures parses the recorded outputs of the bectl fact (FreeBSD
// 14, transcribed from the recordings under testdata/freebsd/bectl, and
// the stand-in's, captured) with the fact's parser.
func TestFactFixtures(t *testing.T) {
	facttest.Check(t, []string{FactName}, []string{"freebsd14", "standin"})
}

// TestCapture is how the stand-in fixtures were recorded (see facttest.Capture).
func TestCapture(t *testing.T) { facttest.Capture(t) }

// TestFactErrors: a host without bectl, or output cut short, is an error
// that says what the module needs.
func TestFactErrors(t *testing.T) {
	for out, want := range map[string]string{
		"#bectl\nsh: bectl: not found\n#exit 127\n#bootfs\nsh: zpool: not found\n#exit 127\n": "needs a FreeBSD host booted from a ZFS boot environment",
		"#bectl\ndefault\tNR\t/\t2.24G\t2023-03-21 13:49\n":                                   "output ends early",
		"#bectl\ndefault\tNRX\t/\t2.24G\t2023-03-21 13:49\n#exit 0\n#bootfs\n#exit 0\n":       "unknown flag",
		"noise\n": "unexpected line",
	} {
		_, err := fact{}.Parse([]byte(out), []string{"default"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): %v, want an error containing %q", out, err, want)
		}
	}
}

// TestStandinMatchesRecording: the stand-in's bectl, captured, and the
// FreeBSD recording of the same state (default booted and active, new
// activated for the next boot) parse to the same decision inputs.
func TestStandinMatchesRecording(t *testing.T) {
	_, rec := facttest.Load(t, FactName, "freebsd14-temporary")
	_, got := facttest.Load(t, FactName, "standin-temporary")
	for _, be := range []string{"default", "new"} {
		r, s := stateOf(rec[be]), stateOf(got[be])
		r.flags, s.flags, r.mountpoint, s.mountpoint = nil, nil, "", ""
		if r.exists != s.exists || r.active != s.active || r.nextBoot != s.nextBoot || r.temporary != s.temporary ||
			r.booted != s.booted || r.nextBootBE != s.nextBootBE || r.temporaryBE != s.temporaryBE || r.root != s.root {
			t.Errorf("%s: recorded %+v, stand-in %+v", be, r, s)
		}
	}
}
