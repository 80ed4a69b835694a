// Package traffic sends requests without pause from concurrent clients
// while a test switches what serves them, and counts what failed and who
// answered: how the load-balancer tests prove that a switch dropped
// nothing.
package traffic

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Loop is a running set of clients.
type Loop struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	seen         map[string]int
	lastErr      string
	stop, done   chan struct{}
}

// Start runs try in workers goroutines, again and again, until Stop (or
// the end of the test). try returns who answered ("blue") or an error.
func Start(t testing.TB, workers int, try func() (string, error)) *Loop {
	l := &Loop{seen: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.sent.Add(1)
				got, err := try()
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					l.lastErr = err.Error()
				} else {
					l.seen[got]++
				}
				l.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	t.Cleanup(l.Stop)
	return l
}

// Stop stops the clients and waits for their last requests.
func (l *Loop) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// Sent counts the requests sent so far.
func (l *Loop) Sent() int64 { return l.sent.Load() }

// Failed counts the requests that failed so far.
func (l *Loop) Failed() int64 { return l.failed.Load() }

// LastError is the last failure's error text.
func (l *Loop) LastError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// Count is how many requests answer answered.
func (l *Loop) Count(answer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[answer]
}

// Seen counts the answers by who answered.
func (l *Loop) Seen() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.seen)
}

// WaitSent waits until the clients have sent n more requests.
func (l *Loop) WaitSent(t testing.TB, n int64) {
	t.Helper()
	want := l.Sent() + n
	WaitFor(t, fmt.Sprintf("%d requests", want), func() bool { return l.Sent() >= want })
}

// WaitFor waits until cond holds, or fails the test after 30 s: a bounded
// wait for progress, not a timed assertion.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// HTTPGet sends a GET on a new connection and returns the body; any
// status but 200 is an error.
func HTTPGet(url string) (string, error) {
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}
