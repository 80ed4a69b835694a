package check

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/orch-dev/orch/modules"
)

func init() {
	modules.Register(modules.Info{ID: "check.http", New: func() any { return new(httpCall) }, Doc: `Sends GET requests from the controller until the URL answers with the wanted status (and body).

With host=, the requests carry that Host header instead of the URL's host,
so a check can go through a front that routes by name (nginx server_name)
to the backend of that name.

A try passes when the response has the status given (redirects are not
followed, so status=301 can be checked) and, with contains=, when the first
MiB of the body contains that text. Every try opens a new connection, so a
try sees the server as it is now, not a kept-alive backend; a try that gets
no response within 10 seconds fails. HTTPS certificates are verified with
the controller's roots. The result's status is the status of the passing
try.

` + retryDoc})
}

// requestTimeout bounds one try.
const requestTimeout = 10 * time.Second

// bodyLimit bounds the body read for contains=.
const bodyLimit = 1 << 20

type httpCall struct {
	URL      string        `arg:"url,required" doc:"an http:// or https:// URL"`
	Status   int           `arg:"status" default:"200" doc:"the wanted HTTP status"`
	Contains *string       `arg:"contains" doc:"text the body must contain"`
	Host     string        `arg:"host" doc:"the request's Host header, for a name-based virtual host (\"test\" on a front that routes by name); default the URL's host"`
	Tries    int           `arg:"tries" default:"10" doc:"tries before the check fails"`
	Interval time.Duration `arg:"interval" default:"1s" doc:"wait between tries"`
}

var (
	_ modules.Call      = (*httpCall)(nil)
	_ modules.Validator = (*httpCall)(nil)
)

func (c *httpCall) Validate(*modules.Env) error {
	if err := validateRetry(c.Tries, c.Interval); err != nil {
		return err
	}
	if c.Status < 100 || c.Status > 999 {
		return fmt.Errorf("status %d is not an HTTP status", c.Status)
	}
	if targetOf(c.URL).placeholder {
		return nil // a host not created yet: the URL is known only in part
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q is not an http:// or https:// URL", c.URL)
	}
	return nil
}

func (c *httpCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	defer tr.CloseIdleConnections()
	cl := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	what := "GET " + c.URL
	if c.Host != "" {
		what += " (Host: " + c.Host + ")"
	}
	p := &prober{id: "check.http", what: what, tries: c.Tries, interval: c.Interval,
		try: func(ctx context.Context, u string) outcome { return c.get(ctx, cl, u) }}
	res, err := p.run(ctx, env, []target{targetOf(c.URL)})
	if err != nil {
		return nil, err
	}
	out := map[string]any{"ok": true, "tries": res.tries}
	if v, ok := res.values[c.URL]; ok {
		out["status"] = v
	}
	return out, nil
}

func (c *httpCall) get(ctx context.Context, cl *http.Client, u string) outcome {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return outcome{msg: err.Error()}
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	resp, err := cl.Do(req)
	if err != nil {
		return outcome{msg: fmt.Sprintf("want %s, got no response: %v", c.want(), err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, bodyLimit))
	if err != nil {
		return outcome{msg: fmt.Sprintf("want %s, got status %d and a body cut short: %v", c.want(), resp.StatusCode, err), value: resp.StatusCode}
	}
	if resp.StatusCode != c.Status || c.Contains != nil && !strings.Contains(string(body), *c.Contains) {
		return outcome{msg: fmt.Sprintf("want %s, got status %d and body %s", c.want(), resp.StatusCode, excerpt(body)), value: resp.StatusCode}
	}
	return outcome{ok: true, msg: fmt.Sprintf("status %d, %d bytes", resp.StatusCode, len(body)), value: resp.StatusCode}
}

func (c *httpCall) want() string {
	if c.Contains == nil {
		return fmt.Sprintf("status %d", c.Status)
	}
	return fmt.Sprintf("status %d and a body containing %q", c.Status, *c.Contains)
}

// excerpt quotes the start of a body for a failure message.
func excerpt(body []byte) string {
	const max = 200
	if len(body) == 0 {
		return "(empty)"
	}
	s := string(body)
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return fmt.Sprintf("%q... (%d bytes)", s, len(body))
	}
	return fmt.Sprintf("%q", s)
}
