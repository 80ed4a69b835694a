package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// httpLoop is an independent HTTP client loop: it sends GET requests with
// a given Host header to every lab host of a group, each on a new
// connection (as a browser's first request), until stopped, and counts
// the requests that failed: no response, a status other than 200, or a
// body that is not one of the accepted ones. An HTTP proxy's graceful
// reload must drop nothing, so unlike dnsloop it never sends a request
// twice.
type httpLoop struct {
	stop            chan struct{}
	wg              sync.WaitGroup
	requests, fails atomic.Int64
	mu              sync.Mutex
	last            string
	seen            map[string]int64 // accepted body -> how often
}

var httpLoops sync.Map // script work dir -> *httpLoop

// httploopCmd: httploop start GROUP HOST BODY[|BODY…] | httploop stop.
// BODY is a whole response body without its final newline. stop prints
// "httploop: N requests, M failed" and how often each accepted body came
// back, and fails the script when M is not 0 (! httploop stop expects
// failures).
func httploopCmd(ts *testscript.TestScript, neg bool, args []string) {
	key := ts.Getenv("WORK")
	switch {
	case len(args) == 4 && args[0] == "start":
		addrs := labAddresses(ts, args[1])
		if len(addrs) == 0 {
			ts.Fatalf("httploop: no lab hosts in group %s", args[1])
		}
		l := &httpLoop{stop: make(chan struct{}), seen: map[string]int64{}}
		accepted := map[string]bool{}
		for _, b := range strings.Split(args[3], "|") {
			accepted[b+"\n"] = true
		}
		for _, a := range addrs {
			l.wg.Add(1)
			go l.run("http://"+net.JoinHostPort(a, "80")+"/", args[2], accepted)
		}
		httpLoops.Store(key, l)
	case len(args) == 1 && args[0] == "stop":
		v, ok := httpLoops.LoadAndDelete(key)
		if !ok {
			ts.Fatalf("httploop: not started")
		}
		l := v.(*httpLoop)
		close(l.stop)
		l.wg.Wait()
		var bodies []string
		for b, n := range l.seen {
			bodies = append(bodies, fmt.Sprintf("%q: %d", b, n))
		}
		fmt.Fprintf(ts.Stdout(), "httploop: %d requests, %d failed (%s)\n", l.requests.Load(), l.fails.Load(), strings.Join(bodies, ", "))
		if l.requests.Load() == 0 {
			ts.Fatalf("httploop: sent no requests")
		}
		if failed := l.fails.Load() > 0; failed != neg {
			ts.Fatalf("httploop: %d of %d requests failed (last: %s)", l.fails.Load(), l.requests.Load(), l.last)
		}
	default:
		ts.Fatalf("usage: httploop start GROUP HOST BODY[|BODY…] | httploop stop")
	}
}

func (l *httpLoop) run(url, host string, accepted map[string]bool) {
	defer l.wg.Done()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for {
		select {
		case <-l.stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		l.requests.Add(1)
		body, why := get(c, url, host)
		if why == "" && !accepted[body] {
			why = fmt.Sprintf("body %q", body)
		}
		l.mu.Lock()
		if why != "" {
			l.fails.Add(1)
			l.last = fmt.Sprintf("GET %s (Host: %s): %s", url, host, why)
		} else {
			l.seen[body]++
		}
		l.mu.Unlock()
	}
}

// get sends one request and returns the body of a 200 response, or why
// there was none.
func get(c *http.Client, url, host string) (string, string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err.Error()
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return "", err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", "body: " + err.Error()
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Sprintf("status %d, body %q", resp.StatusCode, b)
	}
	return string(b), ""
}
