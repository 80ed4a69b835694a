package inventory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// The parsers' fuzz targets. Seeds: testdata/fuzz/Fuzz*/ and the fixtures
// under testdata/. Properties, for any input:
//   - no panic;
//   - an error names the file and a line: "NAME:LINE…: …";
//   - a parsed inventory, listed in orch's format (every host with its
//     connection fields, groups and merged vars, as JSON) and parsed again,
//     lists the same hosts, in the same order, with the same fields, groups
//     and vars.

func FuzzINI(f *testing.F) {
	addFixtures(f, "testdata/ansible/hosts.ini", "testdata/errors/bad-port.ini")
	f.Fuzz(func(t *testing.T, src []byte) { checkParse(t, "fuzz.ini", src) })
}

func FuzzYAML(f *testing.F) {
	addFixtures(f, "testdata/ansible/hosts.yml", "testdata/lab.yml", "testdata/ansible/group_vars/dbservers.yml")
	f.Fuzz(func(t *testing.T, src []byte) { checkParse(t, "fuzz.yml", src) })
}

func FuzzStarlark(f *testing.F) {
	addFixtures(f, "testdata/lab.star")
	f.Fuzz(func(t *testing.T, src []byte) { checkParse(t, "fuzz.star", src) })
}

func addFixtures(f *testing.F, paths ...string) {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func checkParse(t *testing.T, name string, src []byte) {
	inv, err := Parse(name, src)
	if err != nil {
		if !positioned(name).MatchString(err.Error()) {
			t.Fatalf("error without a position: %v", err)
		}
		return
	}
	for _, h := range inv.Hosts() {
		if !jsonEncodable(h.Vars) {
			return // a "\xff" string or an .inf: the JSON listing cannot carry it
		}
		if h.Unusable != "" {
			return // kept so a plan that targets it fails; orch's own format refuses such a host at once
		}
	}
	listed, err := relist(inv)
	if err != nil {
		t.Fatalf("listing the inventory: %v", err)
	}
	again, err := Parse("relisted.json", listed)
	if err != nil {
		t.Fatalf("the listing does not parse: %v\n%s", err, listed)
	}
	want, got := describeHosts(t, inv), describeHosts(t, again)
	if want != got {
		t.Fatalf("relisted inventory differs:\nfirst:\n%s\nrelisted:\n%s\nlisting:\n%s", want, got, listed)
	}
}

// positioned matches an error that leads with the file and a line
// ("NAME:12: …" or "NAME:12:5: …"), or that is about a file with nothing in
// it and says so.
func positioned(name string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `(:\d+[:\s]|: empty YAML inventory)`)
}

// listedHost is a host in orch's YAML format, written as JSON (which is
// YAML), as orch inventory --json lists it.
type listedHost struct {
	Address    string         `json:"address"`
	Port       int            `json:"port,omitempty"`
	User       string         `json:"user,omitempty"`
	Key        string         `json:"key,omitempty"`
	Connection string         `json:"connection,omitempty"`
	Groups     []string       `json:"groups,omitempty"`
	Vars       map[string]any `json:"vars,omitempty"`
}

// relist writes inv's hosts, in order, as an orch inventory.
func relist(inv *Inventory) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"hosts": {`)
	for i, h := range inv.Hosts() {
		var groups []string
		for _, g := range h.Groups {
			if g != Ungrouped {
				groups = append(groups, g)
			}
		}
		var name bytes.Buffer // a key as short as JSON allows: no HTML escapes
		enc := json.NewEncoder(&name)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(h.Name); err != nil {
			return nil, err
		}
		body, err := json.Marshal(listedHost{h.Address, h.Port, h.User, h.Key, h.Connection, groups, h.Vars})
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n  ")
		b.Write(bytes.TrimSuffix(name.Bytes(), []byte("\n")))
		b.WriteString(": ")
		b.Write(body)
	}
	b.WriteString("\n}}\n")
	return []byte(escapeControls(b.String())), nil
}

// escapeControls escapes what encoding/json leaves raw and YAML refuses:
// DEL and the C1 controls, which can only occur inside strings.
func escapeControls(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == 0x7f || r >= 0x80 && r <= 0x9f {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// jsonSafe reports whether JSON carries v unchanged: its strings are UTF-8
// and its numbers finite.
func jsonEncodable(v any) bool {
	switch x := v.(type) {
	case string:
		return utf8.ValidString(x)
	case float64:
		return !math.IsInf(x, 0) && !math.IsNaN(x)
	case []any:
		for _, e := range x {
			if !jsonEncodable(e) {
				return false
			}
		}
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) || !jsonEncodable(e) {
				return false
			}
		}
	}
	return true
}

// describeHosts renders every field of every host, in order, for comparison.
func describeHosts(t *testing.T, inv *Inventory) string {
	var b strings.Builder
	for _, h := range inv.Hosts() {
		out, err := json.Marshal(h)
		if err != nil {
			t.Fatalf("host %s: %v", h.Name, err)
		}
		b.Write(out)
		b.WriteString("\n")
	}
	return b.String()
}

// The seeds must keep exercising both outcomes: inventories that parse and
// round-trip, and errors that carry positions.
func TestFuzzSeedsParse(t *testing.T) {
	for _, c := range []struct{ name, src string }{
		{"a.ini", "[web]\nweb1 ansible_host=10.0.0.1 ansible_port=2222\n[all:vars]\nx=[1, 'two', {'k': None}]\n"},
		{"a.yml", "hosts:\n  ns1: {address: 10.0.0.1, port: 22, groups: [dns], vars: {n: 1.5, ok: yes}}\n"},
		{"a.star", "host(\"db1\", address = \"10.0.0.9\", groups = [\"db\"], vars = {\"n\": 1})\n"},
	} {
		checkParse(t, c.name, []byte(c.src))
		inv, err := Parse(c.name, []byte(c.src))
		if err != nil || len(inv.Hosts()) != 1 {
			t.Errorf("%s: %v %v", c.name, inv, err)
		}
	}
	for _, c := range []struct{ name, src string }{
		{"b.ini", "[web]\nweb1 ansible_port=ssh\n"},
		{"b.yml", "all:\n  hosts:\n    a:\n      ansible_port: [1]\n"},
		{"b.star", "host(\"a\", port = \"x\")\n"},
	} {
		_, err := Parse(c.name, []byte(c.src))
		if err == nil || !positioned(c.name).MatchString(err.Error()) {
			t.Errorf("%s: err = %v, want one at a position", c.name, err)
		}
	}
}
