package service

import (
	"testing"

	"github.com/orch-dev/orch/modules/internal/facttest"
)

// TestFactFixtures parses the recorded outputs of the service fact: Debian
// 12 with sysvinit and with systemd (captured), Ubuntu 24.04 and FreeBSD 14
// (transcribed).
func TestFactFixtures(t *testing.T) {
	facttest.Check(t, []string{FactName}, []string{"debian12", "ubuntu2404", "freebsd14"})
}

// TestCapture is how the Debian fixtures were recorded: sysvinit in a lab
// image container, systemd in a lab image container booted with systemd
// (see facttest.Capture).
func TestCapture(t *testing.T) { facttest.Capture(t) }
