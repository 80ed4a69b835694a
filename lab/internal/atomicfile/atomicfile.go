// Package atomicfile replaces files so that readers in other processes
// (the CLI reading known_hosts while the cloud rewrites it, a restarted
// cloud reading its state) never see half a file, and a crash leaves the
// old file or the new one.
package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
)

// Write replaces path with data: a temp file beside it, synced, then
// renamed over it. A file that already holds data with mode is left alone,
// mtime and all.
func Write(path string, data []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == mode {
			return nil
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
