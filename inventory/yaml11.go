package inventory

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Ansible reads YAML with PyYAML, which types plain scalars by YAML 1.1's
// rules, where yaml.v3 follows YAML 1.2's: yes/no/on/off are booleans, 0777
// is octal, 1:30 is 90, 2024-05-01 is a date and 1e3 is a string. These are
// PyYAML's own resolver patterns (yaml/resolver.py), so that a value means
// in orch what it means in Ansible.
var (
	yaml11Bool  = regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)
	yaml11Int   = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	yaml11Float = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)
	yaml11Null  = regexp.MustCompile(`^(?:~|null|Null|NULL|)$`)
	yaml11Time  = regexp.MustCompile(`^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]*))?(?:[ \t]*(Z|([-+])([0-9]{1,2})(?::([0-9]{2}))?))?)?$`)
	jsonNumber  = regexp.MustCompile(`^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)
)

// maxDecoded bounds the nodes one file's values may expand to, so that
// aliases of aliases (a "billion laughs" document) fail instead of eating
// the controller's memory.
const maxDecoded = 1 << 20

// decode turns a YAML node into the values Vars holds (string, int,
// float64, bool, nil, []any, map[string]any), typed as PyYAML types them.
// Dates and times become their ISO 8601 text, as ansible-inventory prints
// them. When asJSON is set the document is JSON, which Ansible parses with
// Python's json module, so plain scalars are JSON literals.
func (y *yamlReader) decode(n *yaml.Node) (any, error) {
	n = resolveAlias(n)
	if y.decoded++; y.decoded > maxDecoded {
		return nil, y.errorf(n, "the value expands to more than %d nodes through aliases", maxDecoded)
	}
	if y.decoding[n] {
		return nil, y.errorf(n, "an alias makes this value contain itself")
	}
	if y.decoding == nil {
		y.decoding = map[*yaml.Node]bool{}
	}
	y.decoding[n] = true
	defer delete(y.decoding, n)
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		// Python dict keys that compare equal (True, 1 and 1.0) are one
		// key: the first spelling stays, the last value wins.
		names := map[any]string{}
		for _, kv := range y.mergedPairs(n) {
			k, err := y.decode(kv[0])
			if err != nil {
				return nil, err
			}
			v, err := y.decode(kv[1])
			if err != nil {
				return nil, err
			}
			id := pyKeyIdentity(k)
			name, ok := names[id]
			if !ok {
				name = keyText(k)
				names[id] = name
			}
			out[name] = v
		}
		return out, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := y.decode(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.ScalarNode:
		return y.scalar(n)
	}
	return nil, y.errorf(n, "unexpected YAML node")
}

// mergedPairs returns a mapping's pairs with << merge keys expanded as
// PyYAML expands them: merged pairs come first, so the mapping's own keys
// win, and of several merged mappings the first wins.
func (y *yamlReader) mergedPairs(n *yaml.Node) [][2]*yaml.Node {
	var merged, own [][2]*yaml.Node
	for _, kv := range pairs(n) {
		if kv[0].Kind == yaml.ScalarNode && kv[0].Value == "<<" && kv[0].Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			var srcs []*yaml.Node
			if kv[1].Kind == yaml.SequenceNode {
				for _, c := range kv[1].Content {
					srcs = append(srcs, resolveAlias(c))
				}
			} else {
				srcs = []*yaml.Node{kv[1]}
			}
			for i := len(srcs) - 1; i >= 0; i-- {
				if srcs[i].Kind == yaml.MappingNode {
					merged = append(merged, y.mergedPairs(srcs[i])...)
				}
			}
			continue
		}
		own = append(own, kv)
	}
	return append(merged, own...)
}

// keyText is the string a decoded mapping key becomes, as Python's json
// module writes dict keys: True is "true", None "null", 1.5 "1.5".
func keyText(k any) string {
	switch k := k.(type) {
	case string:
		return k
	case bool:
		if k {
			return "true"
		}
		return "false"
	case nil:
		return "null"
	case float64:
		return PythonFloat(k)
	}
	return fmt.Sprint(k)
}

// pyKeyIdentity makes keys that Python holds equal (True == 1 == 1.0) the
// same map key.
func pyKeyIdentity(k any) any {
	switch k := k.(type) {
	case bool:
		if k {
			return 1
		}
		return 0
	case float64:
		if k == math.Trunc(k) && math.Abs(k) < 1<<53 {
			return int(k)
		}
	case []any, map[string]any:
		return fmt.Sprint(k)
	}
	return k
}

// PythonFloat is Python's repr of a float (1000.0, 1.5, 1e+16, inf), the
// form Ansible's JSON output has.
func PythonFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if i := strings.Index(s, "e"); i >= 0 && s[i+1] != '-' && s[i+1] != '+' {
		s = s[:i+1] + "+" + s[i+1:]
	}
	return s
}

func (y *yamlReader) scalar(n *yaml.Node) (any, error) {
	tag := ""
	if n.Style&yaml.TaggedStyle != 0 {
		tag = n.Tag
	}
	switch tag {
	case "":
	case "!vault":
		return nil, y.errorf(n, "vault-encrypted values are not supported")
	case "!unsafe", "!!str", "tag:yaml.org,2002:str":
		return n.Value, nil
	case "!!int", "!!float", "!!bool", "!!null", "!!timestamp":
		v, ok, err := y.implicit(n)
		if err != nil {
			return nil, err
		}
		if !ok || tagOf(v) != tag {
			return nil, y.errorf(n, "%q is not a valid %s", n.Value, tag)
		}
		return v, nil
	case "!!binary":
		return n.Value, nil
	default:
		return nil, y.errorf(n, "unknown YAML tag %s", tag)
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Value, nil
	}
	v, ok, err := y.implicit(n)
	if err != nil || ok {
		return v, err
	}
	return n.Value, nil
}

func tagOf(v any) string {
	switch v.(type) {
	case int:
		return "!!int"
	case float64:
		return "!!float"
	case bool:
		return "!!bool"
	case nil:
		return "!!null"
	}
	return "!!timestamp"
}

// implicit types a plain scalar; ok is false for a plain string.
func (y *yamlReader) implicit(n *yaml.Node) (any, bool, error) {
	s := n.Value
	if y.json {
		switch {
		case s == "true", s == "false":
			return s == "true", true, nil
		case s == "null":
			return nil, true, nil
		case jsonNumber.MatchString(s):
			if !strings.ContainsAny(s, ".eE") {
				if i, err := strconv.Atoi(s); err == nil {
					return i, true, nil
				}
			}
			f, _ := strconv.ParseFloat(s, 64)
			return f, true, nil
		}
		return nil, false, nil
	}
	switch {
	case yaml11Bool.MatchString(s):
		c := strings.ToLower(s)
		return c == "yes" || c == "true" || c == "on", true, nil
	case yaml11Null.MatchString(s):
		return nil, true, nil
	case yaml11Int.MatchString(s):
		return yaml11ParseInt(s), true, nil
	case yaml11Float.MatchString(s):
		return yaml11ParseFloat(s), true, nil
	case yaml11Time.MatchString(s):
		t, err := yaml11Timestamp(s)
		if err != nil {
			return nil, false, y.errorf(n, "%q: %v", s, err)
		}
		return t, true, nil
	}
	return nil, false, nil
}

// yaml11ParseInt follows PyYAML's construct_yaml_int.
func yaml11ParseInt(s string) any {
	s = strings.ReplaceAll(s, "_", "")
	sign := 1
	if s[0] == '-' || s[0] == '+' {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	var n int64
	var err error
	switch {
	case s == "0":
		return 0
	case strings.HasPrefix(s, "0b"):
		n, err = strconv.ParseInt(s[2:], 2, 64)
	case strings.HasPrefix(s, "0x"):
		n, err = strconv.ParseInt(s[2:], 16, 64)
	case s[0] == '0':
		n, err = strconv.ParseInt(s[1:], 8, 64)
	case strings.Contains(s, ":"):
		for _, part := range strings.Split(s, ":") {
			d, _ := strconv.ParseInt(part, 10, 64)
			n = n*60 + d
		}
	default:
		n, err = strconv.ParseInt(s, 10, 64)
	}
	if err != nil { // beyond int64: Python has big integers, orch a float
		f, _ := strconv.ParseFloat(s, 64)
		return float64(sign) * f
	}
	if n > math.MaxInt || n < math.MinInt {
		return float64(sign) * float64(n)
	}
	return sign * int(n)
}

// yaml11ParseFloat follows PyYAML's construct_yaml_float.
func yaml11ParseFloat(s string) float64 {
	s = strings.ToLower(strings.ReplaceAll(s, "_", ""))
	sign := 1.0
	if s[0] == '-' || s[0] == '+' {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	switch {
	case s == ".inf":
		return sign * math.Inf(1)
	case s == ".nan":
		return math.NaN()
	case strings.Contains(s, ":"):
		var f float64
		for _, part := range strings.Split(s, ":") {
			d, _ := strconv.ParseFloat(part, 64)
			f = f*60 + d
		}
		return sign * f
	}
	f, _ := strconv.ParseFloat(s, 64)
	return sign * f
}

// yaml11Timestamp reads a YAML timestamp and returns what Python's
// isoformat() gives for the date or datetime PyYAML makes of it.
func yaml11Timestamp(s string) (string, error) {
	m := yaml11Time.FindStringSubmatch(s)
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	year, month, day := atoi(m[1]), atoi(m[2]), atoi(m[3])
	date := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if date.Year() != year || int(date.Month()) != month || date.Day() != day {
		return "", fmt.Errorf("not a valid date")
	}
	if m[4] == "" {
		return date.Format("2006-01-02"), nil
	}
	hour, minute, second := atoi(m[4]), atoi(m[5]), atoi(m[6])
	if hour > 23 || minute > 59 || second > 59 {
		return "", fmt.Errorf("not a valid time")
	}
	out := fmt.Sprintf("%sT%02d:%02d:%02d", date.Format("2006-01-02"), hour, minute, second)
	if frac := m[7]; frac != "" {
		frac = (frac + "000000")[:6]
		if frac != "000000" {
			out += "." + frac
		}
	}
	switch {
	case m[9] != "":
		tzh, tzm := atoi(m[10]), atoi(m[11])
		out += fmt.Sprintf("%s%02d:%02d", m[9], tzh, tzm)
	case m[8] == "Z":
		out += "+00:00"
	}
	return out, nil
}
