package freebsd

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/testkit/fixture"
)

// parsers maps a fixture's command to the parser of its output, returning
// the fact as the fixture records it.
var parsers = map[string]func(c fixture.Command) (any, error){
	"jls": func(c fixture.Command) (any, error) { return ParseJLS([]byte(c.Output)) },
	"bectl list -H": func(c fixture.Command) (any, error) {
		return ParseBectlList([]byte(c.Output))
	},
	"sysrc get": func(c fixture.Command) (any, error) { return ParseSysrc([]byte(c.Output)) },
	"sysrc set": func(c fixture.Command) (any, error) { return ParseSysrcChanges([]byte(c.Output)) },
	"pkg info":  func(c fixture.Command) (any, error) { return ParsePkgInfo([]byte(c.Output)) },
	"service status": func(c fixture.Command) (any, error) {
		return ParseServiceStatus([]byte(c.Output), c.Exit)
	},
	"sysctl kern.boot_id": func(c fixture.Command) (any, error) { return ParseBootID([]byte(c.Output)) },
	"sysctl kern.boottime": func(c fixture.Command) (any, error) {
		t, err := ParseBoottime([]byte(c.Output))
		return t.UTC().Format(time.RFC3339Nano), err
	},
}

// parserFor picks the parser of a fixture from its command line.
func parserFor(c fixture.Command) string {
	cmd := c.Command
	switch {
	case strings.HasPrefix(cmd, "jls") && strings.Contains(cmd, "--libxo json"):
		return "jls"
	case strings.HasPrefix(cmd, "bectl list -H"):
		return "bectl list -H"
	case strings.HasPrefix(cmd, "sysrc ") && strings.Contains(cmd, "="):
		return "sysrc set"
	case strings.HasPrefix(cmd, "sysrc ") && !strings.Contains(cmd, " -"):
		return "sysrc get"
	case cmd == "pkg info":
		return "pkg info"
	case strings.HasPrefix(cmd, "service ") && strings.HasSuffix(cmd, " status"):
		return "service status"
	case strings.Contains(cmd, "kern.boot_id"):
		return "sysctl kern.boot_id"
	case strings.Contains(cmd, "kern.boottime"):
		return "sysctl kern.boottime"
	}
	return ""
}

// TestRecordedOutputs parses every recorded output that has a fact and
// compares the result with it; a fixture with a fact but no parser fails.
func TestRecordedOutputs(t *testing.T) {
	n := 0
	for _, c := range fixture.Glob(t, "freebsd/*/*") {
		if c.Fact == nil {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			parse := parsers[parserFor(c)]
			if parse == nil {
				t.Fatalf("no parser for %q", c.Command)
			}
			got, err := parse(c)
			if err != nil {
				t.Fatal(err)
			}
			var want, have any
			gotJSON, _ := json.Marshal(got)
			json.Unmarshal(c.Fact, &want)
			json.Unmarshal(gotJSON, &have)
			if !reflect.DeepEqual(have, want) {
				t.Errorf("parsed %s\nwant   %s", gotJSON, c.Fact)
			}
		})
	}
	if n < 15 {
		t.Fatalf("only %d fixtures have facts", n)
	}
}

func TestTranscriptJailObject(t *testing.T) {
	// The EuroBSDcon slide shows one jail object; wrapped as jls wraps
	// it, it parses like the derived verbose output.
	c := fixture.Load(t, "freebsd/jls/verbose-json-transcript")
	doc := `{"__version": "2", "jail-information": {"jail": [` + c.Output + `]}}`
	jails, err := ParseJLS([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []Jail{{JID: 6, Name: "www", Hostname: "www", State: "ACTIVE",
		Path: "/jails/instances/13.2-RELEASE-arm64-aarch64/www",
		IPv4: []string{"100.64.186.216"}, IPv6: []string{"fca2:927d:4d9b:bbdb:fdd2::bad8"}}}
	if !reflect.DeepEqual(jails, want) {
		t.Errorf("got %+v\nwant %+v", jails, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"jls not json", second(ParseJLS([]byte("   JID  IP Address\n")))},
		{"jls other version", second(ParseJLS([]byte(`{"__version": "1", "jail-information": {"jail": []}}`)))},
		{"jls no container", second(ParseJLS([]byte(`{"__version": "2"}`)))},
		{"jls bad jid", second(ParseJLS([]byte(`{"__version": "2", "jail-information": {"jail": [{"jid":"x"}]}}`)))},
		{"bectl header", second(ParseBectlList([]byte("BE Active Mountpoint Space Created\n")))},
		{"bectl flag", second(ParseBectlList([]byte("a\tNX\t-\t1K\t2023-01-01 00:00\n")))},
		{"bectl space", second(ParseBectlList([]byte("a\t-\t-\t1 K\t2023-01-01 00:00\n")))},
		{"bectl time", second(ParseBectlList([]byte("a\t-\t-\t1K\t2023-01-01\n")))},
		{"sysrc get", second(ParseSysrc([]byte("test_enable NO\n")))},
		{"sysrc set", second(ParseSysrcChanges([]byte("x: y\n")))},
		{"pkg info", second(ParsePkgInfo([]byte("nodash comment\n")))},
		{"service status", second(ParseServiceStatus([]byte("nginx is running as pid 1.\n"), 1))},
		{"boot id", second(ParseBootID([]byte("kern.boot_id: Format: Length:8 Dump:0x0011223344556677\n")))},
		{"boottime", second(ParseBoottime([]byte("Tue Nov 14 22:13:20 2023\n")))},
	} {
		if tc.err == nil {
			t.Errorf("%s: parsed without error", tc.name)
		}
	}
}

func second[T any](_ T, err error) error { return err }
