package facttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// EachCheck decodes every decision fixture, testdata/check/*.json beside
// the module, into a T and runs fn on it in a subtest named after the file
// (fn gets the file too, to rewrite it under Reparse). It fails when there
// is none.
func EachCheck[T any](t *testing.T, fn func(t *testing.T, file string, fx T)) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "check", "*.json"))
	if len(files) == 0 {
		t.Fatal("no fixtures in testdata/check")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			var fx T
			b, err := os.ReadFile(file)
			if err == nil {
				err = json.Unmarshal(b, &fx)
			}
			if err != nil {
				t.Fatal(err)
			}
			fn(t, file, fx)
		})
	}
}

// Paths records which decision paths the fixtures took, per group (a
// backend, a state): the change path, the no-change path or both.
type Paths map[string]map[bool]bool

// Saw records that a fixture of group took the changed path.
func (p Paths) Saw(group string, changed bool) {
	if p[group] == nil {
		p[group] = map[bool]bool{}
	}
	p[group][changed] = true
}

// Require fails t for every group whose fixtures miss either path; what
// names the groups in the message ("backend", "state").
func (p Paths) Require(t *testing.T, what string, groups ...string) {
	t.Helper()
	for _, g := range groups {
		if !p[g][true] || !p[g][false] {
			t.Errorf("%s %s: fixtures for the change path %v, the no-change path %v; want both", what, g, p[g][true], p[g][false])
		}
	}
}
