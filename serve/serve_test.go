package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	_ "github.com/orch-dev/orch/modules/standard"
	"github.com/orch-dev/orch/plan"
)

var secret = []byte("test secret")

// GitHub's published example: docs "Validating webhook deliveries".
func TestSignatureGitHubVector(t *testing.T) {
	key, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := Sign(key, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if !Verify(key, body, want) {
		t.Fatal("the published signature does not verify")
	}
	for name, c := range map[string]struct {
		key, body []byte
		header    string
	}{
		"other body":      {key, []byte("Hello, World?"), want},
		"other secret":    {[]byte("It's a Secret to Everybody."), body, want},
		"upper-case hex":  {key, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(want, "sha256="))},
		"sha1 prefix":     {key, body, "sha1=" + strings.TrimPrefix(want, "sha256=")},
		"no prefix":       {key, body, strings.TrimPrefix(want, "sha256=")},
		"truncated":       {key, body, want[:len(want)-2]},
		"trailing space":  {key, body, want + " "},
		"empty":           {key, body, ""},
		"last digit off":  {key, body, want[:len(want)-1] + "f"},
		"not hex":         {key, body, want[:len(want)-1] + "g"},
		"empty secret":    {nil, body, want},
		"signature twice": {key, body, want + "," + want},
	} {
		if name == "upper-case hex" {
			// Hex digits decode either way: the digest is the same.
			if !Verify(c.key, c.body, c.header) {
				t.Errorf("%s: does not verify", name)
			}
			continue
		}
		if Verify(c.key, c.body, c.header) {
			t.Errorf("%s: verifies", name)
		}
	}
}

func TestNewRefusesAnEmptySecret(t *testing.T) {
	for _, s := range [][]byte{nil, {}} {
		_, err := New(Options{Secret: s, Run: countingRun(nil), Deliveries: filepath.Join(t.TempDir(), "d")})
		if err == nil || !strings.Contains(err.Error(), "secret is empty") {
			t.Errorf("secret %q: err = %v", s, err)
		}
	}
}

// recorder collects log entries and lets a test wait for one.
type recorder struct {
	mu      sync.Mutex
	entries []Entry
	more    chan struct{}
}

func newRecorder() *recorder { return &recorder{more: make(chan struct{}, 1)} }

func (r *recorder) log(e Entry) {
	r.mu.Lock()
	r.entries = append(r.entries, e)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Entry(nil), r.entries...)
}

// wait returns the n-th entry (from 1) that matches msg and delivery.
// The minute is a guard against a deadlock, not a measure.
func (r *recorder) wait(t *testing.T, n int, msg, delivery string) Entry {
	t.Helper()
	guard := time.After(time.Minute)
	for {
		seen := 0
		for _, e := range r.all() {
			if strings.HasPrefix(e.Msg, msg) && (delivery == "" || e.Delivery == delivery) {
				if seen++; seen == n {
					return e
				}
			}
		}
		select {
		case <-r.more:
		case <-guard:
			t.Fatalf("no %q entry #%d for delivery %q; log:\n%s", msg, n, delivery, dump(r.all()))
		}
	}
}

func (r *recorder) count(msg string) int {
	n := 0
	for _, e := range r.all() {
		if e.Msg == msg {
			n++
		}
	}
	return n
}

func dump(entries []Entry) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%+v\n", e)
	}
	return b.String()
}

// delivery is one request to the webhook.
type delivery struct {
	id, event string
	body      []byte
	sig       string // "" signs body with secret; "-" sends no signature
	ctype     string
}

func (d delivery) post(t *testing.T, base string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/hooks/deploy", bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	switch d.sig {
	case "":
		req.Header.Set(SignatureHeader, Sign(secret, d.body))
	case "-":
	default:
		req.Header.Set(SignatureHeader, d.sig)
	}
	if d.id != "" {
		req.Header.Set(deliveryHeader, d.id)
	}
	event := d.event
	if event == "" {
		event = "push"
	}
	req.Header.Set(eventHeader, event)
	ctype := d.ctype
	if ctype == "" {
		ctype = "application/json"
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("answer to %s: %v", d.id, err)
	}
	return resp.StatusCode, answer
}

func push(id, ref string) delivery {
	return delivery{id: id, body: []byte(fmt.Sprintf(`{"ref": %q, "after": "9f1a813", "marker": "body-%s"}`, ref, id))}
}

// start serves opts on a loopback listener; both close with the test.
func start(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	if opts.Secret == nil {
		opts.Secret = secret
	}
	if opts.Deliveries == "" {
		opts.Deliveries = filepath.Join(t.TempDir(), "deliveries")
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return s, hs.URL
}

// The plan the end-to-end tests run: each delivery writes its payload to
// OUT/<delivery>.json and appends a line to OUT/runs.log, on the local
// connection; a payload with "hang" runs a command that never ends.
const recordPlan = `
def main(ctx):
    ev = ctx.event
    out = ctx.args["out"]
    if ev.payload.get("hang"):
        def hang(h):
            command(cmd = "echo $$ > %s/hang.pid; exec sleep 300" % out)
        ctx.apply("all", hang)
        return
    def record(h):
        file(path = "%s/%s.json" % (out, ev.delivery), content = json.encode(ev.payload) + "\n")
        command(cmd = "echo %s %s %s >> %s/runs.log" % (ev.name, ev.delivery, ev.payload["ref"], out))
    ctx.apply("all", record)
`

// planSetup writes recordPlan and returns the runner and the output folder.
func planSetup(t *testing.T, state string) (RunFunc, string) {
	t.Helper()
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.star")
	if err := os.WriteFile(planPath, []byte(recordPlan), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	inv := func(ctx context.Context) (*inventory.Inventory, []string, error) {
		inv := inventory.New()
		err := inv.Add(&inventory.Host{Name: "localhost", Address: "localhost", Connection: "local"})
		return inv, []string{"local"}, err
	}
	return PlanRunner(planPath, inv, engine.Options{StateDir: state, Args: map[string]string{"out": out}}), out
}

func runsLog(t *testing.T, out string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "runs.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	sort.Strings(lines)
	return lines
}

func TestWebhookRunsThePlanOncePerGoodDelivery(t *testing.T) {
	state := t.TempDir()
	run, out := planSetup(t, state)
	rec := newRecorder()
	_, base := start(t, Options{Run: run, Log: rec.log})

	oversized := push("d-big", "refs/heads/main")
	oversized.body = append(oversized.body, bytes.Repeat([]byte(" "), MaxBody)...)
	form := push("d-form", "refs/heads/form")
	form.body = []byte("payload=" + url.QueryEscape(string(form.body)))
	form.ctype = "application/x-www-form-urlencoded"
	curlD := push("d-curl", "refs/heads/curl") // curl -d labels JSON form-encoded
	curlD.ctype = "application/x-www-form-urlencoded"
	noID := push("", "refs/heads/main")

	steps := []struct {
		name string
		d    delivery
		want int
	}{
		{"unsigned", delivery{id: "d-unsigned", body: push("x", "refs/heads/main").body, sig: "-"}, http.StatusUnauthorized},
		{"signed with another secret", delivery{id: "d-other", body: push("x", "refs/heads/main").body, sig: Sign([]byte("other"), push("x", "refs/heads/main").body)}, http.StatusUnauthorized},
		{"signature of another body", delivery{id: "d-swapped", body: push("d-swapped", "refs/heads/evil").body, sig: Sign(secret, push("d-swapped", "refs/heads/main").body)}, http.StatusUnauthorized},
		{"over 1 MiB", oversized, http.StatusRequestEntityTooLarge},
		{"no delivery ID", noID, http.StatusBadRequest},
		{"not JSON", delivery{id: "d-nojson", body: []byte("ref=main")}, http.StatusBadRequest},
		{"ping", delivery{id: "d-ping", event: "ping", body: []byte(`{"zen": "Keep it logically awesome."}`)}, http.StatusOK},
		{"good", push("d-1", "refs/heads/main"), http.StatusAccepted},
		{"replayed", push("d-1", "refs/heads/main"), http.StatusConflict},
		{"replayed with another body", push("d-1", "refs/heads/other"), http.StatusConflict},
		{"second good", push("d-2", "refs/heads/next"), http.StatusAccepted},
		{"form-encoded", form, http.StatusAccepted},
		{"JSON labelled form-encoded", curlD, http.StatusAccepted},
	}
	accepted := map[string]string{} // delivery -> run ID
	for _, s := range steps {
		status, answer := s.d.post(t, base)
		if status != s.want {
			t.Errorf("%s: status %d, want %d (%v)", s.name, status, s.want, answer)
		}
		if status == http.StatusAccepted {
			if answer["delivery"] != s.d.id || answer["run_id"] == "" {
				t.Errorf("%s: answer %v", s.name, answer)
			}
			accepted[s.d.id] = answer["run_id"].(string)
		} else if status >= 400 && answer["error"] == "" {
			t.Errorf("%s: no error in the answer %v", s.name, answer)
		}
	}
	for id := range accepted {
		if e := rec.wait(t, 1, "run ", id); e.Msg != "run started" {
			t.Fatalf("first run entry of %s: %+v", id, e)
		}
		if e := rec.wait(t, 1, "run done", id); e.Summary == nil || e.Summary.Changed != 1 || e.Summary.TasksChanged != 2 {
			t.Errorf("run of %s: %+v %+v", id, e, e.Summary)
		}
	}

	want := []string{"push d-1 refs/heads/main", "push d-2 refs/heads/next", "push d-curl refs/heads/curl", "push d-form refs/heads/form"}
	if got := runsLog(t, out); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("runs.log = %q, want %q", got, want)
	}
	payload, err := os.ReadFile(filepath.Join(out, "d-2.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(payload) != `{"after":"9f1a813","marker":"body-d-2","ref":"refs/heads/next"}`+"\n" {
		t.Errorf("d-2.json = %q", payload)
	}
	// Each accepted delivery has the journal its 202 named, and no other
	// run exists.
	runs, _ := os.ReadDir(filepath.Join(state, "runs"))
	if len(runs) != len(accepted) {
		t.Errorf("%d runs journaled, want %d", len(runs), len(accepted))
	}
	for id, runID := range accepted {
		if _, err := os.Stat(filepath.Join(state, "runs", runID, "result.json")); err != nil {
			t.Errorf("delivery %s: %v", id, err)
		}
	}

	// Every request is logged, with its status and delivery, never its body.
	var requests []Entry
	for _, e := range rec.all() {
		if e.Msg == "request" {
			requests = append(requests, e)
		}
		if s := fmt.Sprintf("%+v", e); strings.Contains(s, "body-") || strings.Contains(s, "sha256=") {
			t.Errorf("a log entry holds the body or the signature: %s", s)
		}
	}
	if len(requests) != len(steps) {
		t.Fatalf("%d requests logged, want %d:\n%s", len(requests), len(steps), dump(requests))
	}
	for i, e := range requests {
		if e.Status != steps[i].want || e.Method != "POST" || e.Path != "/hooks/deploy" || e.Remote == "" || e.Duration <= 0 {
			t.Errorf("request %d (%s) logged as %+v", i, steps[i].name, e)
		}
		if e.Status == http.StatusUnauthorized && e.Delivery != "" {
			t.Errorf("an unsigned request's delivery was trusted: %+v", e)
		}
		if e.Status >= 400 && e.Err == "" {
			t.Errorf("request %d (%s): no reason logged", i, steps[i].name)
		}
	}
}

func TestReplayRefusedAfterRestart(t *testing.T) {
	state := t.TempDir()
	run, out := planSetup(t, state)
	deliveries := filepath.Join(state, "serve", "deliveries")

	rec := newRecorder()
	first, base := start(t, Options{Run: run, Log: rec.log, Deliveries: deliveries})
	if status, answer := push("d-1", "refs/heads/main").post(t, base); status != http.StatusAccepted {
		t.Fatalf("status %d %v", status, answer)
	}
	rec.wait(t, 1, "run done", "d-1")
	first.Close()

	rec = newRecorder()
	_, base = start(t, Options{Run: run, Log: rec.log, Deliveries: deliveries})
	if status, answer := push("d-1", "refs/heads/main").post(t, base); status != http.StatusConflict {
		t.Errorf("replay after a restart: status %d %v", status, answer)
	}
	if status, answer := push("d-2", "refs/heads/main").post(t, base); status != http.StatusAccepted {
		t.Fatalf("status %d %v", status, answer)
	}
	rec.wait(t, 1, "run done", "d-2")
	if got := runsLog(t, out); len(got) != 2 {
		t.Errorf("runs.log = %q, want d-1 and d-2 once each", got)
	}
}

// countingRun is a RunFunc that records deliveries and how many runs
// overlapped; each run waits until release is closed (nil: returns at once).
func countingRun(release chan struct{}) RunFunc {
	var mu sync.Mutex
	running := 0
	return func(ctx context.Context, d Delivery) (*engine.Report, error) {
		mu.Lock()
		running++
		overlap := running
		mu.Unlock()
		defer func() {
			mu.Lock()
			running--
			mu.Unlock()
		}()
		if overlap > 1 {
			return nil, fmt.Errorf("%d runs at once", overlap)
		}
		if release != nil {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		return &engine.Report{RunID: d.RunID}, nil
	}
}

// A delivery that arrives while a run is in progress waits in a bounded
// queue; beyond it the answer is 503 with Retry-After, and that delivery is
// not remembered, so its redelivery runs.
func TestDeliveriesQueueBehindTheRunningOne(t *testing.T) {
	release := make(chan struct{})
	rec := newRecorder()
	_, base := start(t, Options{Run: countingRun(release), Log: rec.log, Queue: 2})

	if status, answer := push("d-1", "a").post(t, base); status != http.StatusAccepted || answer["ahead"] != 0.0 {
		t.Fatalf("d-1: %d %v", status, answer)
	}
	rec.wait(t, 1, "run started", "d-1")
	for i, id := range []string{"d-2", "d-3"} {
		if status, answer := push(id, "a").post(t, base); status != http.StatusAccepted || answer["ahead"] != float64(i+1) {
			t.Fatalf("%s: %d %v", id, status, answer)
		}
	}
	if status, answer := push("d-4", "a").post(t, base); status != http.StatusServiceUnavailable {
		t.Fatalf("d-4 beyond the queue: %d %v", status, answer)
	}
	if status, _ := push("d-2", "a").post(t, base); status != http.StatusConflict {
		t.Errorf("a queued delivery sent again: %d, want 409", status)
	}
	close(release)
	for _, id := range []string{"d-1", "d-2", "d-3"} {
		if e := rec.wait(t, 1, "run done", id); e.Err != "" {
			t.Errorf("%s: %+v", id, e)
		}
	}
	// Runs happened one at a time and in order of arrival.
	var order []string
	for _, e := range rec.all() {
		if e.Msg == "run started" {
			order = append(order, e.Delivery)
		}
	}
	if strings.Join(order, ",") != "d-1,d-2,d-3" {
		t.Errorf("runs started in order %v", order)
	}
	// The refused one was not remembered: sent again, it runs.
	if status, answer := push("d-4", "a").post(t, base); status != http.StatusAccepted {
		t.Fatalf("d-4 again: %d %v", status, answer)
	}
	if e := rec.wait(t, 1, "run done", "d-4"); e.Err != "" {
		t.Errorf("d-4: %+v", e)
	}
}

// A hung run is cancelled at its deadline, its remote command is ended, and
// the next delivery runs.
func TestHungRunEndsAtItsDeadline(t *testing.T) {
	state := t.TempDir()
	run, out := planSetup(t, state)
	rec := newRecorder()
	_, base := start(t, Options{Run: run, Log: rec.log, RunTimeout: 3 * time.Second})

	hang := delivery{id: "d-hang", body: []byte(`{"ref": "refs/heads/main", "hang": true}`)}
	if status, answer := hang.post(t, base); status != http.StatusAccepted {
		t.Fatalf("status %d %v", status, answer)
	}
	rec.wait(t, 1, "run started", "d-hang")
	if status, answer := push("d-next", "refs/heads/next").post(t, base); status != http.StatusAccepted || answer["ahead"] != 1.0 {
		t.Fatalf("status %d %v", status, answer)
	}
	e := rec.wait(t, 1, "run failed", "d-hang")
	if !strings.Contains(e.Err, "run deadline of 3s exceeded") {
		t.Errorf("hung run: %+v", e)
	}
	b, err := os.ReadFile(filepath.Join(out, "hang.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("the hung command (pid %d) still runs: kill -0: %v", pid, err)
	}
	if e := rec.wait(t, 1, "run done", "d-next"); e.Err != "" {
		t.Errorf("next run: %+v", e)
	}
	if got := runsLog(t, out); strings.Join(got, "|") != "push d-next refs/heads/next" {
		t.Errorf("runs.log = %q", got)
	}
}

// A run refused by the run lock (another run holds the hosts) waits for it,
// then runs.
func TestRunWaitsForTheRunLock(t *testing.T) {
	state := t.TempDir()
	dir := t.TempDir()
	planPath := filepath.Join(dir, "plan.star")
	release := filepath.Join(dir, "release")
	out := filepath.Join(dir, "out.log")
	// By hand (no event) the plan holds the lock until release exists.
	src := fmt.Sprintf(`
def main(ctx):
    if ctx.event == None:
        def wait(h):
            command(cmd = "while [ ! -e %s ]; do sleep 0.05; done")
        ctx.apply("all", wait)
        return
    def record(h):
        command(cmd = "echo %%s >> %s" %% ctx.event.delivery)
    ctx.apply("all", record)
`, release, out)
	if err := os.WriteFile(planPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := func(ctx context.Context) (*inventory.Inventory, []string, error) {
		inv := inventory.New()
		err := inv.Add(&inventory.Host{Name: "localhost", Address: "localhost", Connection: "local"})
		return inv, []string{"local"}, err
	}
	opts := engine.Options{StateDir: state}
	manualStarted := make(chan struct{})
	manual := make(chan error, 1)
	go func() {
		o := opts
		o.Inventories = []string{"local"}
		o.OnEvent = func(e engine.Event) {
			if e.Event == "host_start" {
				close(manualStarted)
			}
		}
		i, _, _ := inv(context.Background())
		p, err := plan.Load(planPath)
		if err != nil {
			manual <- err
			return
		}
		defer p.Close()
		_, err = engine.Run(context.Background(), p, i, o)
		manual <- err
	}()
	<-manualStarted

	rec := newRecorder()
	_, base := start(t, Options{Run: PlanRunner(planPath, inv, opts), Log: rec.log, LockRetry: 50 * time.Millisecond})
	if status, answer := push("d-1", "a").post(t, base); status != http.StatusAccepted {
		t.Fatalf("status %d %v", status, answer)
	}
	if e := rec.wait(t, 1, "waiting for the run lock", "d-1"); !strings.Contains(e.Err, "in progress") {
		t.Errorf("lock entry: %+v", e)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the delivery ran while the manual run held the lock")
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-manual; err != nil {
		t.Fatalf("manual run: %v", err)
	}
	if e := rec.wait(t, 1, "run done", "d-1"); e.Err != "" {
		t.Errorf("run: %+v", e)
	}
	if b, _ := os.ReadFile(out); string(b) != "d-1\n" {
		t.Errorf("out.log = %q", b)
	}
}

func TestHealthzAndMethods(t *testing.T) {
	rec := newRecorder()
	_, base := start(t, Options{Run: countingRun(nil), Log: rec.log})
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/healthz", http.StatusOK},
		{"HEAD", "/healthz", http.StatusOK},
		{"GET", "/", http.StatusMethodNotAllowed},
		{"PUT", "/hooks/deploy", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
		if c.want == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "POST" {
			t.Errorf("%s %s: Allow = %q", c.method, c.path, resp.Header.Get("Allow"))
		}
	}
	if n := rec.count("request"); n != 4 {
		t.Errorf("%d requests logged, want 4", n)
	}
}

// Closing the server drops queued deliveries without remembering them.
func TestCloseDropsQueuedDeliveries(t *testing.T) {
	release := make(chan struct{})
	rec := newRecorder()
	deliveries := filepath.Join(t.TempDir(), "deliveries")
	s, base := start(t, Options{Run: countingRun(release), Log: rec.log, Deliveries: deliveries})
	push("d-1", "a").post(t, base)
	rec.wait(t, 1, "run started", "d-1")
	push("d-2", "a").post(t, base)
	s.Close()
	if e := rec.wait(t, 1, "run failed", "d-1"); !strings.Contains(e.Err, "context canceled") {
		t.Errorf("d-1: %+v", e)
	}
	if e := rec.wait(t, 1, "run dropped", "d-2"); !strings.Contains(e.Err, "redelivery") {
		t.Errorf("d-2: %+v", e)
	}
	b, err := os.ReadFile(deliveries)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "d-1\n" {
		t.Errorf("remembered %q, want only the delivery that started", b)
	}
}
