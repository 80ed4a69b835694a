package hostfacts

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixture is one captured output of a fact's command, pyinfra style.
type fixture struct {
	Command string `json:"command"`
	Output  string `json:"output"`
	Fact    any    `json:"fact"`
	Source  string `json:"source"` // where and how the output was captured
}

// TestFixtures parses every recorded output with the fact's parser. A
// fixture whose command is not the fact's command today is stale: its
// output proves nothing about the current command.
func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "facts", "*", "*.json"))
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	seen := map[string]int{}
	for _, file := range files {
		fact := filepath.Base(filepath.Dir(file))
		t.Run(fact+"/"+strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			f, ok := Facts[fact]
			if !ok {
				t.Fatalf("no fact %q", fact)
			}
			var fx fixture
			b, err := os.ReadFile(file)
			if err == nil {
				err = json.Unmarshal(b, &fx)
			}
			if err != nil {
				t.Fatal(err)
			}
			if fx.Source == "" {
				t.Error("fixture does not say where its output comes from")
			}
			if fx.Command != f.Command {
				t.Fatalf("stale fixture: recorded for command\n%s\nbut the fact runs\n%s", fx.Command, f.Command)
			}
			got, err := f.Parser([]byte(fx.Output))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, fx.Fact) {
				t.Errorf("parsed %#v, want %#v", got, fx.Fact)
			}
			seen[fact]++
		})
	}
	for fact := range Facts {
		if seen[fact] < 3 {
			t.Errorf("fact %s has %d fixtures; want Debian, Ubuntu and FreeBSD at least", fact, seen[fact])
		}
	}
}

// TestCommandsRunHere runs every command with this machine's /bin/sh: each
// must print something its parser accepts.
func TestCommandsRunHere(t *testing.T) {
	for name, f := range Facts {
		out, err := exec.Command("/bin/sh", "-c", f.Command).Output()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := f.Parser(out); err != nil {
			t.Errorf("%s: %v (output %q)", name, err, out)
		}
	}
}

func TestParseOSReleaseQuoting(t *testing.T) {
	got := parseOSRelease([]byte("# comment\nNAME=\"Foo \\\"Bar\\\"\"\nID='x'\nVERSION_ID=1\nEMPTY=\n"))
	want := map[string]string{"NAME": `Foo "Bar"`, "ID": "x", "VERSION_ID": "1", "EMPTY": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v", got)
	}
}
