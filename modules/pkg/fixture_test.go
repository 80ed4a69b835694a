package pkg

import (
	"testing"

	"github.com/orch-dev/orch/modules/internal/facttest"
)

// TestFactFixtures parses the recorded outputs of the pkg facts: Debian 12
// (captured), Ubuntu 24.04 and FreeBSD 14 (transcribed).
func TestFactFixtures(t *testing.T) {
	facttest.Check(t, []string{FactInstalled, FactCandidate, FactCache}, []string{"debian12", "ubuntu2404", "freebsd14"})
}

// TestCapture is how the Debian fixtures were recorded, in a lab image
// container (see facttest.Capture).
func TestCapture(t *testing.T) { facttest.Capture(t) }
