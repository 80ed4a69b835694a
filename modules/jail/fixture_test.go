package jail

import (
	"testing"

	"github.com/orch-dev/orch/modules/internal/facttest"
)

// TestFactFixtures parses the recorded outputs of the jail fact: FreeBSD 14
// (transcribed from testdata/freebsd) and the lab's stand-in (captured).
func TestFactFixtures(t *testing.T) {
	facttest.Check(t, []string{FactName}, []string{"freebsd14", "standin"})
}

// TestCapture is how the stand-in fixtures were recorded (see
// facttest.Capture): ORCH_CAPTURE_CONTAINER names a running stand-in host.
func TestCapture(t *testing.T) { facttest.Capture(t) }
