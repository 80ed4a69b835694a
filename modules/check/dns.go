package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
)

func init() {
	modules.Register(modules.Info{ID: "check.dns", New: func() any { return new(dnsCall) }, Doc: `Queries DNS servers from the controller until every one answers with the expected record set.

Each server gets one query per try (miekg/dns, over UDP with an EDNS0 buffer
of 1232 bytes, asking for recursion; sent once more after 1 s without an
answer, as stub resolvers resend; a truncated UDP answer is asked again
over TCP, in the same try). A server passes when it answers NOERROR and the
records of qtype in its answer section are exactly expect, compared as a
set: addresses as addresses ("2001:db8::1" equals "2001:0db8:0::1"), TXT as
its joined strings, other types as their rdata text with names compared
without case or the final dot ("10 mail.example.test" equals
"10 MAIL.example.test."). With expect=None any NOERROR answer with at least
one record of qtype passes. A query that gets no answer within 2 seconds
fails that try. The result's answers maps each server to the records it
returned.

` + retryDoc})
}

// udpResend is when an unanswered UDP query is sent once more, within
// queryTimeout, as stub resolvers resend: a datagram lost on the way then
// costs a second rather than the try. nginx's UDP stream proxy loses the
// answers an old worker has in flight when a reload shuts it down (see
// nginx.upstream), so a guard through the load balancers needs it.
const udpResend = time.Second

// queryTimeout bounds one query (and its TCP retry) to one server.
const queryTimeout = 2 * time.Second

// ednsBufSize is the UDP payload size offered (the DNS flag day 2020 value).
const ednsBufSize = 1232

type dnsCall struct {
	Servers  any           `arg:"servers,required" doc:"a host (its address is queried) or an address (\"192.0.2.53\", \"127.0.0.1:5353\", \"[2001:db8::53]:53\"), or a list of them"`
	Qname    string        `arg:"qname,required" doc:"the name to look up"`
	Qtype    string        `arg:"qtype" default:"A" doc:"the record type: A, AAAA, CNAME, MX, NS, TXT, SOA, SRV, PTR, ..."`
	Expect   any           `arg:"expect" doc:"the wanted record set: one rdata string or a list of them; None passes any answer with a record of qtype"`
	Port     int           `arg:"port" default:"53" doc:"the port of servers given without one"`
	Tries    int           `arg:"tries" default:"10" doc:"tries before the check fails"`
	Interval time.Duration `arg:"interval" default:"1s" doc:"wait between tries"`

	targets []target
	qtype   uint16
	expect  []string // normalized and sorted; nil means any answer
}

var (
	_ modules.Call      = (*dnsCall)(nil)
	_ modules.Validator = (*dnsCall)(nil)
)

func (c *dnsCall) Validate(*modules.Env) error {
	if err := validateRetry(c.Tries, c.Interval); err != nil {
		return err
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("port %d is out of range", c.Port)
	}
	if _, ok := dns.IsDomainName(c.Qname); !ok || c.Qname == "" {
		return fmt.Errorf("qname %q is not a domain name", c.Qname)
	}
	qt, ok := dns.StringToType[strings.ToUpper(c.Qtype)]
	if !ok {
		return fmt.Errorf("qtype %q is not a DNS record type", c.Qtype)
	}
	c.qtype = qt
	targets, err := c.servers()
	if err != nil {
		return fmt.Errorf("servers: %w", err)
	}
	c.targets = targets
	want, err := stringSet(c.Expect)
	if err != nil {
		return fmt.Errorf("expect: %w", err)
	}
	if want != nil {
		c.expect = []string{}
		for _, w := range want {
			n, err := normalizeRdata(c.qtype, w)
			if err != nil {
				return fmt.Errorf("expect: %w", err)
			}
			c.expect = append(c.expect, n)
		}
		slices.Sort(c.expect)
		c.expect = slices.Compact(c.expect)
	}
	return nil
}

// servers reads the servers argument: hosts or address strings.
func (c *dnsCall) servers() ([]target, error) {
	items, ok := c.Servers.([]any)
	if !ok {
		items = []any{c.Servers}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("no servers given")
	}
	var out []target
	seen := map[string]bool{}
	for _, it := range items {
		var t target
		switch x := it.(type) {
		case *inventory.Host:
			if x.Address == inventory.NotCreated {
				t = target{name: x.Name, placeholder: true, host: x.Name}
				break
			}
			addr := x.Address
			if addr == "" {
				addr = x.Name
			}
			t = target{name: withPort(addr, c.Port)}
		case string:
			if t = targetOf(x); !t.placeholder {
				if x == "" {
					return nil, fmt.Errorf("an empty address")
				}
				t.name = withPort(x, c.Port)
			}
		default:
			return nil, fmt.Errorf("want hosts or address strings, got %T", it)
		}
		if !seen[t.name] {
			seen[t.name] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// withPort adds the default port to an address that has none.
func withPort(addr string, port int) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(port))
}

// stringSet reads a string or a list of strings; None gives nil.
func stringSet(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{x}, nil
	case []any:
		out := []string{}
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want strings, got %T", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, got %T", v)
}

func (c *dnsCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	p := &prober{id: "check.dns", what: c.Qname + " " + dns.TypeToString[c.qtype], tries: c.Tries, interval: c.Interval, try: c.query}
	res, err := p.run(ctx, env, c.targets)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ok": true, "tries": res.tries, "answers": res.values}, nil
}

// query asks one server once, over TCP again when the UDP answer is truncated.
func (c *dnsCall) query(ctx context.Context, server string) outcome {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(c.Qname), c.qtype)
	m.SetEdns0(ednsBufSize, false)
	cl := &dns.Client{Net: "udp", UDPSize: ednsBufSize}
	first, cancelFirst := context.WithTimeout(ctx, udpResend)
	r, _, err := cl.ExchangeContext(first, m, server)
	cancelFirst()
	via := "udp"
	if ne, ok := err.(net.Error); ok && ne.Timeout() && ctx.Err() == nil {
		via = "udp, sent again after " + udpResend.String()
		r, _, err = cl.ExchangeContext(ctx, m, server)
	}
	if err == nil && r.Truncated {
		cl.Net, via = "tcp", "tcp, after a truncated udp answer"
		r, _, err = cl.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return outcome{msg: fmt.Sprintf("no answer over %s: %v", via, err)}
	}
	if r.Rcode != dns.RcodeSuccess {
		return outcome{msg: fmt.Sprintf("want %s, got rcode %s (over %s)", c.wantString(), dns.RcodeToString[r.Rcode], via), value: []string{}}
	}
	got := []string{}
	for _, rr := range r.Answer {
		if c.qtype == dns.TypeANY || rr.Header().Rrtype == c.qtype {
			got = append(got, rdata(rr))
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	switch {
	case c.expect == nil && len(got) == 0:
		return outcome{msg: fmt.Sprintf("want %s, got no records (over %s)", c.wantString(), via), value: got}
	case c.expect != nil && !slices.Equal(got, c.expect):
		return outcome{msg: fmt.Sprintf("%s (over %s)", setDiff(c.expect, got), via), value: got}
	}
	return outcome{ok: true, msg: fmt.Sprintf("%s (over %s)", setString(got), via), value: got}
}

func (c *dnsCall) wantString() string {
	if c.expect == nil {
		return "any " + dns.TypeToString[c.qtype] + " record"
	}
	return setString(c.expect)
}

func setString(s []string) string {
	if len(s) == 0 {
		return "no records"
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// setLimit is how many records a message lists in full.
const setLimit = 8

// setDiff says how two sorted record sets differ: both in full when they
// are small, otherwise what is missing and what is unexpected.
func setDiff(want, got []string) string {
	if len(want) <= setLimit && len(got) <= setLimit {
		return fmt.Sprintf("want %s, got %s", setString(want), setString(got))
	}
	var missing, extra []string
	for _, w := range want {
		if _, found := slices.BinarySearch(got, w); !found {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if _, found := slices.BinarySearch(want, g); !found {
			extra = append(extra, g)
		}
	}
	return fmt.Sprintf("want %d records, got %d: missing %s, unexpected %s", len(want), len(got), shortList(missing), shortList(extra))
}

func shortList(s []string) string {
	if len(s) > setLimit {
		return fmt.Sprintf("[%s, ... (%d in all)]", strings.Join(s[:setLimit], ", "), len(s))
	}
	return setString(s)
}

// rdata renders a record's data in the form expect is compared in.
func rdata(rr dns.RR) string {
	switch x := rr.(type) {
	case *dns.A:
		a, _ := netip.AddrFromSlice(x.A.To4())
		return a.String()
	case *dns.AAAA:
		a, _ := netip.AddrFromSlice(x.AAAA)
		return a.String()
	case *dns.TXT:
		return strings.Join(x.Txt, "")
	}
	return canonText(strings.TrimPrefix(rr.String(), rr.Header().String()))
}

// normalizeRdata brings an expected rdata string into the form rdata gives.
func normalizeRdata(qtype uint16, s string) (string, error) {
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || a.Is4() != (qtype == dns.TypeA) {
			return "", fmt.Errorf("%q is not an %s address", s, dns.TypeToString[qtype])
		}
		return a.String(), nil
	case dns.TypeTXT:
		return s, nil
	}
	return canonText(s), nil
}

// canonText compares names without case or their final dot, and ignores
// how fields are spaced.
func canonText(s string) string {
	fields := strings.Fields(s)
	for i, f := range fields {
		fields[i] = strings.TrimSuffix(strings.ToLower(f), ".")
	}
	return strings.Join(fields, " ")
}
