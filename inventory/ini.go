package inventory

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// The INI reader follows Ansible's plugins/inventory/ini.py line for line in
// what it accepts and rejects, so that an existing inventory loads the same.
var (
	iniSectionRE   = regexp.MustCompile(`^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$`)
	iniGroupNameRE = regexp.MustCompile(`^([^:\]\s]+)\s*(?:#.*)?$`)
)

// pendingDecl is a group used before it was declared: as a child, or by a
// [group:vars] section. Ansible allows either as long as the group is
// declared somewhere in the file.
type pendingDecl struct {
	line    string // where it was first used
	state   string // "children" or "vars"
	parents []string
}

func parseINI(filename string, src []byte) (*Inventory, error) {
	inv := New()
	pending := map[string]*pendingDecl{}
	var pendingOrder []string
	addPending := func(name string, p *pendingDecl) {
		pending[name] = p
		pendingOrder = append(pendingOrder, name)
	}
	// addPendingChildren links a newly declared group to the parents that
	// named it as a child before it existed.
	var addPendingChildren func(name string)
	addPendingChildren = func(name string) {
		for _, parent := range pending[name].parents {
			inv.groups[parent].addChild(name)
			if p, ok := pending[parent]; ok && p.state == "children" {
				addPendingChildren(parent)
			}
		}
		delete(pending, name)
	}

	group, state := Ungrouped, "hosts"
	for i, raw := range strings.Split(string(src), "\n") {
		at := fmt.Sprintf("%s:%d", filename, i+1)
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%s: %s", at, fmt.Sprintf(format, args...))
		}
		if !utf8.ValidString(raw) { // Ansible reads inventories as UTF-8 too
			return nil, fail("not valid UTF-8")
		}
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}

		if m := iniSectionRE.FindStringSubmatch(line); m != nil {
			group, state = m[1], m[2]
			if state == "" {
				state = "hosts"
			}
			if state != "hosts" && state != "children" && state != "vars" {
				return nil, fail("section [%s:%s] has unknown type %q (want vars or children)", group, state, state)
			}
			if _, ok := inv.groups[group]; !ok {
				if _, ok := pending[group]; state == "vars" && !ok {
					addPending(group, &pendingDecl{line: at, state: state})
				}
				inv.group(group, at)
			}
			if p, ok := pending[group]; ok && state != "vars" {
				if p.state == "children" {
					addPendingChildren(group)
				} else {
					delete(pending, group)
				}
			}
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			return nil, fail("invalid section entry %q: make sure there are no spaces or other invalid characters in it", line)
		}

		switch state {
		case "hosts":
			tokens, err := shellWords(line, true)
			if err != nil {
				return nil, fail("cannot parse host definition %q: %v", line, err)
			}
			if len(tokens) == 0 {
				continue // only a comment
			}
			names, port, err := expandHostPattern(tokens[0])
			if err != nil {
				return nil, fail("%v", err)
			}
			vars := map[string]any{}
			var keys []string
			for _, t := range tokens[1:] {
				k, v, ok := strings.Cut(t, "=")
				if !ok {
					return nil, fail("expected key=value host variable assignment, got %q", t)
				}
				if _, seen := vars[k]; !seen {
					keys = append(keys, k)
				}
				vars[k] = iniValue(v)
			}
			for _, name := range names {
				inv.groups[group].addHost(name)
				d := inv.host(name)
				if port != nil {
					d.vars.set("ansible_port", port, at)
				}
				for _, k := range keys {
					d.vars.assign(k, vars[k], at)
				}
			}
		case "vars":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fail("expected key=value, got %q", line)
			}
			inv.groups[group].vars.assign(strings.TrimSpace(k), iniValue(strings.TrimSpace(v)), at)
		case "children":
			m := iniGroupNameRE.FindStringSubmatch(line)
			if m == nil {
				return nil, fail("expected group name, got %q", line)
			}
			child := m[1]
			if _, ok := inv.groups[child]; ok {
				inv.groups[group].addChild(child)
			} else if p, ok := pending[child]; ok {
				p.parents = append(p.parents, group)
			} else {
				addPending(child, &pendingDecl{line: at, state: "children", parents: []string{group}})
			}
		}
	}

	// Report the first group that was used but never declared.
	for _, name := range pendingOrder {
		p, ok := pending[name]
		if !ok {
			continue
		}
		if p.state == "vars" {
			return nil, fmt.Errorf("%s: section [%s:vars] not valid for undefined group %q", p.line, name, name)
		}
		return nil, fmt.Errorf("%s: section [%s:children] includes undefined group %q", p.line, p.parents[len(p.parents)-1], name)
	}
	return inv, nil
}

// shellWords splits s as Python's shlex.split(s, comments) does: blanks
// separate words, quotes group, a backslash escapes, and with comments a #
// starts a comment even in the middle of a word.
func shellWords(s string, comments bool) ([]string, error) {
	var out []string
	var word strings.Builder
	inWord := false
	emit := func() {
		if inWord {
			out = append(out, word.String())
			word.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			emit()
		case c == '#' && comments:
			emit()
			return out, nil
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("no escaped character")
			}
			i++
			word.WriteByte(s[i])
			inWord = true
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("no closing quotation")
			}
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				// Inside double quotes a backslash escapes only " and \.
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				word.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("no closing quotation")
			}
			inWord = true
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	emit()
	return out, nil
}
