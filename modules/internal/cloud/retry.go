package cloud

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Retry is how a provider client retries a request the API turned away for
// now. Which answers are worth retrying is the provider's to say.
type Retry struct {
	Attempts int           // tries of one request before giving up
	Delay    time.Duration // first backoff; doubles up to MaxDelay
	MaxDelay time.Duration
}

// NewRetry returns the policy for a client's Attempts and RetryDelay
// settings, zero meaning the default: 8 attempts, and a first backoff of 1s
// that doubles up to 30s.
func NewRetry(attempts int, delay time.Duration) Retry {
	r := Retry{Attempts: attempts, Delay: delay, MaxDelay: 30 * time.Second}
	if r.Attempts <= 0 {
		r.Attempts = 8
	}
	if r.Delay <= 0 {
		r.Delay = time.Second
	}
	return r
}

// Pause waits before retry number attempt+1: as long as wait, which is what
// the API asked for (0 when it did not say), or else a backoff. Its error
// says why not to retry: the attempts are used up, or ctx ended (wrapped).
func (r Retry) Pause(ctx context.Context, attempt int, wait time.Duration) error {
	if attempt >= r.Attempts {
		return fmt.Errorf("giving up after %d attempts", attempt)
	}
	if wait == 0 {
		wait = Backoff(r.Delay, r.MaxDelay, attempt)
	}
	if err := Sleep(ctx, wait); err != nil {
		return fmt.Errorf("stopped retrying: %w", err)
	}
	return nil
}

// RetryAfter parses a Retry-After header: seconds or an HTTP date. Waits are
// capped at two minutes; the caller's context bounds them further.
func RetryAfter(v string) time.Duration {
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

// Backoff is the wait before retry number attempt: first doubling, capped
// at limit, with jitter so that parallel callers spread out.
func Backoff(first, limit time.Duration, attempt int) time.Duration {
	d := first
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// NextPoll is the wait between status polls after wait: it grows by half,
// up to 5s, while a machine boots or an action runs.
func NextPoll(wait time.Duration) time.Duration {
	return min(wait*3/2, 5*time.Second)
}

// Sleep waits for d or until ctx ends, and returns ctx's error if it did.
func Sleep(ctx context.Context, d time.Duration) error {
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
