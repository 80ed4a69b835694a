package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// <state>/known_hosts holds the host keys orch pinned for machines it
// created; runs trust it beside the known_hosts files.

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
