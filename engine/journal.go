package engine

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orch-dev/orch/plan"
)

// The journal of a run lives in <state>/runs/<id>/:
//
//	run.json      what was run: plan, inventories, args, check, limit
//	events.jsonl  every event, as streamed
//	steps.jsonl   step records, for resume
//	result.json   how the run ended
//
// <state>/locks/ holds one lock per plan and inventory, and
// <state>/known_hosts the host keys orch pinned for machines it created.
type journal struct {
	id    string
	dir   string
	state string
	lock  *os.File // held with flock for the whole run

	mu     sync.Mutex
	events *os.File
	steps  *os.File
	done   map[string]json.RawMessage // resumed run's completed steps
}

// RunRecord is run.json: enough to resume a run.
type RunRecord struct {
	ID          string            `json:"id"`
	Plan        string            `json:"plan"`
	Inventories []string          `json:"inventories,omitempty"`
	Args        map[string]string `json:"args,omitempty"`
	Check       bool              `json:"check,omitempty"`
	Diff        bool              `json:"diff,omitempty"`
	Limit       string            `json:"limit,omitempty"`
	Forks       int               `json:"forks,omitempty"`
	// SSH trust, so a resumed run checks host keys as the first one did.
	KnownHosts     []string      `json:"known_hosts,omitempty"`
	HostKeyCheck   string        `json:"host_key_check,omitempty"`
	ConnectTimeout time.Duration `json:"connect_timeout,omitempty"`
	ResumedFrom    string        `json:"resumed_from,omitempty"`
	Started        time.Time     `json:"started"`
}

// DefaultStateDir is where runs are journaled when Options.StateDir is
// empty: .orch in the working directory. (cmd/orch uses $ORCH_STATE
// when it is set.)
const DefaultStateDir = ".orch"

func newRunID() string {
	var b [3]byte
	rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

func openJournal(p *plan.Plan, opts Options) (*journal, error) {
	state := opts.StateDir
	if state == "" {
		state = DefaultStateDir
	}
	id := opts.RunID
	if id == "" {
		id = newRunID()
	}
	j := &journal{id: id, state: state, dir: filepath.Join(state, "runs", id)}
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := j.acquireLock(p.Path, opts.Inventories); err != nil {
		os.RemoveAll(j.dir)
		return nil, err
	}
	if opts.Resume != "" {
		done, err := completedSteps(filepath.Join(state, "runs", opts.Resume, "steps.jsonl"))
		if err != nil {
			j.releaseLock()
			os.RemoveAll(j.dir)
			return nil, fmt.Errorf("resume %s: %w", opts.Resume, err)
		}
		j.done = done
	}
	rec := RunRecord{ID: id, Plan: p.Path, Inventories: opts.Inventories, Args: opts.Args,
		Check: opts.Check, Diff: opts.Diff, Limit: opts.Limit, Forks: opts.Forks,
		KnownHosts: opts.SSH.KnownHosts, HostKeyCheck: opts.SSH.HostKeyCheck, ConnectTimeout: opts.SSH.ConnectTimeout,
		ResumedFrom: opts.Resume, Started: time.Now().UTC()}
	if abs, err := filepath.Abs(p.Path); err == nil && fileExists(p.Path) {
		rec.Plan = abs
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	if err := writeFileAtomic(filepath.Join(j.dir, "run.json"), b); err != nil {
		j.releaseLock()
		return nil, fmt.Errorf("journal: %w", err)
	}
	var err error
	if j.events, err = os.OpenFile(filepath.Join(j.dir, "events.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		j.releaseLock()
		return nil, fmt.Errorf("journal: %w", err)
	}
	if j.steps, err = os.OpenFile(filepath.Join(j.dir, "steps.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		j.events.Close()
		j.releaseLock()
		return nil, fmt.Errorf("journal: %w", err)
	}
	return j, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// ReadRunRecord reads run.json of an earlier run, for `orch resume`;
// stateDir "" means DefaultStateDir. The error names a run that does
// not exist.
func ReadRunRecord(stateDir, id string) (RunRecord, error) {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	var rec RunRecord
	b, err := os.ReadFile(filepath.Join(stateDir, "runs", id, "run.json"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return rec, fmt.Errorf("no run %s under %s", id, filepath.Join(stateDir, "runs"))
		}
		return rec, err
	}
	return rec, json.Unmarshal(b, &rec)
}

// event appends an event with one write(2), so a killed run loses at most
// the event in flight; host outcomes and the summary are also synced to
// disk. The caller orders the calls.
func (j *journal) event(e Event) error {
	if j.events == nil {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := j.events.Write(append(b, '\n')); err != nil {
		return err
	}
	if e.Event == "host_done" || e.Event == "summary" {
		return j.events.Sync()
	}
	return nil
}

type stepRecord struct {
	Step   string          `json:"step"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
}

// step journals a step record and syncs it: a killed run must not forget a
// step that completed.
func (j *journal) step(name, status string, result json.RawMessage) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if status == "skipped" {
		status = "done" // carried over from the resumed run
	}
	b, err := json.Marshal(stepRecord{Step: name, Status: status, Result: result})
	if err != nil {
		return err
	}
	if _, err := j.steps.Write(append(b, '\n')); err != nil {
		return err
	}
	return j.steps.Sync()
}

func (j *journal) stepDone(name string) (json.RawMessage, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	r, ok := j.done[name]
	return r, ok
}

// completedSteps reads a steps journal: steps whose last record is "done".
func completedSteps(path string) (map[string]json.RawMessage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	last := map[string]stepRecord{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var rec stepRecord
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue // a torn last line from a killed run
		}
		if rec.Status == "done" || rec.Status == "undone" || rec.Status == "failed" {
			last[rec.Step] = rec
		}
	}
	done := map[string]json.RawMessage{}
	for name, rec := range last {
		if rec.Status == "done" {
			done[name] = rec.Result
		}
	}
	return done, sc.Err()
}

func (j *journal) finish(runErr error) error {
	res := map[string]any{"ok": runErr == nil, "finished": time.Now().UTC()}
	if runErr != nil {
		res["error"] = runErr.Error()
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	err := writeFileAtomic(filepath.Join(j.dir, "result.json"), b)
	if cerr := j.events.Close(); err == nil {
		err = cerr
	}
	if cerr := j.steps.Close(); err == nil {
		err = cerr
	}
	j.releaseLock()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// writeFileAtomic writes a file through a synced temporary file and a
// rename, so readers see the old content or the new, never a part.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp." + strconv.Itoa(os.Getpid())
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// safeName makes a host name safe as a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == '\\' {
			return '_'
		}
		return r
	}, s)
}
