package check

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/orch-dev/orch/modules"
)

// recorder collects the tries a check reports; on, if set, runs for each
// try before the check goes on, which is how tests change a server between
// tries without timing anything.
type recorder struct {
	mu    sync.Mutex
	tries []modules.CheckTry
	on    func(modules.CheckTry)
}

func (r *recorder) env(check bool) *modules.Env {
	return &modules.Env{Check: check, CheckTry: r.add, Logf: func(string, ...any) {}}
}

func (r *recorder) add(t modules.CheckTry) {
	r.mu.Lock()
	r.tries = append(r.tries, t)
	on := r.on
	r.mu.Unlock()
	if on != nil {
		on(t)
	}
}

// statuses renders the tries as "TRY:STATUS" words, in order.
func (r *recorder) statuses() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var w []string
	for _, t := range r.tries {
		w = append(w, fmt.Sprintf("%d:%s", t.Try, t.Status))
	}
	return strings.Join(w, " ")
}

func (r *recorder) last() modules.CheckTry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tries[len(r.tries)-1]
}

// run validates and calls a check as the plan's adapter does.
func run(t *testing.T, ctx context.Context, c modules.Call, env *modules.Env) (map[string]any, error) {
	t.Helper()
	if v, ok := c.(modules.Validator); ok {
		if err := v.Validate(env); err != nil {
			t.Fatalf("validate: %v", err)
		}
	}
	res, err := c.Call(ctx, env)
	if err != nil {
		return nil, err
	}
	return res.(map[string]any), nil
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the check passed; want an error containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestValidateRejectsBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		call modules.Call
		want string
	}{
		{"no tries", &tcpCall{Address: "127.0.0.1:1", Tries: 0}, "tries must be at least 1"},
		{"negative interval", &tcpCall{Address: "127.0.0.1:1", Tries: 1, Interval: -1}, "interval cannot be negative"},
		{"tcp without port", &tcpCall{Address: "127.0.0.1", Tries: 1}, `"127.0.0.1" is not host:port`},
		{"http scheme", &httpCall{URL: "ftp://x/", Status: 200, Tries: 1}, "is not an http:// or https:// URL"},
		{"http status", &httpCall{URL: "http://x/", Status: 20, Tries: 1}, "status 20 is not an HTTP status"},
		{"dns qtype", &dnsCall{Servers: "127.0.0.1", Qname: "a.test", Qtype: "AA", Port: 53, Tries: 1}, `qtype "AA" is not a DNS record type`},
		{"dns expect address", &dnsCall{Servers: "127.0.0.1", Qname: "a.test", Qtype: "A", Expect: "2001:db8::1", Port: 53, Tries: 1}, `"2001:db8::1" is not an A address`},
		{"dns expect type", &dnsCall{Servers: "127.0.0.1", Qname: "a.test", Qtype: "A", Expect: []any{int64(1)}, Port: 53, Tries: 1}, "expect: want strings, got int64"},
		{"dns servers", &dnsCall{Servers: []any{}, Qname: "a.test", Qtype: "A", Port: 53, Tries: 1}, "servers: no servers given"},
		{"dns qname", &dnsCall{Servers: "127.0.0.1", Qname: "a..test", Qtype: "A", Port: 53, Tries: 1}, `qname "a..test" is not a domain name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call.(modules.Validator).Validate(&modules.Env{})
			wantErr(t, err, tc.want)
		})
	}
}
