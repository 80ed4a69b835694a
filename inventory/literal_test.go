package inventory

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// iniValue must give what Python's ast.literal_eval gives, falling back to
// the raw string, because that is how Ansible types INI values.
func TestINIValue(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"22", 22},
		{"-5", -5},
		{"+5", 5},
		{"0x1F", 31},
		{"0o17", 15},
		{"0b101", 5},
		{"1_000", 1000},
		{"0", 0},
		{"00", 0},
		{"010", "010"}, // a syntax error in Python 3
		{"1.5", 1.5},
		{".5", 0.5},
		{"1e3", 1000.0},
		{"2.5e-1", 0.25},
		{"1.", 1.0},
		{"1_000.5", 1000.5},
		{"007.5", 7.5},
		{"0x1e-3", "0x1e-3"}, // an expression, not a literal
		{"10.0.0.1", "10.0.0.1"},
		{"1j", "1j"},
		{"inf", "inf"},
		{"True", true},
		{"False", false},
		{"true", "true"},
		{"yes", "yes"},
		{"None", nil},
		{"'a b'", "a b"},
		{`"it's"`, "it's"},
		{`'a\tb\\c\x41\u00e9'`, "a\tb\\cAé"},
		{`'\d'`, `\d`},
		{`r'\d\n'`, `\d\n`},
		{`u'é'`, "é"},
		{`b'bytes'`, "bytes"},
		{`'a' "b"`, "ab"},
		{`'''triple "quoted"'''`, `triple "quoted"`},
		{"'x' # comment", "x"},
		{"[1, 'two', [3], ]", []any{1, "two", []any{3}}},
		{"[]", []any{}},
		{"(1, 2)", []any{1, 2}},
		{"(1,)", []any{1}},
		{"(5)", 5},
		{"()", []any{}},
		{"{'a': 1, 'b': [True, None]}", map[string]any{"a": 1, "b": []any{true, nil}}},
		{"{1: 'one'}", map[string]any{"1": "one"}},
		{"{}", map[string]any{}},
		{"{1, 2}", []any{1, 2}},
		{"", ""},
		{"~/.ssh/id_ed25519", "~/.ssh/id_ed25519"},
		{"/usr/bin/python3", "/usr/bin/python3"},
		{"hello world", "hello world"},
		{"'unterminated", "'unterminated"},
		{"[1, 2", "[1, 2"},
		{"{'a' 1}", "{'a' 1}"},
		{"1 2", "1 2"},
		{"--5", "--5"},
		{"a=b", "a=b"},
		{"99999999999999999999999", "99999999999999999999999"}, // too big for an int: kept as written
	}
	for _, tt := range tests {
		if got := iniValue(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("iniValue(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestShlexSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{in: "a b\tc", want: []string{"a", "b", "c"}},
		{in: `x="a b" y='c d'`, want: []string{"x=a b", "y=c d"}},
		{in: `x="say \"hi\"" y='no \escape'`, want: []string{`x=say "hi"`, `y=no \escape`}},
		{in: `x="keep \n"`, want: []string{`x=keep \n`}},
		{in: `a\ b`, want: []string{"a b"}},
		{in: `x='' y=""`, want: []string{"x=", "y="}},
		{in: "a # b c", want: []string{"a"}},
		{in: "a b#c d", want: []string{"a", "b"}},
		{in: `x="# not a comment"`, want: []string{"x=# not a comment"}},
		{in: "# all comment", want: nil},
		{in: `x="open`, err: "no closing quotation"},
		{in: `x='open`, err: "no closing quotation"},
		{in: `trailing\`, err: "no escaped character"},
	}
	for _, tt := range tests {
		got, err := shellWords(tt.in, true)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("shellWords(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestExpandHostPattern(t *testing.T) {
	tests := []struct {
		in    string
		names []string
		port  any
		err   string
	}{
		{in: "web1", names: []string{"web1"}},
		{in: "web1:2222", names: []string{"web1"}, port: 2222},
		{in: "web[1:3]", names: []string{"web1", "web2", "web3"}},
		{in: "web[:2]", names: []string{"web0", "web1", "web2"}},
		{in: "web[08:10]", names: []string{"web08", "web09", "web10"}},
		{in: "[a:c].dns", names: []string{"a.dns", "b.dns", "c.dns"}},
		{in: "x[a:e:2]", names: []string{"xa", "xc", "xe"}},
		{in: "10.0.[1:2].1:22", names: []string{"10.0.1.1", "10.0.2.1"}, port: 22},
		{in: "[::1]:2200", names: []string{"::1"}, port: 2200},
		{in: "2001:db8::7", names: []string{"2001:db8::7"}},
		{in: "web[1:2]-[a:b]", names: []string{"web1-a", "web1-b", "web2-a", "web2-b"}},
		{in: "web[3:1]", names: nil}, // an empty numeric range, as in Python
		{in: "web[c:a]", err: "host range must have begin <= end"},
		{in: "web[1:2:0]", err: `host range step "0" is not a positive integer`},
		{in: "web[1]", err: "host range must be begin:end or begin:end:step"},
		{in: "web[1:3", err: "unclosed '[' in host range"},
		{in: "web[1:1000000]", err: "has more than 100000 hosts"},
	}
	for _, tt := range tests {
		names, port, err := expandHostPattern(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("expandHostPattern(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(names, tt.names) || port != tt.port {
			t.Errorf("expandHostPattern(%q) = %q, %v, %v; want %q, %v", tt.in, names, port, err, tt.names, tt.port)
		}
	}
}
