// Package netnstest gives a test a network namespace of its own, joined to
// the test's namespace by a veth pair, so that a server started inside it
// (sshdtest.Options.NetNS) is reached over a real link that the test can
// cut: packets then vanish, as on a dead network path, instead of being
// refused. It needs root and ip(8) and iptables(8); without them the test
// skips (or fails under ORCH_TEST_REQUIRE).
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/orch-dev/orch/testkit/require"
)

// NS is a network namespace with one veth link to the test's namespace.
type NS struct {
	Name   string // for ip netns exec
	IP     string // the address inside the namespace
	HostIP string // the address on the test's side of the link
	hostIf string
}

// New creates a namespace for the test and removes it when the test ends.
// Names and addresses come from the process ID and n, so parallel test
// processes (and several namespaces in one test) do not collide.
func New(t testing.TB, n int) *NS {
	t.Helper()
	if os.Geteuid() != 0 {
		require.Missing(t, "netnstest: network namespaces need root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			require.Missingf(t, "netnstest: %s not installed (apt-get install iproute2 iptables)", tool)
		}
	}
	id := os.Getpid()%4000*16 + n%16 // a /30 per namespace in 10.200.0.0/14
	ns := &NS{
		Name:   fmt.Sprintf("orch-test-%d-%d", os.Getpid(), n),
		hostIf: fmt.Sprintf("ot%dh%d", os.Getpid()%100000, n%16),
		HostIP: subnetIP(id, 1),
		IP:     subnetIP(id, 2),
	}
	inside := fmt.Sprintf("ot%dn%d", os.Getpid()%100000, n%16)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", ns.hostIf).Run()
		exec.Command("ip", "netns", "del", ns.Name).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", ns.Name},
		{"link", "add", ns.hostIf, "type", "veth", "peer", "name", inside},
		{"link", "set", inside, "netns", ns.Name},
		{"addr", "add", ns.HostIP + "/30", "dev", ns.hostIf},
		{"link", "set", ns.hostIf, "up"},
		{"netns", "exec", ns.Name, "ip", "addr", "add", ns.IP + "/30", "dev", inside},
		{"netns", "exec", ns.Name, "ip", "link", "set", inside, "up"},
		{"netns", "exec", ns.Name, "ip", "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			require.Missingf(t, "netnstest: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return ns
}

// subnetIP is host h of the /30 number id in 10.200.0.0/14.
func subnetIP(id, h int) string {
	v := 10<<24 | 200<<16 | id*4 + h
	return fmt.Sprintf("%d.%d.%d.%d", v>>24&0xff, v>>16&0xff, v>>8&0xff, v&0xff)
}

// Cut drops every packet in and out of the namespace, silently: peers see
// neither a reset nor an ICMP error, only silence.
func (ns *NS) Cut(t testing.TB) {
	t.Helper()
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		if out, err := exec.Command("ip", "netns", "exec", ns.Name, "iptables", "-I", chain, "-j", "DROP").CombinedOutput(); err != nil {
			t.Fatalf("netnstest: cutting %s: %v: %s", ns.Name, err, out)
		}
	}
}
