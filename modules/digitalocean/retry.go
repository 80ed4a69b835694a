package digitalocean

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/godo"
)

// retryable says whether err is worth retrying and how long the API asked
// us to wait (0 when it did not say). Worth retrying are 429
// Too Many Requests, 408, 500, 502, 503 and 504, and the 422 "… already has a
// pending event." that an action gets while another one runs.
func retryable(err error) (time.Duration, bool) {
	var er *godo.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil {
		return 0, false
	}
	code := er.Response.StatusCode
	switch code {
	case http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	case http.StatusUnprocessableEntity:
		if !strings.Contains(strings.ToLower(er.Message), "pending event") {
			return 0, false
		}
	default:
		return 0, false
	}
	return retryAfter(er.Response.Header.Get("Retry-After")), true
}

// call runs op until it succeeds, fails for good, runs out of attempts or
// ctx ends. op must be safe to repeat.
func (c *Client) call(ctx context.Context, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		wait, ok := retryable(err)
		if !ok {
			return err
		}
		if perr := c.pause(ctx, attempt, wait); perr != nil {
			return fmt.Errorf("%w (%v)", err, perr)
		}
	}
}

// pause waits before retry number attempt+1, or says why not to retry.
func (c *Client) pause(ctx context.Context, attempt int, wait time.Duration) error {
	if attempt >= c.attempts {
		return fmt.Errorf("giving up after %d attempts", attempt)
	}
	if wait == 0 {
		wait = backoff(c.delay, 30*time.Second, attempt)
	}
	if err := sleep(ctx, wait); err != nil {
		return fmt.Errorf("stopped retrying: %w", err)
	}
	return nil
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. Waits are
// capped at two minutes; the caller's context bounds them further.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = time.Until(at)
	}
	return min(max(d, 0), 2*time.Minute)
}

// backoff is the wait before retry number attempt: first doubling, capped,
// with jitter so that parallel callers spread out.
func backoff(first, limit time.Duration, attempt int) time.Duration {
	d := first
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
