package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/orch-dev/orch/inventory"
)

// LockedError is returned when another run holds a lock this run needs:
// one of its hosts, or its plan with the same inventory.
type LockedError struct {
	Key    string     // the lock, such as "host ssh 10.0.0.5:22"
	What   string     // what it guards, in words: "host web1 (ssh 10.0.0.5:22)"
	Holder LockHolder // who holds it
	Where  string     // where the store keeps it (a file of FileLocks)
}

func (e *LockedError) Error() string {
	what := e.What
	if what == "" {
		what = e.Key
	}
	h := e.Holder
	msg := fmt.Sprintf("%s is in use by a run in progress: run %s, pid %d, by %s on %s since %s",
		what, h.RunID, h.PID, h.User, h.Host, h.Since.Local().Format(time.RFC3339))
	if e.Where != "" {
		msg += " (lock " + e.Where + ")"
	}
	return msg
}

// FileLocks keeps locks as files in a directory, one per key, each held
// with flock(2): the kernel releases it when the holding process ends,
// however it ends, so a lock left by a dead run is free again and is taken
// over with a notice (its file still names the run that died). It works
// for the runs of one machine; controllers on several machines need a
// LockStore on a shared coordination service.
type FileLocks struct {
	Dir string
}

var _ LockStore = FileLocks{}

// Session implements LockStore.
func (l FileLocks) Session(holder LockHolder) (LockSession, error) {
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("locks: %w", err)
	}
	return &fileLockSession{dir: l.Dir, holder: holder, held: map[string]*os.File{}}, nil
}

type fileLockSession struct {
	dir    string
	holder LockHolder

	mu   sync.Mutex
	held map[string]*os.File
}

// lockRecord is the content of a lock file.
type lockRecord struct {
	Key string `json:"key"`
	LockHolder
}

func (s *fileLockSession) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:12])+".lock")
}

// Lock implements LockSession. Keys are taken in sorted order; on a
// refusal the ones this call took are given back.
func (s *fileLockSession) Lock(keys []string) ([]StaleLock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	var taken []string
	var stale []StaleLock
	for _, key := range keys {
		if s.held[key] != nil {
			continue
		}
		f, prev, err := s.take(key)
		if err != nil {
			for _, k := range taken {
				s.release(k)
			}
			return nil, err
		}
		s.held[key] = f
		taken = append(taken, key)
		if prev.RunID != "" && prev.RunID != s.holder.RunID {
			stale = append(stale, StaleLock{Key: key, Holder: prev.LockHolder})
		}
	}
	return stale, nil
}

// take locks one key's file and records the session's holder in it. It
// returns what the file held before: a holder that never released it.
func (s *fileLockSession) take(key string) (*os.File, lockRecord, error) {
	path := s.path(key)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, lockRecord{}, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, lockRecord{}, &LockedError{Key: key, Holder: readHolder(path), Where: path}
		}
		return nil, lockRecord{}, fmt.Errorf("lock %s: %w", path, err)
	}
	var prev lockRecord
	if raw, err := os.ReadFile(path); err == nil && len(raw) > 0 {
		json.Unmarshal(raw, &prev)
	}
	b, _ := json.Marshal(lockRecord{Key: key, LockHolder: s.holder})
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(b, 0)
	}
	if err != nil {
		f.Close()
		return nil, lockRecord{}, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, prev, nil
}

// readHolder reads the holder of a held lock. A holder writes its record
// just after taking the lock, so an empty file is read again briefly.
func readHolder(path string) LockHolder {
	var rec lockRecord
	for range 20 {
		raw, err := os.ReadFile(path)
		if err == nil && json.Unmarshal(raw, &rec) == nil && rec.RunID != "" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return rec.LockHolder
}

// release empties a key's file, so the next holder sees a clean release,
// and unlocks it. Callers hold s.mu.
func (s *fileLockSession) release(key string) {
	f := s.held[key]
	if f == nil {
		return
	}
	f.Truncate(0)
	f.Close()
	delete(s.held, key)
}

// Close implements LockSession.
func (s *fileLockSession) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.held {
		s.release(key)
	}
	return nil
}

// hostLockKey names a host by how orch reaches it, so that two inventories
// that call one machine by different names still lock the same key: the
// connection type and its address (ssh: address and port; local: this
// machine). It cannot see through ssh_config aliases (HostName).
func hostLockKey(h *inventory.Host) string {
	addr := h.Address
	if addr == "" {
		addr = h.Name
	}
	switch h.Connection {
	case "", "ssh":
		port := h.Port
		if port == 0 {
			port = 22
		}
		return "host ssh " + net.JoinHostPort(strings.ToLower(addr), strconv.Itoa(port))
	case "local":
		name, _ := os.Hostname()
		return "host local " + name
	}
	return "host " + h.Connection + " " + addr
}

// planLockKey names a plan run against its inventories: the same plan and
// inventory never run twice at once, whatever hosts they reach (two DNS
// swaps at once would create, and undo, the same machines).
func planLockKey(planPath string, inventories []string) string {
	if abs, err := filepath.Abs(planPath); err == nil && fileExists(planPath) {
		planPath = abs
	}
	key := "plan " + planPath
	for _, inv := range inventories {
		key += " -i " + inv
	}
	return key
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// currentUser is the name the lock holder records.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}
