package inventory

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrNoMatch is wrapped by Match and Limit when a pattern term names no host
// or group and is not a glob or regex, which is nearly always a typo. A
// caller that prefers Ansible's warning can test for it with errors.Is.
var ErrNoMatch = errors.New("no host or group by that name")

// Match returns the hosts that an Ansible host pattern selects, in inventory
// order and without duplicates. A pattern is a list of terms separated by
// commas (or colons); each term is
//
//	all, *            every host
//	NAME              a group's hosts (with its children's) or one host
//	web*, ns?, db[12] a glob over group and host names
//	~web\d+           a regular expression over group and host names
//	TERM[0], TERM[1:3], TERM[-1]
//	                  hosts picked by position (inclusive, as in Ansible)
//	&TERM             keep only hosts also in TERM
//	!TERM             drop hosts in TERM
//
// Plain terms are unioned first (all hosts when there are none), then the &
// terms intersect and the ! terms exclude, whatever their order. A glob that
// matches nothing is not an error.
func (inv *Inventory) Match(pattern string) ([]*Host, error) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	set, err := inv.match(pattern)
	if err != nil {
		return nil, err
	}
	var out []*Host
	for _, name := range inv.order {
		if set[name] {
			out = append(out, inv.hosts[name].host)
		}
	}
	return out, nil
}

func (inv *Inventory) match(pattern string) (map[string]bool, error) {
	terms := splitPattern(pattern)
	if len(terms) == 0 {
		return nil, fmt.Errorf("inventory: empty host pattern %q", pattern)
	}
	var plain, and, not []string
	for _, t := range terms {
		switch t[0] {
		case '&':
			and = append(and, t[1:])
		case '!':
			not = append(not, t[1:])
		default:
			plain = append(plain, t)
		}
	}
	if len(plain) == 0 {
		plain = []string{All}
	}
	set := map[string]bool{}
	for _, t := range plain {
		hosts, err := inv.matchTerm(t)
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			set[h] = true
		}
	}
	for _, t := range and {
		hosts, err := inv.matchTerm(t)
		if err != nil {
			return nil, err
		}
		keep := map[string]bool{}
		for _, h := range hosts {
			keep[h] = true
		}
		for name := range set {
			if !keep[name] {
				delete(set, name)
			}
		}
	}
	for _, t := range not {
		hosts, err := inv.matchTerm(t)
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			delete(set, h)
		}
	}
	return set, nil
}

// splitPattern splits on commas or, when there are none, on colons outside
// brackets, so that "web[0:2]" stays one term.
func splitPattern(p string) []string {
	var parts []string
	if strings.Contains(p, ",") {
		parts = strings.Split(p, ",")
	} else {
		depth, start := 0, 0
		for i, c := range p {
			switch c {
			case '[':
				depth++
			case ']':
				depth = max(depth-1, 0)
			case ':':
				if depth == 0 {
					parts = append(parts, p[start:i])
					start = i + 1
				}
			}
		}
		parts = append(parts, p[start:])
	}
	var terms []string
	for _, t := range parts {
		t = strings.TrimSpace(t)
		if t != "" && t != "!" && t != "&" {
			terms = append(terms, t)
		}
	}
	return terms
}

var subscriptRE = regexp.MustCompile(`^(.+)\[(?:(-?[0-9]+)|([0-9]+)[:-]([0-9]*))\]$`)

// matchTerm returns the names of the hosts one term selects, in inventory
// order.
func (inv *Inventory) matchTerm(term string) ([]string, error) {
	base, sub := term, []string(nil)
	if term[0] != '~' {
		if m := subscriptRE.FindStringSubmatch(term); m != nil {
			base, sub = m[1], m[2:]
		}
	}

	var nameMatches func(string) bool
	switch {
	case base[0] == '~':
		re, err := regexp.Compile("^(?:" + base[1:] + ")")
		if err != nil {
			return nil, fmt.Errorf("inventory: bad regular expression in host pattern %q: %v", term, err)
		}
		nameMatches = re.MatchString
	case strings.ContainsAny(base, "*?["):
		re, err := globRegexp(base)
		if err != nil {
			return nil, fmt.Errorf("inventory: bad glob in host pattern %q: %v", term, err)
		}
		nameMatches = re.MatchString
	default:
		if _, isGroup := inv.groups[base]; !isGroup {
			if _, isHost := inv.hosts[base]; !isHost {
				return nil, fmt.Errorf("inventory: host pattern %q: %w%s", term, ErrNoMatch, inv.suggest(base))
			}
		}
		nameMatches = func(s string) bool { return s == base }
	}

	var groups []string
	for name := range inv.groups {
		if nameMatches(name) {
			groups = append(groups, name)
		}
	}
	var hosts []string
	for _, name := range inv.order {
		h := inv.hosts[name].host
		if nameMatches(name) || slices.Contains(groups, All) || slices.ContainsFunc(h.Groups, func(g string) bool { return slices.Contains(groups, g) }) {
			hosts = append(hosts, name)
		}
	}
	if sub == nil {
		return hosts, nil
	}
	return applySubscript(term, hosts, sub)
}

// applySubscript picks hosts by position: [i] one host (negative counts from
// the end), [i:j] hosts i to j inclusive, [i:] from i to the end.
func applySubscript(term string, hosts []string, sub []string) ([]string, error) {
	if sub[0] != "" {
		i, _ := strconv.Atoi(sub[0])
		if i < 0 {
			i += len(hosts)
		}
		if i < 0 || i >= len(hosts) {
			return nil, fmt.Errorf("inventory: host pattern %q: index out of range (%d hosts)", term, len(hosts))
		}
		return hosts[i : i+1], nil
	}
	start, _ := strconv.Atoi(sub[1])
	end := len(hosts) - 1
	if sub[2] != "" {
		end, _ = strconv.Atoi(sub[2])
	}
	end = min(end+1, len(hosts))
	if start >= end {
		return nil, nil
	}
	return hosts[start:end], nil
}

// globRegexp translates a glob as Python's fnmatch does, which is what
// Ansible patterns use: * and ? match any character, [seq] and [!seq] sets,
// and an unclosed [ is literal.
func globRegexp(glob string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^(?:")
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			j := i + 1
			if j < len(glob) && glob[j] == '!' {
				j++
			}
			if j < len(glob) && glob[j] == ']' {
				j++
			}
			for j < len(glob) && glob[j] != ']' {
				j++
			}
			if j >= len(glob) {
				b.WriteString(`\[`)
				continue
			}
			set := strings.ReplaceAll(glob[i+1:j], `\`, `\\`)
			switch {
			case strings.HasPrefix(set, "!"):
				set = "^" + set[1:]
			case strings.HasPrefix(set, "^"):
				set = `\` + set
			}
			b.WriteString("[" + set + "]")
			i = j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(")$")
	return regexp.Compile(b.String())
}

// suggest names the closest group or host, for a helpful error.
func (inv *Inventory) suggest(name string) string {
	best, bestDist := "", 3
	consider := func(cand string) {
		if d := editDistance(name, cand); d < bestDist && d < len(name) {
			best, bestDist = cand, d
		}
	}
	for _, g := range inv.groupSeq {
		consider(g)
	}
	for _, h := range inv.order {
		consider(h)
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
