package check

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
)

func dnsCheck(servers any, qname string, expect any) *dnsCall {
	return &dnsCall{Servers: servers, Qname: qname, Qtype: "A", Expect: expect, Port: 53, Tries: 3, Interval: time.Millisecond}
}

func TestDNSPassesOnEveryServer(t *testing.T) {
	a := startBind(t, "www IN A 192.0.2.80")
	b := startBind(t, "www IN A 192.0.2.80")
	host, port, _ := net.SplitHostPort(b.addr)
	// One server as an address string, the other as a host whose address
	// gets the port argument.
	c := dnsCheck([]any{a.addr, &inventory.Host{Name: "ns2", Address: host}}, "www.example.test", "192.0.2.80")
	c.Port, _ = strconv.Atoi(port)
	var rec recorder
	res, err := run(t, context.Background(), c, rec.env(false))
	if err != nil {
		t.Fatal(err)
	}
	if res["tries"] != 1 || rec.statuses() != "1:ok 1:ok" {
		t.Fatalf("tries = %v, events %s; want one try, one ok event per server", res["tries"], rec.statuses())
	}
	want := map[string]any{a.addr: []string{"192.0.2.80"}, b.addr: []string{"192.0.2.80"}}
	if !reflect.DeepEqual(res["answers"], want) {
		t.Errorf("answers = %v, want %v", res["answers"], want)
	}
	if tr := rec.last(); tr.Check != "check.dns" || tr.Target != b.addr || !strings.Contains(tr.Msg, "[192.0.2.80] (over udp)") {
		t.Errorf("last event = %+v", tr)
	}
}

func TestDNSFailureSaysWhatEachServerAnswered(t *testing.T) {
	good := startBind(t, "www IN A 192.0.2.80")
	wrong := startBind(t, "www IN A 192.0.2.81")
	var rec recorder
	_, err := run(t, context.Background(), dnsCheck([]any{good.addr, wrong.addr}, "www.example.test", "192.0.2.80"), rec.env(false))
	wantErr(t, err, "www.example.test A: 1 of 2 targets failed after 3 tries: "+wrong.addr+": want [192.0.2.80], got [192.0.2.81] (over udp)")
	if strings.Contains(err.Error(), good.addr) {
		t.Errorf("the error names the server that answered right: %v", err)
	}
	if got := rec.statuses(); got != "1:ok 1:failed 2:ok 2:failed 3:ok 3:failed" {
		t.Errorf("events %s", got)
	}

	rec = recorder{}
	_, err = run(t, context.Background(), dnsCheck(good.addr, "nope.example.test", nil), rec.env(false))
	wantErr(t, err, good.addr+": want any A record, got rcode NXDOMAIN")

	// Nothing listens on a closed port: the try fails at once, with the reason.
	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	c := dnsCheck(closed, "www.example.test", "192.0.2.80")
	c.Tries = 1
	_, err = run(t, context.Background(), c, rec.env(false))
	wantErr(t, err, "www.example.test A: failed after 1 try: "+closed+": no answer over udp")
}

func TestDNSRetriesUntilTheServerAnswersRight(t *testing.T) {
	ns := startBind(t, "www IN A 192.0.2.81")
	var rec recorder
	rec.on = func(tr modules.CheckTry) {
		if tr.Try == 2 && tr.Status == "failed" {
			ns.setRecords("www IN A 192.0.2.80") // the swap lands between tries 2 and 3
		}
	}
	c := dnsCheck(ns.addr, "www.example.test", "192.0.2.80")
	c.Tries = 5
	res, err := run(t, context.Background(), c, rec.env(false))
	if err != nil {
		t.Fatal(err)
	}
	if res["tries"] != 3 || rec.statuses() != "1:failed 2:failed 3:ok" {
		t.Fatalf("tries = %v, events %s; want 2 failed tries and then a passing one", res["tries"], rec.statuses())
	}
	if msg := rec.tries[0].Msg; msg != "want [192.0.2.80], got [192.0.2.81] (over udp)" {
		t.Errorf("first try's message = %q", msg)
	}
}

func TestDNSTruncatedAnswerIsAskedAgainOverTCP(t *testing.T) {
	// 100 addresses need about 1.6 kB: more than the 1232-byte UDP buffer.
	var records []string
	var want []any
	for i := range 100 {
		ip := fmt.Sprintf("198.51.100.%d", i+1)
		records = append(records, "big IN A "+ip)
		want = append(want, ip)
	}
	ns := startBind(t, strings.Join(records, "\n"))
	var rec recorder
	res, err := run(t, context.Background(), dnsCheck(ns.addr, "big.example.test", want), rec.env(false))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res["answers"].(map[string]any)[ns.addr].([]string)); got != 100 {
		t.Errorf("%d records came back, want all 100", got)
	}
	if msg := rec.last().Msg; !strings.HasSuffix(msg, "(over tcp, after a truncated udp answer)") {
		t.Errorf("event message %q does not say the answer came over TCP", msg)
	}
}

func TestDNSComparesRecordSetsByMeaning(t *testing.T) {
	ns := startBind(t, `www IN A 192.0.2.80
www IN A 192.0.2.81
@ IN MX 10 mail
mail IN A 192.0.2.25
v6 IN AAAA 2001:db8::1
txt IN TXT "hello " "world"
alias IN CNAME www`)
	for _, tc := range []struct {
		qname, qtype string
		expect       any
	}{
		{"www.example.test", "A", []any{"192.0.2.81", "192.0.2.80", "192.0.2.80"}}, // a set: order and repeats do not matter
		{"example.test", "MX", "10 MAIL.example.test"},
		{"v6.example.test", "AAAA", "2001:0db8:0::1"},
		{"txt.example.test", "TXT", "hello world"},
		{"alias.example.test", "CNAME", "www.example.test."},
		{"alias.example.test", "A", nil},       // any answer: BIND follows the CNAME in-zone
		{"mail.example.test", "AAAA", []any{}}, // an empty set: no AAAA records
		{"www.example.test", "A", []any{"192.0.2.80", "192.0.2.81"}},
	} {
		t.Run(tc.qname+"/"+tc.qtype, func(t *testing.T) {
			c := dnsCheck(ns.addr, tc.qname, tc.expect)
			c.Qtype, c.Tries = tc.qtype, 1
			var rec recorder
			if _, err := run(t, context.Background(), c, rec.env(false)); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A subset is not the set.
	c := dnsCheck(ns.addr, "www.example.test", "192.0.2.80")
	c.Tries = 1
	var rec recorder
	_, err := run(t, context.Background(), c, rec.env(false))
	wantErr(t, err, "want [192.0.2.80], got [192.0.2.80, 192.0.2.81]")
}

func TestChecksSkipHostsNotCreatedYetUnderCheck(t *testing.T) {
	ns := startBind(t, "www IN A 192.0.2.80")
	next := &inventory.Host{Name: "ns1-next", Address: inventory.NotCreated}
	var rec recorder
	res, err := run(t, context.Background(), dnsCheck([]any{next, ns.addr}, "www.example.test", "192.0.2.80"), rec.env(true))
	if err != nil {
		t.Fatal(err)
	}
	// The real server is checked in check mode too; the placeholder only reported.
	if res["tries"] != 1 || rec.statuses() != "0:skipped 1:ok" {
		t.Fatalf("tries = %v, events %s", res["tries"], rec.statuses())
	}
	if tr := rec.tries[0]; tr.Target != "ns1-next" || tr.Msg != "would check www.example.test A: ns1-next is not created yet" {
		t.Errorf("skip event = %+v", tr)
	}

	for _, c := range []modules.Call{
		dnsCheck(next, "www.example.test", "192.0.2.80"),
		&httpCall{URL: "http://" + inventory.NotCreated + "/", Status: 200, Tries: 3},
		&tcpCall{Address: inventory.NotCreated + ":53", Tries: 3},
	} {
		rec = recorder{}
		res, err := run(t, context.Background(), c, rec.env(true))
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if res["tries"] != 0 || rec.statuses() != "0:skipped" || !strings.HasPrefix(rec.last().Msg, "would check") {
			t.Errorf("%T: tries = %v, events %s (%q)", c, res["tries"], rec.statuses(), rec.last().Msg)
		}
		// Outside check mode a placeholder is a mistake, not a pass.
		_, err = run(t, context.Background(), c, rec.env(false))
		wantErr(t, err, "is not created yet")
	}
}

func TestCheckStopsWhenTheContextEnds(t *testing.T) {
	ns := startBind(t, "www IN A 192.0.2.81")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rec recorder
	rec.on = func(modules.CheckTry) { cancel() }
	c := dnsCheck(ns.addr, "www.example.test", "192.0.2.80")
	c.Tries, c.Interval = 100, time.Hour // only the cancel can end the wait
	_, err := run(t, ctx, c, rec.env(false))
	wantErr(t, err, "stopped after 1 try (context canceled)", "want [192.0.2.80], got [192.0.2.81]")
	if rec.statuses() != "1:failed" {
		t.Errorf("events %s", rec.statuses())
	}
}

func TestSetDiffNamesWhatIsMissingFromLargeSets(t *testing.T) {
	var want []string
	for i := range 20 {
		want = append(want, fmt.Sprintf("198.51.100.%02d", i))
	}
	got := append([]string{"192.0.2.1"}, want[:10]...)
	if d := setDiff(want, got); d != "want 20 records, got 11: missing [198.51.100.10, 198.51.100.11, 198.51.100.12, 198.51.100.13, 198.51.100.14, 198.51.100.15, 198.51.100.16, 198.51.100.17, ... (10 in all)], unexpected [192.0.2.1]" {
		t.Errorf("setDiff = %q", d)
	}
	if d := setDiff([]string{"a"}, nil); d != "want [a], got no records" {
		t.Errorf("setDiff = %q", d)
	}
}
