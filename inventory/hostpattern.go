package inventory

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Host keys in Ansible inventories may carry a port ("db1:2222",
// "[2001:db8::1]:2222") and ranges ("web[01:20].example.com", "db-[a:f]",
// "[1:9:2]" with a step). These follow Ansible's parse_address and
// expand_hostname_range.
var (
	bracketedHostPortRE = regexp.MustCompile(`^\[(.+)\]:([0-9]+)$`)
	hostPortRE          = regexp.MustCompile(`^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$`)
	rangeExpr           = `\[(?:[a-z]:[a-z]|[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]`
	hostnameRE          = regexp.MustCompile(`(?i)^(?:[\w.-]|` + rangeExpr + `)+$`)
)

// expandHostPattern splits off an optional port and expands ranges.
// The port is returned as a value for the ansible_port var, nil when absent.
func expandHostPattern(pattern string) (names []string, port any, err error) {
	host, portText := pattern, ""
	if m := bracketedHostPortRE.FindStringSubmatch(pattern); m != nil && validHost(m[1]) {
		host, portText = m[1], m[2]
	} else if m := hostPortRE.FindStringSubmatch(pattern); m != nil && validHost(m[1]) {
		host, portText = m[1], m[2]
	}
	if portText != "" {
		port = portText // too big for an int: the port check reports it
		if n, err := strconv.Atoi(portText); err == nil {
			port = n
		}
	}
	if strings.HasSuffix(strings.TrimSpace(pattern), ":") && port == nil {
		return nil, nil, fmt.Errorf("invalid host pattern %q: a trailing ':' is reserved for a port", pattern)
	}
	if host == "---" {
		return nil, nil, fmt.Errorf("invalid host pattern %q: '---' is normally a sign this is a YAML file", pattern)
	}
	if !strings.Contains(host, "[") || net.ParseIP(host) != nil {
		names = []string{host}
	} else if names, err = expandRange(host); err != nil {
		return nil, nil, fmt.Errorf("host pattern %q: %v", pattern, err)
	}
	// Ansible takes any name, but one no host pattern can match is a mistake.
	for _, name := range names {
		if err := checkName("host", name); err != nil {
			return nil, nil, err
		}
	}
	return names, port, nil
}

func validHost(s string) bool {
	return hostnameRE.MatchString(s) || (strings.Contains(s, ":") && net.ParseIP(s) != nil)
}

// maxRange bounds one range so that a typo cannot exhaust memory.
const maxRange = 100000

const asciiLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// expandRange expands the first [begin:end(:step)] in s, then recurses for
// the rest. Leading zeros set the width, as in "[01:10]".
func expandRange(s string) ([]string, error) {
	open := strings.Index(s, "[")
	if open < 0 {
		return []string{s}, nil
	}
	closing := strings.Index(s[open:], "]")
	if closing < 0 {
		return nil, fmt.Errorf("unclosed '[' in host range")
	}
	head, spec, tail := s[:open], s[open+1:open+closing], s[open+closing+1:]
	bounds := strings.Split(spec, ":")
	if len(bounds) != 2 && len(bounds) != 3 {
		return nil, fmt.Errorf("host range must be begin:end or begin:end:step")
	}
	beg, end, step := bounds[0], bounds[1], 1
	if len(bounds) == 3 {
		n, err := strconv.Atoi(bounds[2])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("host range step %q is not a positive integer", bounds[2])
		}
		step = n
	}
	if beg == "" {
		beg = "0"
	}
	if end == "" {
		return nil, fmt.Errorf("host range must specify end value")
	}
	width := 0
	if len(beg) > 1 && beg[0] == '0' {
		width = len(beg)
		if len(end) != width {
			return nil, fmt.Errorf("host range must specify equal-length begin and end formats")
		}
	}

	var seq []string
	ib, ie := strings.Index(asciiLetters, beg), strings.Index(asciiLetters, end)
	if len(beg) == 1 && len(end) == 1 && ib >= 0 && ie >= 0 {
		if ib > ie {
			return nil, fmt.Errorf("host range must have begin <= end")
		}
		for i := ib; i <= ie; i += step {
			seq = append(seq, asciiLetters[i:i+1])
		}
	} else {
		b, errB := strconv.Atoi(beg)
		e, errE := strconv.Atoi(end)
		if errB != nil || errE != nil {
			return nil, fmt.Errorf("host range [%s] is neither numeric nor single letters", spec)
		}
		if e >= b && (e-b)/step >= maxRange {
			return nil, fmt.Errorf("host range [%s] has more than %d hosts", spec, maxRange)
		}
		for i := b; i <= e; i += step {
			seq = append(seq, fmt.Sprintf("%0*d", width, i))
		}
	}

	var out []string
	for _, v := range seq {
		more, err := expandRange(head + v + tail)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// splitHostPort splits "host:port" or "[v6]:port" as a host list entry;
// an entry that is no such thing is a host name as it stands (host_list.py).
func splitHostPort(entry string) (string, any, error) {
	for _, re := range []*regexp.Regexp{bracketedHostPortRE, hostPortRE} {
		if m := re.FindStringSubmatch(entry); m != nil && validHost(m[1]) && !strings.Contains(m[1], "[") {
			n, err := strconv.Atoi(m[2])
			if err != nil || n < 1 || n > 65535 {
				return "", nil, fmt.Errorf("%q: port %s is not 1-65535", entry, m[2])
			}
			return m[1], n, nil
		}
	}
	return entry, nil, nil
}
