// Package serve is orch's webhook: an http.Handler that checks a GitHub
// style HMAC signature on each delivery and runs a plan for it, once per
// delivery and one run at a time, each run with a deadline. It never
// prints; it reports every request and every run through Options.Log.
//
// Statuses: 202 a run is queued · 200 GET /healthz, and a ping event (nothing
// runs) · 400 a malformed delivery · 401 unsigned or mis-signed · 405 not a
// POST · 409 a delivery already received · 413 a body over MaxBody · 503 the
// queue is full or the server is closing (Retry-After says when to retry).
package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/orch-dev/orch/engine"
)

const (
	// MaxBody is the largest request body accepted.
	MaxBody = 1 << 20
	// DefaultRunTimeout is a run's deadline when Options.RunTimeout is 0.
	DefaultRunTimeout = 30 * time.Minute
	// DefaultQueue is how many deliveries may wait behind the running one
	// when Options.Queue is 0.
	DefaultQueue = 8
	// RememberedDeliveries is how many delivery IDs are kept to refuse
	// replays: at GitHub's pace of deliveries, weeks of them.
	RememberedDeliveries = 10_000

	deliveryHeader = "X-GitHub-Delivery"
	eventHeader    = "X-GitHub-Event"
)

// Delivery is one accepted webhook delivery.
type Delivery struct {
	ID      string // X-GitHub-Delivery
	Event   string // X-GitHub-Event, e.g. "push"
	Payload any    // the JSON body, decoded
	RunID   string // the ID of the run it starts, given in the 202 answer
}

// RunFunc runs the plan for a delivery. It must return soon after ctx ends.
// The report may be nil when the run never started.
type RunFunc func(ctx context.Context, d Delivery) (*engine.Report, error)

// Options configure a Server.
type Options struct {
	Secret []byte  // the HMAC key; an empty one is refused
	Run    RunFunc // what a delivery runs, e.g. PlanRunner(...)
	// Deliveries is the file that remembers delivery IDs across restarts.
	Deliveries string
	RunTimeout time.Duration // a run's deadline; 0 means DefaultRunTimeout
	Queue      int           // deliveries that may wait while one runs; 0 means DefaultQueue
	// LockRetry is how often a run refused by the run lock (another run
	// holds the same hosts) is tried again, until its deadline; 0 means 2s.
	LockRetry time.Duration
	Log       func(Entry) // nil discards
}

// Entry is one log record: a request (Msg "request") or a step of a run
// ("run started", "waiting for the run lock", "run done", "run failed",
// "run dropped"). It never holds a request body or a header value other than
// the delivery ID and event name.
type Entry struct {
	Time     time.Time
	Msg      string
	Method   string
	Path     string
	Remote   string
	Status   int // the HTTP status of a request
	Delivery string
	Event    string
	RunID    string
	Duration time.Duration   // of the request, or of the run
	Err      string          // why a request was refused, or how a run failed
	Summary  *engine.Summary // of a finished run
}

// Server is the webhook handler. Close it to stop its runs.
type Server struct {
	opts   Options
	ctx    context.Context // ends at Close: cancels the running run
	cancel context.CancelFunc
	done   chan struct{} // closed when the worker has stopped

	mu      sync.Mutex // guards the fields below
	seen    *deliveryLog
	pending map[string]bool // accepted, not started yet
	queue   chan Delivery
	running bool
	closed  bool
}

// New checks opts, opens the delivery log and starts the worker that runs
// deliveries one at a time.
func New(opts Options) (*Server, error) {
	if len(opts.Secret) == 0 {
		return nil, errors.New("serve: the secret is empty; refusing to accept unsigned deliveries")
	}
	if opts.Run == nil {
		return nil, errors.New("serve: no RunFunc")
	}
	if opts.Deliveries == "" {
		return nil, errors.New("serve: no file to remember deliveries in")
	}
	if opts.RunTimeout <= 0 {
		opts.RunTimeout = DefaultRunTimeout
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.LockRetry <= 0 {
		opts.LockRetry = 2 * time.Second
	}
	if opts.Log == nil {
		opts.Log = func(Entry) {}
	}
	seen, err := openDeliveryLog(opts.Deliveries, RememberedDeliveries)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{opts: opts, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		seen: seen, pending: map[string]bool{}, queue: make(chan Delivery, opts.Queue)}
	go s.work()
	return s, nil
}

// Close refuses new deliveries, cancels the running run (its undos still
// run) and waits for it to end. Queued deliveries are dropped unrecorded,
// so a redelivery runs them later.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	s.cancel() // before the queue closes, so that no queued delivery starts
	close(s.queue)
	s.mu.Unlock()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen.close()
}

func (s *Server) log(e Entry) {
	e.Time = time.Now()
	s.opts.Log(e)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	e := Entry{Msg: "request", Method: r.Method, Path: r.URL.Path, Remote: r.RemoteAddr}
	status, answer := s.handle(r, &e)
	e.Status, e.Duration = status, time.Since(start)
	if msg, ok := answer["error"].(string); ok {
		e.Err = msg
	}
	s.log(e)
	switch status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", "POST")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "60")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(answer)
}

// idRE bounds what a delivery ID or an event name may hold, since both
// reach logs and the delivery file: GitHub's are GUIDs and snake_case names.
var idRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

func refuse(status int, format string, args ...any) (int, map[string]any) {
	return status, map[string]any{"error": fmt.Sprintf(format, args...)}
}

// handle decides a request's status and answer, in this order: method,
// size, signature, then what the signed request says.
func (s *Server) handle(r *http.Request, e *Entry) (int, map[string]any) {
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return http.StatusOK, map[string]any{"status": "ok"}
	}
	if r.Method != http.MethodPost {
		return refuse(http.StatusMethodNotAllowed, "deliveries are POSTed")
	}
	if r.ContentLength > MaxBody {
		return refuse(http.StatusRequestEntityTooLarge, "body over %d bytes", MaxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return refuse(http.StatusRequestEntityTooLarge, "body over %d bytes", MaxBody)
		}
		return refuse(http.StatusBadRequest, "reading the body: %v", err)
	}
	sig := r.Header.Get(SignatureHeader)
	if sig == "" {
		return refuse(http.StatusUnauthorized, "no %s header", SignatureHeader)
	}
	if !Verify(s.opts.Secret, body, sig) {
		return refuse(http.StatusUnauthorized, "%s does not match the body", SignatureHeader)
	}

	d := Delivery{ID: r.Header.Get(deliveryHeader), Event: r.Header.Get(eventHeader)}
	if !idRE.MatchString(d.ID) {
		return refuse(http.StatusBadRequest, "missing or malformed %s header: without it a replay cannot be told apart", deliveryHeader)
	}
	e.Delivery = d.ID
	if d.Event != "" && !idRE.MatchString(d.Event) {
		return refuse(http.StatusBadRequest, "malformed %s header", eventHeader)
	}
	e.Event = d.Event
	if d.Payload, err = decodePayload(r.Header.Get("Content-Type"), body); err != nil {
		return refuse(http.StatusBadRequest, "%v", err)
	}
	if d.Event == "ping" { // GitHub's hello when a hook is created
		return http.StatusOK, map[string]any{"status": "pong", "delivery": d.ID}
	}
	d.RunID = newRunID()

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return refuse(http.StatusServiceUnavailable, "shutting down")
	case s.pending[d.ID] || s.seen.has(d.ID):
		return refuse(http.StatusConflict, "delivery %s was already received; it is not run twice", d.ID)
	}
	select {
	case s.queue <- d:
	default:
		return refuse(http.StatusServiceUnavailable, "%d deliveries are already waiting", cap(s.queue))
	}
	ahead := len(s.pending)
	if s.running {
		ahead++
	}
	s.pending[d.ID] = true
	e.RunID = d.RunID
	return http.StatusAccepted, map[string]any{"status": "accepted", "delivery": d.ID, "run_id": d.RunID, "ahead": ahead}
}

// decodePayload reads the JSON body, which GitHub may also send form-encoded
// as payload=…. (curl -d says form-encoded for a plain JSON body too.)
func decodePayload(contentType string, body []byte) (any, error) {
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" {
		if form, err := url.ParseQuery(string(body)); err == nil && form.Has("payload") {
			body = []byte(form.Get("payload"))
		}
	}
	var payload any
	if err := json.Unmarshal(body, &payload); err != nil {
		return nil, fmt.Errorf("the payload is not JSON: %v", err)
	}
	return payload, nil
}

// newRunID makes a run ID in the engine's format, so the 202 answer can
// name the journal the run will write.
func newRunID() string {
	var b [3]byte
	rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405.000") + "-" + hex.EncodeToString(b[:])
}

// work runs the queued deliveries one at a time until Close.
func (s *Server) work() {
	defer close(s.done)
	for d := range s.queue {
		s.mu.Lock()
		delete(s.pending, d.ID)
		var err error
		if s.ctx.Err() != nil {
			err = errors.New("the server closed before the run started; a redelivery will run it")
		} else {
			err = s.seen.add(d.ID) // before the run: a crash must not let a replay run it again
		}
		s.running = err == nil
		s.mu.Unlock()
		if err != nil {
			s.log(Entry{Msg: "run dropped", Delivery: d.ID, Event: d.Event, RunID: d.RunID, Err: err.Error()})
			continue
		}
		s.execute(d)
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}
}

// execute runs one delivery under its deadline. A run refused by the run
// lock before it touched anything is tried again until the deadline.
func (s *Server) execute(d Delivery) {
	start := time.Now()
	timeout := s.opts.RunTimeout
	ctx, cancel := context.WithTimeoutCause(s.ctx, timeout, fmt.Errorf("run deadline of %s exceeded", timeout))
	defer cancel()
	s.log(Entry{Msg: "run started", Delivery: d.ID, Event: d.Event, RunID: d.RunID})
	var (
		rep    *engine.Report
		err    error
		waited bool
	)
	for {
		rep, err = s.opts.Run(ctx, d)
		var locked *engine.LockedError
		if !errors.As(err, &locked) || (rep != nil && rep.Touched) {
			break
		}
		if !waited {
			s.log(Entry{Msg: "waiting for the run lock", Delivery: d.ID, Event: d.Event, RunID: d.RunID, Err: err.Error()})
			waited = true
		}
		select {
		case <-ctx.Done():
			err = fmt.Errorf("%v; still waiting for the run lock: %w", context.Cause(ctx), err)
		case <-time.After(s.opts.LockRetry):
			continue
		}
		break
	}
	e := Entry{Msg: "run done", Delivery: d.ID, Event: d.Event, RunID: d.RunID, Duration: time.Since(start)}
	if rep != nil && rep.RunID != "" {
		e.Summary = &rep.Summary
	}
	switch {
	case err != nil:
		e.Msg, e.Err = "run failed", err.Error()
		// Say why the run was cancelled, where its error does not.
		if cause := context.Cause(ctx); cause != nil && !strings.Contains(e.Err, cause.Error()) {
			e.Err = cause.Error() + ": " + e.Err
		}
	case rep != nil && (rep.Summary.Failed > 0 || rep.Summary.Unreachable > 0):
		e.Msg = "run failed"
		e.Err = fmt.Sprintf("%d hosts failed, %d unreachable", rep.Summary.Failed, rep.Summary.Unreachable)
	}
	s.log(e)
}
