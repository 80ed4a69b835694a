package engine

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FileStore keeps journals in a state directory, one folder per run:
//
//	runs/<id>/run.json      what was run (RunRecord), written atomically
//	runs/<id>/events.jsonl  every event, one write(2) each
//	runs/<id>/steps.jsonl   step records, each synced
//	runs/<id>/notes.jsonl   files read and hosts added or removed, each synced
//	runs/<id>/result.json   how the run ended, written atomically
//
// The same directory holds locks/ (FileLocks), known_hosts (the host keys
// orch pinned for machines it created) and handlers/ (pending handlers).
type FileStore struct {
	Dir string
}

var _ JournalStore = FileStore{}

// DefaultStateDir is where runs are journaled when Options.StateDir is
// empty: .orch in the working directory. (cmd/orch uses $ORCH_STATE
// when it is set.)
const DefaultStateDir = ".orch"

func newRunID() string {
	var b [3]byte
	rand.Read(b[:])
	// Milliseconds too, so that IDs sort as the runs started.
	return time.Now().UTC().Format("20060102-150405.000") + "-" + hex.EncodeToString(b[:])
}

// Create implements JournalStore.
func (s FileStore) Create(rec RunRecord) (Journal, error) {
	if !validRunID(rec.ID) {
		return nil, fmt.Errorf("journal: %q cannot name a run", rec.ID)
	}
	dir := filepath.Join(s.Dir, "runs", rec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err == nil {
		err = writeFileAtomic(filepath.Join(dir, "run.json"), b)
	}
	j := &fileJournal{dir: dir}
	for _, f := range []struct {
		name string
		to   **os.File
	}{{"events.jsonl", &j.events}, {"steps.jsonl", &j.steps}, {"notes.jsonl", &j.notes}} {
		if err != nil {
			break
		}
		*f.to, err = os.OpenFile(filepath.Join(dir, f.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	}
	if err != nil {
		j.close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	return j, nil
}

// Load implements JournalStore.
func (s FileStore) Load(id string) (*History, error) {
	rec, err := ReadRunRecord(s.Dir, id)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, "runs", id)
	h := &History{Record: rec, Files: map[string]string{}, Hosts: map[string]string{}}
	for name, d := range rec.PlanFiles {
		h.Files[name] = d
	}
	f, err := os.Open(filepath.Join(dir, "steps.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	h.Done, err = completedSteps(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("run %s: steps.jsonl: %w", id, err)
	}
	// Runs journaled before notes existed have none: nothing to add.
	if f, err := os.Open(filepath.Join(dir, "notes.jsonl")); err == nil {
		notes, err := readNotes(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("run %s: notes.jsonl: %w", id, err)
		}
		for _, n := range notes {
			switch {
			case n.File != "":
				h.Files[n.File] = n.Digest
			case n.Host != "":
				h.Hosts[n.Host] = n.Change
			}
		}
	}
	return h, nil
}

// ReadRunRecord reads run.json of an earlier run, for `orch resume`;
// stateDir "" means DefaultStateDir. The error names a run that does
// not exist.
func ReadRunRecord(stateDir, id string) (RunRecord, error) {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	if !validRunID(id) {
		return RunRecord{}, fmt.Errorf("%q is not a run ID (the folder names under %s)", id, filepath.Join(stateDir, "runs"))
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "runs", id, "run.json"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return RunRecord{}, fmt.Errorf("no run %s under %s", id, filepath.Join(stateDir, "runs"))
		}
		return RunRecord{}, err
	}
	rec, err := parseRunRecord(b)
	if err != nil {
		return rec, fmt.Errorf("run %s: run.json: %w", id, err)
	}
	if rec.ID != id {
		return rec, fmt.Errorf("run %s: run.json is the record of run %q", id, rec.ID)
	}
	return rec, nil
}

// validRunID accepts what can name a run's folder: no separators, no dot
// names, no control characters.
func validRunID(id string) bool {
	if id == "" || id == "." || id == ".." || len(id) > 200 {
		return false
	}
	for _, r := range id {
		if r == '/' || r == '\\' || r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// parseRunRecord decodes run.json. Every field but the ID and the plan is
// optional, so that records of older orch versions still resume.
func parseRunRecord(b []byte) (RunRecord, error) {
	var rec RunRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return RunRecord{}, err
	}
	switch {
	case rec.ID == "":
		return rec, errors.New("no run ID")
	case rec.Plan == "":
		return rec, errors.New("no plan")
	}
	return rec, nil
}

// completedSteps reads a steps journal: the steps whose last record is
// "done", with their results. A line that does not parse is a record torn
// by a crash mid-write; it counts as not written.
func completedSteps(r io.Reader) (map[string]json.RawMessage, error) {
	last := map[string]StepRecord{}
	err := eachLine(r, func(line []byte) {
		var rec StepRecord
		if json.Unmarshal(line, &rec) != nil || rec.Step == "" {
			return
		}
		switch rec.Status {
		case string(StepDone), string(StepUndone), string(StepFailed):
			last[rec.Step] = rec
		}
	})
	done := map[string]json.RawMessage{}
	for name, rec := range last {
		if rec.Status == string(StepDone) {
			done[name] = rec.Result
		}
	}
	return done, err
}

// readNotes reads a notes journal, skipping torn records.
func readNotes(r io.Reader) ([]Note, error) {
	var notes []Note
	err := eachLine(r, func(line []byte) {
		var n Note
		if json.Unmarshal(line, &n) != nil {
			return
		}
		if (n.File != "" && n.Digest != "") || (n.Host != "" && (n.Change == "added" || n.Change == "removed")) {
			notes = append(notes, n)
		}
	})
	return notes, err
}

// eachLine calls fn with every non-empty line; records are at most 64 MiB.
func eachLine(r io.Reader, fn func([]byte)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			fn(line)
		}
	}
	return sc.Err()
}

// fileJournal is one run's journal in a FileStore.
type fileJournal struct {
	dir                  string
	events, steps, notes *os.File

	written atomic.Int64 // events written
	syncMu  sync.Mutex   // held while syncing events
	synced  int64        // events known durable, under syncMu
}

// Event appends an event with one write(2), so a killed run loses at most
// the event in flight; host outcomes, interruptions and the summary are
// also synced to disk.
func (j *fileJournal) Event(e Event) error {
	if _, err := j.write(e); err != nil {
		return err
	}
	switch e.Event {
	case "host_done", "interrupted", "summary":
		return j.events.Sync()
	}
	return nil
}

// write appends an event without syncing it and returns how many events
// the journal holds.
func (j *fileJournal) write(e Event) (int64, error) {
	// MarshalJSON itself, not through json.Marshal, which would encode the
	// event by reflection only to find its MarshalJSON and then compact the
	// output a second time: the same bytes at about half the cost.
	b, err := e.MarshalJSON()
	if err != nil {
		return 0, err
	}
	if _, err := j.events.Write(append(b, '\n')); err != nil {
		return 0, err
	}
	return j.written.Add(1), nil
}

// hostDone appends a host_done event like Event, but returns the sync that
// makes it durable, for the engine to run once it has released the run's
// lock: hosts that finish at once then share fsyncs, where each used to
// hold the lock for one of its own while the others queued behind it
// (1000 hosts: 5 s of a 14 s run), every one holding all its state.
func (j *fileJournal) hostDone(e Event) (durable func() error, err error) {
	n, err := j.write(e)
	if err != nil {
		return nil, err
	}
	return func() error { return j.syncTo(n) }, nil
}

// syncTo makes the first n events durable, unless a sync that started
// after they were written already did. It may run alongside write.
func (j *fileJournal) syncTo(n int64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.synced >= n {
		return nil
	}
	upTo := j.written.Load()
	if err := j.events.Sync(); err != nil {
		return err
	}
	j.synced = upTo
	return nil
}

// Step appends a step record and syncs it: a killed run must not forget a
// step that completed.
func (j *fileJournal) Step(s StepRecord) error { return appendSynced(j.steps, s) }

// Note appends a note and syncs it.
func (j *fileJournal) Note(n Note) error { return appendSynced(j.notes, n) }

func appendSynced(f *os.File, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return err
	}
	return f.Sync()
}

// Finish writes result.json and closes the journal's files.
func (j *fileJournal) Finish(r Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		err = writeFileAtomic(filepath.Join(j.dir, "result.json"), b)
	}
	if cerr := j.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (j *fileJournal) close() error {
	var first error
	for _, f := range []*os.File{j.events, j.steps, j.notes} {
		if f == nil {
			continue
		}
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
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
