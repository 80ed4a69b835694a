package serve

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// deliveryLog remembers the IDs of the deliveries whose runs started, in
// memory and in a file (one ID a line, each line synced before its run
// starts), so that a replay is refused even after a restart. It keeps the
// newest max IDs; the file is rewritten once it holds twice that many.
type deliveryLog struct {
	path string
	max  int
	f    *os.File
	ids  []string // oldest first
	seen map[string]bool
}

func openDeliveryLog(path string, max int) (*deliveryLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	l := &deliveryLog{path: path, max: max, seen: map[string]bool{}}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// A torn last line from a crash is no ID a sender would reuse;
			// remembering it costs nothing.
			if id := strings.TrimSpace(sc.Text()); id != "" && !l.seen[id] {
				l.ids = append(l.ids, id)
				l.seen[id] = true
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("deliveries %s: %w", path, err)
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	if err := l.compact(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *deliveryLog) has(id string) bool { return l.seen[id] }

// add records id durably: when it returns nil, a restart still knows it.
func (l *deliveryLog) add(id string) error {
	if _, err := l.f.WriteString(id + "\n"); err != nil {
		return fmt.Errorf("deliveries %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("deliveries %s: %w", l.path, err)
	}
	l.ids = append(l.ids, id)
	l.seen[id] = true
	if len(l.ids) >= 2*l.max {
		return l.compact()
	}
	return nil
}

// compact keeps the newest max IDs and rewrites the file with them, through
// a synced temporary file and a rename, then reopens it for appending.
func (l *deliveryLog) compact() error {
	if len(l.ids) > l.max {
		for _, id := range l.ids[:len(l.ids)-l.max] {
			delete(l.seen, id)
		}
		l.ids = append([]string(nil), l.ids[len(l.ids)-l.max:]...)
	}
	tmp := l.path + ".tmp"
	var b strings.Builder
	for _, id := range l.ids {
		b.WriteString(id + "\n")
	}
	err := writeSynced(tmp, b.String())
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("deliveries: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	if l.f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return fmt.Errorf("deliveries: %w", err)
	}
	return nil
}

func writeSynced(path, content string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (l *deliveryLog) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
