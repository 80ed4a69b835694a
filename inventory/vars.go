package inventory

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// connVars names the vars that set each connection field: Ansible's names,
// in the order of Ansible 2.14's connection and become plugins, where a
// later name wins wherever it is set (so a group's ansible_ssh_host beats a
// host's ansible_host, as in Ansible), and orch's own name, which wins over
// Ansible's names set at the same level or below.
var connVars = []struct {
	field   string
	ansible []string
	orch    string
}{
	{"address", []string{"ansible_host", "ansible_ssh_host"}, "ssh_host"},
	{"port", []string{"ansible_port", "ansible_ssh_port"}, "ssh_port"},
	{"user", []string{"ansible_user", "ansible_ssh_user"}, "ssh_user"},
	{"key", []string{"ansible_private_key_file", "ansible_ssh_private_key_file"}, "ssh_key"},
	{"timeout", []string{"ansible_timeout", "ansible_ssh_timeout"}, ""},
	{"connection", []string{"ansible_connection"}, "connection"},
	{"become", []string{"ansible_become"}, "become"},
	{"become_user", []string{"ansible_become_user"}, "become_user"},
	{"become_method", []string{"ansible_become_method"}, "become_method"},
	{"ssh_args", []string{"ansible_ssh_args"}, ""},
	{"ssh_common_args", []string{"ansible_ssh_common_args"}, ""},
	{"ssh_extra_args", []string{"ansible_ssh_extra_args"}, ""},
}

// SecretVars are vars that hold passwords. orch never uses them (it logs
// in with keys and takes the become password from the command line or the
// environment), warns when they are set, and masks them in its output.
var SecretVars = []string{
	"ansible_become_password", "ansible_become_pass", "ansible_sudo_pass", "ansible_su_pass",
	"ansible_password", "ansible_ssh_pass", "ansible_ssh_password",
}

// IsSecretVar reports whether key holds a password (see SecretVars).
func IsSecretVar(key string) bool { return slices.Contains(SecretVars, key) }

// winner finds the var that sets one connection field among levels (lowest
// precedence first): its name, value and where it was set.
func winner(levels []varSet, ansible []string, orch string) (key string, val any, at string, ok bool) {
	highest := func(name string) int {
		for i := len(levels) - 1; i >= 0; i-- {
			if _, ok := levels[i].vals[name]; ok {
				return i
			}
		}
		return -1
	}
	aLevel, oLevel := -1, -1
	var aKey string
	for i := len(ansible) - 1; i >= 0; i-- {
		if l := highest(ansible[i]); l >= 0 {
			aLevel, aKey = l, ansible[i]
			break
		}
	}
	if orch != "" {
		oLevel = highest(orch)
	}
	switch {
	case oLevel >= 0 && oLevel >= aLevel:
		key = orch
	case aLevel >= 0:
		key = aKey
	default:
		return "", nil, "", false
	}
	l := levels[highest(key)]
	return key, l.vals[key], l.at[key], true
}

// isTemplate reports whether s holds Jinja that Ansible would render.
func isTemplate(v any) bool {
	s, ok := v.(string)
	return ok && (strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#"))
}

// applyConnVars sets h's connection fields from the vars in levels, lowest
// precedence first. It checks only the value that wins, so a bad port in a
// group var that a host overrides is harmless, as in Ansible. What orch
// cannot use (a winrm connection, an unrendered template) does not fail the
// inventory: it makes the host unusable (Host.Unusable), so that only a run
// that targets it fails.
func (inv *Inventory) applyConnVars(h *Host, levels []varSet) error {
	unusable := func(key string, val any, why string) {
		if h.Unusable == "" {
			h.Unusable = fmt.Sprintf("%s %s: %s", key, describe(val), why)
		}
	}
	var sshArgs []sshArgsVar
	for _, cv := range connVars {
		key, val, at, found := winner(levels, cv.ansible, cv.orch)
		if !found {
			continue
		}
		if isTemplate(val) {
			unusable(key, val, "a Jinja template, which orch does not render")
			continue
		}
		fail := func(err error) error {
			return fmt.Errorf("%shost %q: %s: %v", prefix(at), h.Name, key, err)
		}
		switch cv.field {
		case "port":
			p, err := toPort(val)
			if err != nil {
				return fail(err)
			}
			h.Port = p
		case "timeout":
			n, err := toInt(val)
			if err != nil || n < 1 {
				return fail(fmt.Errorf("%s is not a number of seconds", describe(val)))
			}
			h.ConnectTimeout = time.Duration(n) * time.Second
		case "connection":
			s, err := toString(val)
			if err != nil {
				return fail(err)
			}
			c, err := normalizeConnection(s)
			if err != nil {
				h.Connection = s
				unusable(key, val, "orch connects with "+connectionNames()+" only")
				continue
			}
			h.Connection = c
		case "become":
			b, err := toBool(val)
			if err != nil {
				return fail(err)
			}
			h.Become = b
		case "ssh_args", "ssh_common_args", "ssh_extra_args":
			s, err := toString(val)
			if err != nil {
				return fail(err)
			}
			sshArgs = append(sshArgs, sshArgsVar{key, s, at})
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
			case "become_method":
				// Anything but sudo and doas stays as written, so that a task
				// that becomes on this host fails rather than use sudo.
				h.BecomeMethod = s
				if s != "sudo" && s != "doas" {
					inv.note(h.Name, fmt.Sprintf("%s %q: orch can become with sudo or doas only; tasks with become on these hosts will fail", key, s))
				}
			}
		}
	}
	for _, a := range sshArgs {
		if err := inv.applySSHArgs(h, a); err != nil {
			return err
		}
	}
	if h.Become && h.BecomeMethod != "" && h.BecomeMethod != "sudo" && h.BecomeMethod != "doas" {
		unusable("become_method", h.BecomeMethod, "orch can become with sudo or doas only")
	}
	for _, k := range SecretVars {
		if _, ok := h.Vars[k]; !ok {
			continue
		}
		if strings.Contains(k, "become") || strings.Contains(k, "sudo") || strings.Contains(k, "su_") {
			inv.note(h.Name, k+" is ignored: orch takes the become password from --ask-become-pass or ORCH_BECOME_PASS, never from the inventory")
		} else {
			inv.note(h.Name, k+" is ignored: orch logs in with keys (ssh-agent, IdentityFile, ssh_key), not passwords")
		}
	}
	return nil
}

// normalizeConnection maps Ansible's connection plugin names onto the
// connections orch has. Anything else is an error rather than a silent ssh.
func normalizeConnection(s string) (string, error) {
	switch s {
	case "", "ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh", "ansible.legacy.ssh":
		if s == "" {
			return "", nil
		}
		return "ssh", nil
	case "local", "ansible.builtin.local", "ansible.legacy.local":
		return "local", nil
	case "docker", "community.docker.docker":
		return "docker", nil
	case "jail", "community.general.jail":
		return "jail", nil
	}
	if registeredConnection(s) {
		return s, nil
	}
	return "", fmt.Errorf("unknown connection %q (want %s)", s, connectionNames())
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

// maxNameLen is the longest host or group name, in bytes: a DNS name has
// at most 253.
const maxNameLen = 255

// checkName rejects names that could not be matched by a host pattern, or
// listed and read back.
func checkName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", kind)
	}
	// YAML limits a mapping key to 1024 characters, quotes and escapes
	// included (PyYAML, and so Ansible, too): a name much longer than any
	// DNS name could not be written to a YAML or JSON inventory, orch's
	// listing included, and read back.
	if len(name) > maxNameLen {
		return fmt.Errorf("%s name %.40q… is %d bytes long; at most %d", kind, name, len(name), maxNameLen)
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
