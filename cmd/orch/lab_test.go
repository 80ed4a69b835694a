package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLabDir: one lab per machine, whichever directory orch runs from.
func TestLabDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("ORCH_LAB_STATE", "")
	t.Setenv("XDG_STATE_HOME", "")
	dirs := map[string]bool{}
	for _, wd := range []string{t.TempDir(), t.TempDir()} {
		t.Chdir(wd)
		d, err := labDir()
		if err != nil {
			t.Fatal(err)
		}
		dirs[d] = true
	}
	if want := filepath.Join(home, ".local", "state", "orch", "lab"); len(dirs) != 1 || !dirs[want] {
		t.Errorf("lab dirs from two working directories: %v, want only %s", dirs, want)
	}

	t.Setenv("XDG_STATE_HOME", "relative/ignored")
	if d, _ := labDir(); d != filepath.Join(home, ".local", "state", "orch", "lab") {
		t.Errorf("a relative XDG_STATE_HOME was used: %s", d)
	}
	xdg := t.TempDir()
	t.Setenv("XDG_STATE_HOME", xdg)
	if d, _ := labDir(); d != filepath.Join(xdg, "orch", "lab") {
		t.Errorf("with XDG_STATE_HOME: %s", d)
	}
	t.Setenv("ORCH_LAB_STATE", "mylab")
	wd, _ := os.Getwd()
	if d, _ := labDir(); d != filepath.Join(wd, "mylab") {
		t.Errorf("with ORCH_LAB_STATE=mylab: %s, want it absolute", d)
	}
}
