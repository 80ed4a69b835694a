package lab_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linode/linodego"
	"gopkg.in/yaml.v3"

	"github.com/orch-dev/orch/internal/shell"
	"github.com/orch-dev/orch/lab"
)

func linodeClient(t *testing.T, l *lab.Lab) *linodego.Client {
	t.Helper()
	env := l.Env()
	c := linodego.NewClient(&http.Client{Timeout: 2 * time.Minute})
	c.SetBaseURL(env["LINODE_URL"])
	c.SetAPIVersion("v4")
	c.SetToken(env["LINODE_TOKEN"])
	return &c
}

func dnsInstances(t *testing.T, c *linodego.Client) []linodego.Instance {
	t.Helper()
	list, err := c.ListInstances(context.Background(), linodego.NewListOptions(0, `{"tags":"dns"}`))
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list, func(a, b linodego.Instance) int { return strings.Compare(a.Label, b.Label) })
	return list
}

// digThrough asks server for the probe name from a lab container, retrying
// while a just-started server or a reloaded proxy settles.
func digThrough(t *testing.T, from, server, flags string) string {
	t.Helper()
	script := fmt.Sprintf("dig +short +time=1 +tries=1 %s @%s %s A", flags, server, lab.ProbeName)
	var got string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = runAllowFail(t, from, script); got == lab.ProbeValue {
			break
		}
	}
	return got
}

// TestNameServerSwap does steps 1 and 4 to 7 of the DNS swap by hand
// against the lab, with linodego for the cloud calls, for ns1: the lab's
// name servers are Linode instances a plan can list, delete and rename.
func TestNameServerSwap(t *testing.T) {
	l := needLab(t)
	c := linodeClient(t, l)
	ctx := context.Background()
	st := status(t)

	before := dnsInstances(t, c)
	if len(before) != 2 || before[0].Label != "ns1" || before[1].Label != "ns2" {
		t.Fatalf("instances tagged dns: %+v", before)
	}
	for _, in := range before {
		if len(in.IPv4) != 1 || in.IPv4[0].String() != st[in.Label].Address || !slices.Equal(in.Tags, []string{"dns"}) {
			t.Errorf("%s: API says %v %v, the lab says %+v", in.Label, in.IPv4, in.Tags, st[in.Label])
		}
		if !slices.Equal(st[in.Label].Groups, []string{"dns"}) {
			t.Errorf("%s: groups %v, want [dns]", in.Label, st[in.Label].Groups)
		}
	}
	ns1, ns2 := before[0], before[1]

	// 1. Create ns1-next, serving the zone ns2 serves.
	ns2c := testOpts.Prefix + "-ns2"
	userData, _ := yaml.Marshal(map[string]any{
		"write_files": []map[string]string{
			{"path": "/etc/bind/named.conf.local", "content": execIn(t, ns2c, "cat /etc/bind/named.conf.local") + "\n"},
			{"path": "/etc/bind/db." + lab.Zone, "content": execIn(t, ns2c, "cat /etc/bind/db."+lab.Zone) + "\n"},
		},
		"runcmd": []string{"update-rc.d named enable"},
	})
	pub, err := os.ReadFile(l.KeyPath() + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	next, err := c.CreateInstance(ctx, linodego.InstanceCreateOptions{
		Label: "ns1-next", Region: "lab", Type: "g6-nanode-1", Image: "linode/debian12", Tags: []string{"dns"},
		AuthorizedKeys: []string{strings.TrimSpace(string(pub))},
		Metadata:       &linodego.InstanceMetadataOptions{UserData: base64.StdEncoding.EncodeToString(append([]byte("#cloud-config\n"), userData...))},
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); next.Status != linodego.InstanceRunning; time.Sleep(100 * time.Millisecond) {
		if next, err = c.GetInstance(ctx, next.ID); err != nil || time.Now().After(deadline) || next.Status == linodego.InstanceOffline {
			t.Fatalf("ns1-next did not start: %+v %v", next, err)
		}
	}
	nextAddr := next.IPv4[0].String()
	if nextAddr == ns1.IPv4[0].String() || nextAddr == ns2.IPv4[0].String() {
		t.Fatalf("ns1-next got an address in use: %s", nextAddr)
	}
	probe := testOpts.Prefix + "-lb1"
	if got := digThrough(t, probe, nextAddr, ""); got != lab.ProbeValue {
		t.Fatalf("ns1-next answers %q, want %s", got, lab.ProbeValue)
	}

	// 4. Point the load balancers at ns1-next and ns2, as nginx.upstream
	// will: rewrite the included file, validate, reload.
	upstream := fmt.Sprintf("upstream dns {\n\tserver %s:53;\n\tserver %s:53;\n}\n", nextAddr, ns2.IPv4[0])
	for _, lb := range []string{"lb1", "lb2"} {
		execIn(t, testOpts.Prefix+"-"+lb, fmt.Sprintf("printf '%%s' %s > %[2]s.new && mv %[2]s.new %[2]s && nginx -t -q && service nginx reload >/dev/null",
			shell.Quote(upstream), lab.UpstreamPath))
	}
	// 5. DNS through the load balancers.
	for _, lb := range []string{"lb1", "lb2"} {
		for _, flags := range []string{"", "+tcp"} {
			if got := digThrough(t, probe, st[lb].Address, flags); got != lab.ProbeValue {
				t.Errorf("dig %s @%s: %q", flags, lb, got)
			}
		}
	}
	// 6. Delete the old server; 7. rename the new one.
	if err := c.DeleteInstance(ctx, ns1.ID); err != nil {
		t.Fatal(err)
	}
	renamed, err := c.RenameInstance(ctx, next.ID, "ns1")
	if err != nil {
		t.Fatal(err)
	}
	if renamed.Label != "ns1" || renamed.ID != next.ID || renamed.IPv4[0].String() != nextAddr {
		t.Errorf("renamed: %+v", renamed)
	}

	after := dnsInstances(t, c)
	if len(after) != 2 || after[0].Label != "ns1" || after[0].ID != next.ID || after[1].ID != ns2.ID {
		t.Fatalf("instances tagged dns after the swap: %+v", after)
	}
	st = status(t)
	if st["ns1"].Address != nextAddr || !slices.Equal(st["ns1"].Groups, []string{"dns"}) {
		t.Errorf("ns1 after the swap: %+v, want %s in group dns", st["ns1"], nextAddr)
	}
	if _, ok := st["ns1-next"]; ok {
		t.Error("ns1-next is still listed")
	}
	if got, err := sshRun(nextAddr, l.KnownHostsPath(), l.KeyPath(), "hostname"); err != nil || got != "ns1" {
		t.Errorf("ssh ns1 after the swap: %q %v", got, err)
	}
	if got := digThrough(t, probe, st["lb2"].Address, ""); got != lab.ProbeValue {
		t.Errorf("dig @lb2 after the swap: %q", got)
	}
}
