package engine

import (
	"encoding/json"
	"time"
)

// A run's journal and its locks sit behind two small interfaces, so that
// controllers that share no disk can share runs: FileStore and FileLocks
// keep them in the state directory of one machine, and a store backed by
// etcd or Consul (a lease or session per run, keys per lock and per record)
// can implement the same contracts. Options.Journals and Options.Locks
// choose them; nil means the files under Options.StateDir.

// Journal records one run as it happens, so that a controller that dies
// loses at most the event in flight and the run can be resumed. Calls never
// overlap. Every error means a record may be lost; the engine then fails
// the run, since it could not be resumed.
type Journal interface {
	// Event appends an event. host_done, interrupted and summary events
	// are durable when Event returns; a crash may lose the others in flight.
	Event(e Event) error
	// Step appends a step record; it is durable when Step returns.
	Step(s StepRecord) error
	// Note appends what a resume must check (a plan file a completed step
	// read, a host the run added or removed); durable when Note returns.
	Note(n Note) error
	// Finish records how the run ended and closes the journal.
	Finish(r Result) error
}

// JournalStore creates the journals of runs and reads them back for
// orch resume.
type JournalStore interface {
	// Create starts the journal of a run. A run ID used before (orch serve
	// retries a run a lock refused under the same ID) continues that
	// journal after the earlier attempt's records.
	Create(rec RunRecord) (Journal, error)
	// Load reads what resuming run id needs. A record torn by a crash
	// mid-write is ignored; a missing run is an error naming it.
	Load(id string) (*History, error)
}

// RunRecord is what was run, as run.json keeps it: enough to run it again
// with the same inputs, and to tell whether those inputs changed since.
type RunRecord struct {
	ID          string            `json:"id"`
	Plan        string            `json:"plan"`
	Inventories []string          `json:"inventories,omitempty"`
	Args        map[string]string `json:"args,omitempty"` // secret ones masked
	// SecretArgs names the -e args given as secret; their values are
	// masked in Args, so a resume must be given them again.
	SecretArgs []string `json:"secret_args,omitempty"`
	// BecomePassword records that the run had a become password (never
	// the password), so a resume asks for it again.
	BecomePassword bool          `json:"become_password,omitempty"`
	Check          bool          `json:"check,omitempty"`
	Diff           bool          `json:"diff,omitempty"`
	Limit          string        `json:"limit,omitempty"`
	Forks          int           `json:"forks,omitempty"`
	ExecTimeout    time.Duration `json:"exec_timeout,omitempty"`
	// SSH trust, so a resumed run checks host keys as the first one did.
	KnownHosts     []string      `json:"known_hosts,omitempty"`
	HostKeyCheck   string        `json:"host_key_check,omitempty"`
	ConnectTimeout time.Duration `json:"connect_timeout,omitempty"`
	ResumedFrom    string        `json:"resumed_from,omitempty"`
	Started        time.Time     `json:"started"`

	// PlanFiles are the digests ("sha256:…") of the plan's files read by
	// the time the run started (its Starlark sources), by name inside the
	// plan's folder; files its steps read later are Notes.
	PlanFiles map[string]string `json:"plan_files,omitempty"`
	// Inventory is the digest of the resolved inventory the run started
	// with, and of each of its hosts.
	Inventory InventoryDigest `json:"inventory"`
}

// InventoryDigest identifies a resolved inventory: the digest of the whole,
// of each host (address, port, user, key, connection, become, groups and
// vars) and of the vars of all, so that a refusal can name what changed.
type InventoryDigest struct {
	Digest string            `json:"digest"`
	Hosts  map[string]string `json:"hosts,omitempty"`
	Vars   string            `json:"vars,omitempty"` // the vars of group all
}

// StepRecord is one change of a step's status, as steps.jsonl keeps it.
type StepRecord struct {
	Step   string          `json:"step"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Note is a record that resume checks: a file of the plan's folder that a
// step read (File and its Digest), or a host that the run added or removed
// through a cloud call (Host and Change, "added" or "removed").
type Note struct {
	File   string `json:"file,omitempty"`
	Digest string `json:"digest,omitempty"`
	Host   string `json:"host,omitempty"`
	Change string `json:"change,omitempty"`
}

// Result is how a run ended, as result.json keeps it.
type Result struct {
	OK          bool      `json:"ok"`
	Error       string    `json:"error,omitempty"`
	Interrupted string    `json:"interrupted,omitempty"` // why the run was cut short (a signal, a deadline)
	Finished    time.Time `json:"finished"`
}

// History is what a resumed run reads of the run it resumes.
type History struct {
	Record RunRecord
	// Done maps each step whose last record is "done" to its result.
	Done map[string]json.RawMessage
	// Files are the digests of every plan file the run read: those of
	// Record.PlanFiles and those noted as its steps completed.
	Files map[string]string
	// Hosts are the hosts the run added or removed, with the last change.
	Hosts map[string]string
}

// LockStore grants runs exclusive use of the hosts they work on.
type LockStore interface {
	// Session opens the locks of one run, held on behalf of holder until
	// the session is closed.
	Session(holder LockHolder) (LockSession, error)
}

// LockSession is the set of locks one run holds.
type LockSession interface {
	// Lock takes every key, or none of them, without waiting. A key that a
	// live run holds fails at once with a *LockedError naming that run. A
	// key whose holder ended without releasing it (its process died, its
	// session expired) is taken over, and returned so the run can say so.
	// Keys this session holds already are kept and not reported.
	Lock(keys []string) (takenOver []StaleLock, err error)
	// Close releases every key of the session.
	Close() error
}

// LockHolder says who holds a lock.
type LockHolder struct {
	RunID string    `json:"run_id"`
	PID   int       `json:"pid"`
	User  string    `json:"user"`
	Host  string    `json:"host"` // the controller's host name
	Since time.Time `json:"since"`
}

// StaleLock is a lock taken over from a holder that is gone.
type StaleLock struct {
	Key    string
	Holder LockHolder
}
