package hostfacts

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCaptureHere, with ORCH_CAPTURE_FACTS=NAME, records every fact's
// output on this machine as testdata/facts/FACT/NAME.json.
func TestCaptureHere(t *testing.T) {
	name := os.Getenv("ORCH_CAPTURE_FACTS")
	if name == "" {
		t.Skip("set ORCH_CAPTURE_FACTS=CASE to record this machine's facts")
	}
	for fact, f := range Facts {
		out, _ := exec.Command("/bin/sh", "-c", f.Command).Output()
		v, err := f.Parser(out)
		if err != nil {
			t.Fatalf("%s: %v", fact, err)
		}
		b, _ := json.MarshalIndent(fixture{Command: f.Command, Output: string(out), Fact: v, Source: os.Getenv("ORCH_CAPTURE_SOURCE")}, "", "  ")
		dir := filepath.Join("testdata", "facts", fact)
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
