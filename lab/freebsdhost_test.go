package lab_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/lab"
)

// TestFreeBSDHost: bsd1 is a stand-in FreeBSD host reached over SSH with
// its pinned key, with a zroot pool, the jail tools, the base set for jail
// templates, and nginx routing "live" and "test" to the placeholder that
// answers 503 until a release is deployed.
func TestFreeBSDHost(t *testing.T) {
	l := needLab(t)
	st := status(t)
	addr := st[lab.FreeBSDHost].Address
	got, err := sshRun(addr, l.KnownHostsPath(), l.KeyPath(),
		"sysctl -n kern.ostype; zfs list -H -o name zroot; jls -n; test -s /usr/freebsd-dist/base.txz && echo base; service nginx status >/dev/null && echo nginx")
	if err != nil {
		t.Fatalf("ssh bsd1: %v: %s", err, got)
	}
	if got != "FreeBSD\nzroot\nbase\nnginx" {
		t.Errorf("bsd1 said %q", got)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, name := range []string{"live", "test"} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = name
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s on bsd1: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(body), "no release deployed yet") {
			t.Errorf("GET %s on bsd1: %d %q", name, resp.StatusCode, body)
		}
	}
}
