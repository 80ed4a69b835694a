package lab_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/lab"
)

// TestAptProxy installs a small package on two lab machines: both fetch it
// through the machine's apt proxy, and the second is served from its cache
// (apt-cacher-ng logs "I" for bytes it fetched upstream and "O" for bytes it
// served, per file and client).
func TestAptProxy(t *testing.T) {
	l := needLab(t)
	st := status(t)
	const pkg = "hello"
	deb := "/pool/main/h/" + pkg + "/" + pkg + "_"
	logLines := func(kind, client string) int {
		t.Helper()
		out := execIn(t, lab.AptProxyContainer, "cat /var/log/apt-cacher-ng/apt-cacher.log")
		n := 0
		for _, line := range strings.Split(out, "\n") {
			f := strings.Split(line, "|")
			if len(f) == 5 && f[1] == kind && strings.Contains(f[4], deb) && (client == "" || f[3] == client) {
				n++
			}
		}
		return n
	}
	install := func(host string) {
		t.Helper()
		c := testOpts.Prefix + "-" + host
		if got := execIn(t, c, "cat "+lab.AptProxyConf); !strings.Contains(got, fmt.Sprintf("Acquire::http::Proxy %q;", l.AptProxyURL())) {
			t.Fatalf("%s: %s: %s", host, lab.AptProxyConf, got)
		}
		execIn(t, c, "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq "+pkg+" >/dev/null")
		t.Cleanup(func() { runAllowFail(t, c, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "+pkg+" >/dev/null") })
		if got := execIn(t, c, pkg); got != "Hello, world!" {
			t.Errorf("%s: %s printed %q", host, pkg, got)
		}
	}

	// apt-cacher-ng logs a transfer once it has ended, which may be just
	// after apt has the file. The proxy outlives labs, and a lab may get an
	// earlier lab's subnet, so what counts is what this install adds.
	served := func(host string, before int) int {
		t.Helper()
		n := 0
		for deadline := time.Now().Add(5 * time.Second); n == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			n = logLines("O", st[host].Address) - before
		}
		return n
	}

	before1, before2 := logLines("O", st["lb1"].Address), logLines("O", st["lb2"].Address)
	install("lb1")
	if served("lb1", before1) != 1 {
		t.Fatalf("the proxy did not serve %s to lb1:\n%s", pkg, execIn(t, lab.AptProxyContainer, "tail -20 /var/log/apt-cacher-ng/apt-cacher.log"))
	}
	fetched := logLines("I", "")
	install("lb2")
	if got := served("lb2", before2); got != 1 {
		t.Errorf("the proxy served %s to lb2 %d times, want 1", pkg, got)
	}
	if got := logLines("I", ""); got != fetched {
		t.Errorf("the proxy fetched %s upstream again for lb2 (%d fetches, was %d)", pkg, got, fetched)
	}
	t.Logf("%s: fetched upstream %d time(s) in this proxy's life, served to lb1 and lb2", pkg, fetched)
}
