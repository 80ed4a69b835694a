package inventory

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// connVars names the vars that set each connection field. Within one level
// (a group's or the host's own vars) a later name beats an earlier one, so
// orch's ssh_* names win over Ansible's and Ansible's current names over its
// legacy ansible_ssh_* ones.
var connVars = []struct {
	field string
	names []string
}{
	{"address", []string{"ansible_ssh_host", "ansible_host", "ssh_host"}},
	{"port", []string{"ansible_ssh_port", "ansible_port", "ssh_port"}},
	{"user", []string{"ansible_ssh_user", "ansible_user", "ssh_user"}},
	{"key", []string{"ansible_private_key_file", "ansible_ssh_private_key_file", "ssh_key"}},
	{"connection", []string{"ansible_connection", "connection"}},
	{"become", []string{"ansible_become", "become"}},
	{"become_user", []string{"ansible_become_user", "become_user"}},
	{"become_method", []string{"ansible_become_method", "become_method"}},
}

// applyConnVars sets h's connection fields from the vars in levels, lowest
// precedence first. It checks only the value that wins, so a bad port in a
// group var that a host overrides is harmless, as in Ansible.
func applyConnVars(h *Host, name string, levels []varSet) error {
	for _, cv := range connVars {
		var val any
		var key, at string
		found := false
		for _, l := range levels {
			for _, n := range cv.names {
				if v, ok := l.vals[n]; ok {
					val, key, at, found = v, n, l.at[n], true
				}
			}
		}
		if !found {
			continue
		}
		fail := func(err error) error {
			return fmt.Errorf("%shost %q: %s: %v", prefix(at), name, key, err)
		}
		switch cv.field {
		case "port":
			p, err := toPort(val)
			if err != nil {
				return fail(err)
			}
			h.Port = p
		case "connection":
			s, err := toString(val)
			if err == nil {
				s, err = normalizeConnection(s)
			}
			if err != nil {
				return fail(err)
			}
			h.Connection = s
		case "become":
			b, err := toBool(val)
			if err != nil {
				return fail(err)
			}
			h.Become = b
		case "become_method":
			s, err := toString(val)
			if err == nil && s != "sudo" && s != "doas" {
				err = fmt.Errorf("become method %q: orch can become with sudo or doas", s)
			}
			if err != nil {
				return fail(err)
			}
			h.BecomeMethod = s
		default:
			s, err := toString(val)
			if err != nil {
				return fail(err)
			}
			switch cv.field {
			case "address":
				h.Address = s
			case "user":
				h.User = s
			case "key":
				h.Key = s
			case "become_user":
				h.BecomeUser = s
			}
		}
	}
	return nil
}

// normalizeConnection maps Ansible's connection plugin names onto the
// connections orch has. Anything else is an error rather than a silent ssh.
func normalizeConnection(s string) (string, error) {
	switch s {
	case "", "ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh":
		if s == "" {
			return "", nil
		}
		return "ssh", nil
	case "local", "ansible.builtin.local":
		return "local", nil
	case "docker", "community.docker.docker":
		return "docker", nil
	case "jail", "community.general.jail":
		return "jail", nil
	}
	return "", fmt.Errorf("unknown connection %q (want ssh, local, docker or jail)", s)
}

func toString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int, int64, uint64:
		// Ansible INI reads user=1000 as a number; the intent is still a name.
		return fmt.Sprint(v), nil
	}
	return "", fmt.Errorf("want a string, got %s", describe(v))
}

// toBool reads a boolean as Ansible does: YAML and Starlark booleans, and
// the strings yes/no, true/false, on/off and 1/0 in any case.
func toBool(v any) (bool, error) {
	switch v := v.(type) {
	case bool:
		return v, nil
	case int, int64, uint64:
		switch fmt.Sprint(v) {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
	case string:
		switch strings.ToLower(v) {
		case "yes", "true", "on", "1", "y", "t":
			return true, nil
		case "no", "false", "off", "0", "n", "f", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("want a boolean, got %s", describe(v))
}

func toInt(v any) (int, error) {
	switch v := v.(type) {
	case int:
		return v, nil
	case int64:
		if v >= math.MinInt && v <= math.MaxInt {
			return int(v), nil
		}
	case uint64:
		if v <= math.MaxInt {
			return int(v), nil
		}
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int(v), nil
		}
	case string:
		// Ansible converts strings with int(); so do we, for "22" in YAML.
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s is not an integer", describe(v))
}

func toPort(v any) (int, error) {
	p, err := toInt(v)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%s is not a port number (1-65535)", describe(v))
	}
	return p, nil
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(v)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprint(v)
}

// checkName rejects names that could not be matched by a host pattern.
func checkName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", kind)
	}
	if strings.ContainsAny(name, " \t\r\n,") {
		return fmt.Errorf("%s name %q contains a space or comma", kind, name)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%s name %q is not valid UTF-8", kind, name)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("%s name %q contains a control character", kind, name)
	}
	return nil
}

// normalize turns decoded YAML or literal values into the types Vars holds:
// string, int, float64, bool, nil, []any and map[string]any.
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = normalize(e)
		}
		return v
	case int64:
		if v >= math.MinInt && v <= math.MaxInt {
			return int(v)
		}
	case uint64:
		if v <= math.MaxInt {
			return int(v)
		}
	case float32:
		return float64(v)
	}
	return v
}
