package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

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
