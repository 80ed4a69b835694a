package service

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
)

// factFixture is one recorded output of a fact's script, pyinfra style,
// for the keys it was recorded for.
type factFixture struct {
	Keys    []string        `json:"keys"`
	Command string          `json:"command"`
	Output  string          `json:"output"`
	Fact    json.RawMessage `json:"fact"`
	Source  string          `json:"source"` // where and how the output was captured or transcribed
}

func loadFactFixture(t *testing.T, fact, name string) (factFixture, map[string]any) {
	t.Helper()
	var fx factFixture
	b, err := os.ReadFile(filepath.Join("testdata", "facts", fact, name+".json"))
	if err == nil {
		err = json.Unmarshal(b, &fx)
	}
	if err != nil {
		t.Fatal(err)
	}
	f, _ := modules.LookupFact(fact)
	vals, err := f.Parse([]byte(fx.Output), fx.Keys)
	if err != nil {
		t.Fatalf("%s/%s: %v", fact, name, err)
	}
	return fx, vals
}

// TestFactFixtures parses every recorded output with its fact's parser. A
// fixture whose command is not the fact's script today is stale: its
// output proves nothing about the current script.
func TestFactFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "facts", "*", "*.json"))
	cases := map[string]map[string]bool{}
	for _, file := range files {
		fact := filepath.Base(filepath.Dir(file))
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(fact+"/"+name, func(t *testing.T) {
			fx, vals := loadFactFixture(t, fact, name)
			if fx.Source == "" {
				t.Error("fixture does not say where its output comes from")
			}
			f, _ := modules.LookupFact(fact)
			if fx.Command == "" && os.Getenv("ORCH_FIXTURE_REPARSE") != "" {
				fx.Command = f.Script(fx.Keys) // a transcribed output, written for today's script
			}
			if got := f.Script(fx.Keys); got != fx.Command {
				t.Fatalf("stale fixture: recorded for\n%s\nbut the fact runs\n%s", fx.Command, got)
			}
			got, _ := json.Marshal(vals)
			if os.Getenv("ORCH_FIXTURE_REPARSE") != "" { // a tool: review the diff
				fx.Fact = got
				b, _ := json.MarshalIndent(fx, "", "  ")
				os.WriteFile(filepath.Join("testdata", "facts", fact, name+".json"), append(b, '\n'), 0o644)
				return
			}
			var want bytes.Buffer
			if err := json.Compact(&want, fx.Fact); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("parsed\n%s\nwant\n%s", got, want.Bytes())
			}
			if cases[fact] == nil {
				cases[fact] = map[string]bool{}
			}
			cases[fact][strings.SplitN(name, "-", 2)[0]] = true
		})
	}
	for _, fact := range []string{FactName} {
		for _, host := range []string{"debian12", "ubuntu2404", "freebsd14"} {
			if !cases[fact][host] {
				t.Errorf("fact %s has no fixture from %s", fact, host)
			}
		}
	}
}

// TestCapture, with ORCH_CAPTURE_CONTAINER=NAME and ORCH_CAPTURE_CASE=CASE,
// runs a fact's script (ORCH_CAPTURE_FACT) for ORCH_CAPTURE_KEYS
// (space-separated) in that docker container and records
// testdata/facts/FACT/CASE.json, with ORCH_CAPTURE_SOURCE as its source.
// It is how the Debian fixtures were captured (sysvinit in a lab image
// container, systemd in a lab image container booted with systemd).
func TestCapture(t *testing.T) {
	container, name := os.Getenv("ORCH_CAPTURE_CONTAINER"), os.Getenv("ORCH_CAPTURE_CASE")
	if container == "" || name == "" {
		t.Skip("a recording tool: set ORCH_CAPTURE_CONTAINER, ORCH_CAPTURE_CASE, ORCH_CAPTURE_FACT and ORCH_CAPTURE_KEYS")
	}
	fact, keys := os.Getenv("ORCH_CAPTURE_FACT"), strings.Fields(os.Getenv("ORCH_CAPTURE_KEYS"))
	f, ok := modules.LookupFact(fact)
	if !ok {
		t.Fatalf("no fact %q", fact)
	}
	script := f.Script(keys)
	cmd := exec.Command("docker", "exec", "-i", container, "/bin/sh", "-s")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	vals, err := f.Parse(out, keys)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	parsed, _ := json.Marshal(vals)
	b, _ := json.MarshalIndent(factFixture{Keys: keys, Command: script, Output: string(out), Fact: parsed, Source: os.Getenv("ORCH_CAPTURE_SOURCE")}, "", "  ")
	dir := filepath.Join("testdata", "facts", fact)
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
