package engine

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
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
	"syscall"
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

// StateDir is where runs are journaled: $ORCH_STATE, else .orch in the
// working directory.
func StateDir() string {
	if d := os.Getenv("ORCH_STATE"); d != "" {
		return d
	}
	return ".orch"
}

func newRunID() string {
	var b [3]byte
	rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

func openJournal(p *plan.Plan, opts Options) (*journal, error) {
	state := opts.StateDir
	if state == "" {
		state = StateDir()
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

// ReadRunRecord reads run.json of an earlier run, for `orch resume`.
func ReadRunRecord(stateDir, id string) (RunRecord, error) {
	if stateDir == "" {
		stateDir = StateDir()
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

func (j *journal) event(e Event) {
	if j.events == nil {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	j.events.Write(append(b, '\n'))
}

type stepRecord struct {
	Step   string          `json:"step"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
}

// step journals a step record and syncs it: a killed run must not forget a
// step that completed.
func (j *journal) step(name, status string, result json.RawMessage) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if status == "skipped" {
		status = "done" // carried over from the resumed run
	}
	b, _ := json.Marshal(stepRecord{Step: name, Status: status, Result: result})
	j.steps.Write(append(b, '\n'))
	j.steps.Sync()
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

func (j *journal) finish(runErr error) {
	res := map[string]any{"ok": runErr == nil, "finished": time.Now().UTC()}
	if runErr != nil {
		res["error"] = runErr.Error()
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	writeFileAtomic(filepath.Join(j.dir, "result.json"), b)
	j.events.Close()
	j.steps.Close()
	j.releaseLock()
}

func (j *journal) pinnedKeysFile() string { return filepath.Join(j.state, "known_hosts") }

// pinKey records the host key orch generated for a machine it created.
func (j *journal) pinKey(line string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	f, err := os.OpenFile(j.pinnedKeysFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pinning host key: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.TrimSpace(line) + "\n"); err != nil {
		return fmt.Errorf("pinning host key: %w", err)
	}
	return f.Sync()
}

// lockHolder is the content of a lock file.
type lockHolder struct {
	RunID string    `json:"run_id"`
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	User  string    `json:"user"`
	Since time.Time `json:"since"`
}

// LockedError is returned when another run holds the plan's lock.
type LockedError struct {
	Path   string
	Holder lockHolder
}

func (e *LockedError) Error() string {
	h := e.Holder
	return fmt.Sprintf("another run of this plan and inventory is in progress: run %s, pid %d, by %s on %s since %s (lock %s)",
		h.RunID, h.PID, h.User, h.Host, h.Since.Format(time.RFC3339), e.Path)
}

// acquireLock takes the lock of this plan and inventory: an flock(2) on a
// file under <state>/locks that the kernel releases when the process ends,
// however it ends. The file holds the holder's details for the refusal.
func (j *journal) acquireLock(p string, inventories []string) error {
	key := p + "\x00" + strings.Join(inventories, "\x00")
	if abs, err := filepath.Abs(p); err == nil {
		key = abs + "\x00" + strings.Join(inventories, "\x00")
	}
	sum := sha256.Sum256([]byte(key))
	dir := filepath.Join(j.state, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	path := filepath.Join(dir, hex.EncodeToString(sum[:8])+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			var holder lockHolder
			raw, _ := os.ReadFile(path)
			json.Unmarshal(raw, &holder)
			return &LockedError{Path: path, Holder: holder}
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(lockHolder{RunID: j.id, PID: os.Getpid(), Host: host, User: os.Getenv("USER"), Since: time.Now().UTC()})
	if err := f.Truncate(0); err == nil {
		f.WriteAt(b, 0)
	}
	j.lock = f
	return nil
}

// releaseLock ends the run's hold; the file stays for the next run.
func (j *journal) releaseLock() {
	if j.lock != nil {
		j.lock.Truncate(0)
		j.lock.Close()
		j.lock = nil
	}
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp." + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
