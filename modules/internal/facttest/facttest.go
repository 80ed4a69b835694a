// Package facttest checks shared facts against recorded outputs of their
// scripts, pyinfra style: testdata/facts/FACT/CASE.json beside the module
// holds the keys, the script as it was run, its output, where the output
// comes from and what the parser must make of it. Only tests import it.
package facttest

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

// Fixture is one recorded output of a fact's script for some keys.
type Fixture struct {
	Keys    []string        `json:"keys"`
	Command string          `json:"command"`
	Output  string          `json:"output"`
	Fact    json.RawMessage `json:"fact"`
	Source  string          `json:"source"` // where and how the output was captured or transcribed
}

// Reparse is the variable that turns Check into a tool: it rewrites each
// fixture's fact with what the parser makes of it today (and fills in the
// command of a transcribed fixture written without one), for review.
const Reparse = "ORCH_FIXTURE_REPARSE"

func reparsing() bool { return os.Getenv(Reparse) != "" }

func path(fact, name string) string { return filepath.Join("testdata", "facts", fact, name+".json") }

// Load reads testdata/facts/FACT/NAME.json and parses its output.
func Load(t testing.TB, fact, name string) (Fixture, map[string]any) {
	t.Helper()
	var fx Fixture
	b, err := os.ReadFile(path(fact, name))
	if err == nil {
		err = json.Unmarshal(b, &fx)
	}
	if err != nil {
		t.Fatal(err)
	}
	f, ok := modules.LookupFact(fact)
	if !ok {
		t.Fatalf("no fact %q", fact)
	}
	vals, err := f.Parse([]byte(fx.Output), fx.Keys)
	if err != nil {
		t.Fatalf("%s/%s: %v", fact, name, err)
	}
	return fx, vals
}

// Check parses every fixture under testdata/facts with its fact's parser.
// A fixture whose command is not the fact's script today is stale: its
// output proves nothing about the current script. Each fact must have a
// fixture for each of hosts (a case's name starts with its host:
// "debian12-systemd").
func Check(t *testing.T, facts []string, hosts []string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "facts", "*", "*.json"))
	cases := map[string]map[string]bool{}
	for _, file := range files {
		fact := filepath.Base(filepath.Dir(file))
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(fact+"/"+name, func(t *testing.T) {
			fx, vals := Load(t, fact, name)
			if fx.Source == "" {
				t.Error("fixture does not say where its output comes from")
			}
			f, _ := modules.LookupFact(fact)
			tool := reparsing()
			if fx.Command == "" && tool {
				fx.Command = f.Script(fx.Keys) // a transcribed output, written for today's script
			}
			if got := f.Script(fx.Keys); got != fx.Command {
				t.Fatalf("stale fixture: recorded for\n%s\nbut the fact runs\n%s", fx.Command, got)
			}
			got, _ := json.Marshal(vals)
			if tool {
				fx.Fact = got
				b, _ := json.MarshalIndent(fx, "", "  ")
				if err := os.WriteFile(path(fact, name), append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
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
	if reparsing() {
		return
	}
	for _, fact := range facts {
		for _, host := range hosts {
			if !cases[fact][host] {
				t.Errorf("fact %s has no fixture from %s", fact, host)
			}
		}
	}
}

// Capture, with ORCH_CAPTURE_CONTAINER=NAME and ORCH_CAPTURE_CASE=CASE,
// runs a fact's script (ORCH_CAPTURE_FACT) for ORCH_CAPTURE_KEYS
// (space-separated) in that docker container and records
// testdata/facts/FACT/CASE.json, with ORCH_CAPTURE_SOURCE as its source.
// Without them it skips: it is a recording tool, not a test.
func Capture(t *testing.T) {
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
	b, _ := json.MarshalIndent(Fixture{Keys: keys, Command: script, Output: string(out), Fact: parsed, Source: os.Getenv("ORCH_CAPTURE_SOURCE")}, "", "  ")
	os.MkdirAll(filepath.Dir(path(fact, name)), 0o755)
	if err := os.WriteFile(path(fact, name), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
