package bectl_test

import (
	"os"
	"testing"

	"github.com/orch-dev/orch/lab/standin/standintest"
	"github.com/orch-dev/orch/modules/internal/facttest"
)

// TestRecordStandin records testdata/facts/bectl/standin-*.json from a
// fresh stand-in host with BEs in the state the case names, through
// facttest.Capture. It is a recording tool, not a test: it runs only with
// ORCH_CAPTURE_CASE=standin-temporary.
func TestRecordStandin(t *testing.T) {
	setups := map[string]string{
		// default booted and active, old plain, new pending for the next boot.
		"standin-temporary": "bectl create old && bectl create new && bectl activate -t new",
	}
	name := os.Getenv("ORCH_CAPTURE_CASE")
	setup, ok := setups[name]
	if !ok {
		t.Skip("a recording tool: set ORCH_CAPTURE_CASE to one of standin-temporary")
	}
	h := standintest.Start(t, "orch-bectl-record")
	h.Must(setup)
	t.Setenv("ORCH_CAPTURE_CONTAINER", h.Name)
	t.Setenv("ORCH_CAPTURE_FACT", "bectl")
	t.Setenv("ORCH_CAPTURE_KEYS", "default old new nosuch")
	t.Setenv("ORCH_CAPTURE_SOURCE", "Captured: the lab's FreeBSD stand-in (lab/standin) over zfs-fuse, after: "+setup+" (TestRecordStandin).")
	facttest.Capture(t)
}
