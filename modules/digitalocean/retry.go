package digitalocean

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/digitalocean/godo"

	"github.com/orch-dev/orch/modules/internal/cloud"
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
	return cloud.RetryAfter(er.Response.Header.Get("Retry-After")), true
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
		if perr := c.retry.Pause(ctx, attempt, wait); perr != nil {
			return fmt.Errorf("%w (%v)", err, perr)
		}
	}
}
