package standin_test

import (
	"net/netip"
	"testing"

	"github.com/orch-dev/orch/lab/standin/standintest"
)

// testHost is a stand-in host for one test (lab/standin/standintest, on a
// docker network of its own), with the short helpers these tests use.
type testHost struct {
	*standintest.Host
	t      *testing.T
	subnet netip.Prefix
}

// startHost boots a fresh stand-in host for t and removes it when t ends.
func startHost(t *testing.T) *testHost {
	t.Helper()
	h := standintest.Start(t, "orch-standin")
	return &testHost{Host: h, t: t, subnet: h.Subnet}
}

// with returns h reporting to t (a subtest).
func (h *testHost) with(t *testing.T) *testHost {
	return &testHost{Host: h.Host.With(t), t: t, subnet: h.subnet}
}

func addr(subnet netip.Prefix, host int) string { return standintest.Addr(subnet, host) }

// result is a command's outcome on the host.
type result struct {
	stdout, stderr string
	exit           int
}

// run runs script on the host through docker exec.
func (h *testHost) run(script string) result {
	h.t.Helper()
	out, exit, stderr := h.Run(script)
	return result{out, stderr, exit}
}
