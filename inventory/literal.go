package inventory

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// iniValue types an INI value the way Ansible does, with Python's
// ast.literal_eval: 22 is an int, True a bool, '22' and "a b" strings,
// [1, 2] a list, {'a': 1} a mapping, None null. Whatever does not parse as a
// Python literal (true, 10.0.0.1, /usr/bin/python3) stays the string it was.
func iniValue(s string) any {
	p := &pyParser{src: strings.TrimLeft(s, " \t")}
	v, err := p.expr()
	if err == nil {
		p.space()
		if p.pos < len(p.src) {
			err = errNotLiteral
		}
	}
	if err != nil {
		return s
	}
	return v
}

var errNotLiteral = errors.New("not a Python literal")

// pyParser reads the subset of Python expressions that literal_eval accepts
// and inventories use: numbers, strings, True/False/None, lists, tuples,
// sets and dicts.
type pyParser struct {
	src string
	pos int
}

// space skips blanks and a trailing # comment, as Python's tokenizer does.
func (p *pyParser) space() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r', '\f':
			p.pos++
		case '#':
			p.pos = len(p.src)
		default:
			return
		}
	}
}

func (p *pyParser) peek() byte {
	p.space()
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (p *pyParser) expr() (any, error) {
	switch c := p.peek(); {
	case c == '[':
		p.pos++
		list, err := p.items(']')
		if err != nil {
			return nil, err
		}
		return list, nil
	case c == '(':
		p.pos++
		// (x) is x itself; (x,) and () are tuples, which Ansible makes lists.
		if p.peek() == ')' {
			p.pos++
			return []any{}, nil
		}
		first, err := p.expr()
		if err != nil {
			return nil, err
		}
		switch p.peek() {
		case ')':
			p.pos++
			return first, nil
		case ',':
			p.pos++
			rest, err := p.items(')')
			if err != nil {
				return nil, err
			}
			return append([]any{first}, rest...), nil
		}
		return nil, errNotLiteral
	case c == '{':
		p.pos++
		return p.dict()
	case c == '\'' || c == '"':
		return p.strings("")
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	case isIdentStart(c):
		start := p.pos
		for p.pos < len(p.src) && isIdentPart(p.src[p.pos]) {
			p.pos++
		}
		word := p.src[start:p.pos]
		if isStringPrefix(word) && p.pos < len(p.src) && (p.src[p.pos] == '\'' || p.src[p.pos] == '"') {
			return p.strings(strings.ToLower(word))
		}
		switch word {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		}
	}
	return nil, errNotLiteral
}

// items reads comma-separated values up to end; the opening bracket has been
// consumed. A set literal comes here too, since Ansible turns sets into lists.
func (p *pyParser) items(end byte) ([]any, error) {
	out := []any{}
	for {
		if p.peek() == end {
			p.pos++
			return out, nil
		}
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		switch p.peek() {
		case ',':
			p.pos++
		case end:
		default:
			return nil, errNotLiteral
		}
	}
}

func (p *pyParser) dict() (any, error) {
	if p.peek() == '}' {
		p.pos++
		return map[string]any{}, nil
	}
	key, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.peek() != ':' {
		return p.set(key)
	}
	out := map[string]any{}
	for {
		p.pos++ // the ':'
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		out[keyString(key)] = v
		switch p.peek() {
		case '}':
			p.pos++
			return out, nil
		case ',':
			p.pos++
		default:
			return nil, errNotLiteral
		}
		if p.peek() == '}' {
			p.pos++
			return out, nil
		}
		if key, err = p.expr(); err != nil {
			return nil, err
		}
		if p.peek() != ':' {
			return nil, errNotLiteral
		}
	}
}

// set reads the rest of {a, b, ...} after its first element.
func (p *pyParser) set(first any) (any, error) {
	switch p.peek() {
	case '}':
		p.pos++
		return []any{first}, nil
	case ',':
		p.pos++
		rest, err := p.items('}')
		if err != nil {
			return nil, err
		}
		return append([]any{first}, rest...), nil
	}
	return nil, errNotLiteral
}

// keyString makes a mapping key of a non-string Python key such as 1 or True.
func keyString(k any) string {
	if s, ok := k.(string); ok {
		return s
	}
	return toText(k)
}

func toText(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int:
		return strconv.Itoa(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// Python's integer and float literals, underscores included; 010 is not one.
const (
	pyDigits   = `[0-9](?:_?[0-9])*`
	pyExponent = `[eE][+-]?` + pyDigits
)

var (
	pyIntRE   = regexp.MustCompile(`^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|[1-9](?:_?[0-9])*|0(?:_?0)*)$`)
	pyFloatRE = regexp.MustCompile(`^(?:` + pyDigits + `\.(?:` + pyDigits + `)?(?:` + pyExponent + `)?|\.` + pyDigits + `(?:` + pyExponent + `)?|` + pyDigits + pyExponent + `)$`)
)

func (p *pyParser) number() (any, error) {
	sign := ""
	if c := p.src[p.pos]; c == '-' || c == '+' {
		sign = p.src[p.pos : p.pos+1]
		p.pos++
	}
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		// A sign is part of the number only after an exponent's e, as in 1e-3.
		if isIdentPart(c) || c == '.' || ((c == '-' || c == '+') && p.pos > start && (p.src[p.pos-1]|0x20) == 'e') {
			p.pos++
			continue
		}
		break
	}
	text := p.src[start:p.pos]
	clean := sign + strings.ReplaceAll(text, "_", "")
	switch {
	case pyIntRE.MatchString(text):
		if n, err := strconv.ParseInt(clean, 0, 0); err == nil {
			return int(n), nil
		}
	case pyFloatRE.MatchString(text):
		if f, err := strconv.ParseFloat(clean, 64); err == nil {
			return f, nil
		}
	}
	return nil, errNotLiteral
}

// strings reads adjacent string literals, which Python joins: 'a' "b" is
// "ab". prefix is the first one's prefix (r, u, b or a mix), lower-cased.
func (p *pyParser) strings(prefix string) (any, error) {
	var b strings.Builder
	for {
		s, err := p.quoted(strings.Contains(prefix, "r"))
		if err != nil {
			return nil, err
		}
		b.WriteString(s)
		save := p.pos
		p.space()
		start := p.pos
		for p.pos < len(p.src) && isIdentPart(p.src[p.pos]) {
			p.pos++
		}
		prefix = strings.ToLower(p.src[start:p.pos])
		if p.pos >= len(p.src) || (p.src[p.pos] != '\'' && p.src[p.pos] != '"') || (prefix != "" && !isStringPrefix(prefix)) {
			p.pos = save
			return b.String(), nil
		}
	}
}

func isStringPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "r", "u", "b", "br", "rb":
		return true
	}
	return false
}

// quoted reads one '...', "...", ”'...”' or """...""" literal.
func (p *pyParser) quoted(raw bool) (string, error) {
	q := p.src[p.pos]
	delim := string(q)
	if strings.HasPrefix(p.src[p.pos:], strings.Repeat(delim, 3)) {
		delim = strings.Repeat(delim, 3)
	}
	p.pos += len(delim)
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			return "", errNotLiteral
		}
		if strings.HasPrefix(p.src[p.pos:], delim) {
			p.pos += len(delim)
			return b.String(), nil
		}
		c := p.src[p.pos]
		if c == '\n' && len(delim) == 1 {
			return "", errNotLiteral
		}
		if c != '\\' {
			b.WriteByte(c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.src) {
			return "", errNotLiteral
		}
		e := p.src[p.pos+1]
		if raw {
			b.WriteByte('\\')
			b.WriteByte(e)
			p.pos += 2
			continue
		}
		p.pos += 2
		switch e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if p.pos+n > len(p.src) {
				return "", errNotLiteral
			}
			r, err := strconv.ParseUint(p.src[p.pos:p.pos+n], 16, 32)
			if err != nil || !utf8.ValidRune(rune(r)) {
				return "", errNotLiteral
			}
			b.WriteRune(rune(r))
			p.pos += n
		case '0', '1', '2', '3', '4', '5', '6', '7':
			end := p.pos - 1
			for end < len(p.src) && end < p.pos+2 && p.src[end] >= '0' && p.src[end] <= '7' {
				end++
			}
			r, _ := strconv.ParseUint(p.src[p.pos-1:end], 8, 32)
			b.WriteRune(rune(r))
			p.pos = end
		default:
			// Python keeps unknown escapes as written.
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool {
	return isIdentStart(c) || (c >= '0' && c <= '9')
}
