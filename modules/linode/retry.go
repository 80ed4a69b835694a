package linode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/orch-dev/orch/modules/internal/cloud"
)

// retryTransport retries requests the Linode API turned away for now:
//
//   - 429 Too Many Requests and 408 Request Timeout;
//   - 500, 502, 503 (but not during announced maintenance) and 504;
//   - a 400, 409 or 422 whose reason says the Linode is busy or has a
//     pending event ("Linode busy.").
//
// It waits as long as Retry-After says, or backs off exponentially, and gives
// up after a number of attempts or when the request's context ends.
//
// Retries live here, below linodego, because linodego's own retries report
// each one through the standard logger and cannot be silenced; a library
// must not print. Replaying a create is safe because a Linode label is
// unique: a replayed POST whose first try did create gets "Label must be
// unique", which Create resolves by looking the label up.
type retryTransport struct {
	base  http.RoundTripper
	retry cloud.Retry
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Every attempt sends a fresh copy of the body, from GetBody or memory.
	var getBody func() (io.ReadCloser, error)
	if req.Body != nil && req.Body != http.NoBody {
		getBody = req.GetBody
		if getBody == nil {
			b, err := io.ReadAll(req.Body)
			if err != nil {
				req.Body.Close()
				return nil, err
			}
			getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		}
		req.Body.Close()
	}
	for attempt := 1; ; attempt++ {
		r := req.Clone(req.Context())
		if getBody != nil {
			body, err := getBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		wait, why := retryable(resp)
		if why == "" {
			return resp, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err := t.retry.Pause(req.Context(), attempt, wait); err != nil {
			return nil, fmt.Errorf("%s, %w", why, err)
		}
	}
}

// retryable says why resp is worth retrying ("" when it is not) and how long
// the server asked us to wait (0 when it did not say).
func retryable(resp *http.Response) (time.Duration, string) {
	code := resp.StatusCode
	why := fmt.Sprintf("linode API answered %d %s", code, http.StatusText(code))
	switch code {
	case http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusGatewayTimeout:
		return cloud.RetryAfter(resp.Header.Get("Retry-After")), why
	case http.StatusServiceUnavailable:
		if resp.Header.Get("X-Maintenance-Mode") != "" {
			return 0, "" // maintenance lasts longer than any retry budget
		}
		return cloud.RetryAfter(resp.Header.Get("Retry-After")), why
	case http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity:
		if code == http.StatusBadRequest && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			return 0, why // an HTML 400 comes from the load balancer, not the API
		}
		reason := peekReason(resp)
		lower := strings.ToLower(reason)
		if strings.Contains(lower, "busy") || strings.Contains(lower, "pending event") {
			return cloud.RetryAfter(resp.Header.Get("Retry-After")), why + ": " + reason
		}
	}
	return 0, ""
}

// peekReason returns the reasons of a Linode error body, leaving the body
// readable for linodego.
func peekReason(resp *http.Response) string {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return ""
	}
	var body struct {
		Errors []struct {
			Reason string `json:"reason"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &body) != nil {
		return ""
	}
	var reasons []string
	for _, e := range body.Errors {
		reasons = append(reasons, e.Reason)
	}
	return strings.Join(reasons, "; ")
}
