// Package pathfact is the shared "path" fact: the kind, mode, owner, group,
// SHA-256 (regular files) and target (symlinks) of paths on a host,
// gathered for all paths of a host with one stat and one hash process.
package pathfact

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/orch-dev/orch/modules"
)

// Name is the fact's registered name.
const Name = "path"

func init() { modules.RegisterFact(Name, fact{}) }

// State is what the fact knows of one path. A path that does not exist has
// Kind "absent" and nothing else.
type State struct {
	Kind   string // file | directory | link | other | absent
	Mode   uint32 // permission bits, setuid/setgid/sticky included
	Owner  string
	Group  string
	Sum    string // hex SHA-256 of a regular file
	Target string // what a symlink points to
}

// Key is the fact key for path.
func Key(path string) modules.FactKey { return modules.FactKey{Fact: Name, Key: path} }

// Of returns the state of path from a check request.
func Of(req modules.CheckRequest, path string) (State, error) {
	v, ok := req.Facts[Key(path)]
	if !ok {
		return State{}, fmt.Errorf("no facts gathered for %s", path)
	}
	return v.(State), nil
}

type fact struct{}

// Script prints three sections: a stat line per existing path ("HEXMODE
// OWNER GROUP PATH", lstat semantics), the hashes of the regular files in
// key order, and the targets of the links in key order.
func (fact) Script(keys []string) string {
	var b strings.Builder
	b.WriteString("set --")
	for _, k := range keys {
		b.WriteString(" " + modules.Quote(k))
	}
	b.WriteString("\n_orch_statall \"$@\"\necho '#sums'\n_orch_hashall \"$@\"\necho '#links'\n")
	b.WriteString("for p; do if [ -L \"$p\" ]; then readlink \"$p\"; fi; done\n")
	return b.String()
}

// Parse reads the script's output; see Script.
func (fact) Parse(out []byte, keys []string) (map[string]any, error) {
	text := string(out)
	statPart, rest, ok1 := strings.Cut(text, "#sums\n")
	sumPart, linkPart, ok2 := strings.Cut(rest, "#links\n")
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("path facts: unexpected output %q", firstLine(text))
	}
	states := make(map[string]State, len(keys))
	for _, line := range lines(statPart) {
		parts := strings.SplitN(line, " ", 4)
		if len(parts) != 4 {
			return nil, fmt.Errorf("path facts: unexpected stat line %q", line)
		}
		raw, err := strconv.ParseUint(parts[0], 16, 32)
		if err != nil {
			return nil, fmt.Errorf("path facts: unexpected mode in %q", line)
		}
		states[parts[3]] = State{Kind: kind(raw), Mode: uint32(raw & 0o7777), Owner: parts[1], Group: parts[2]}
	}
	sums, links := lines(sumPart), lines(linkPart)
	out2 := make(map[string]any, len(keys))
	for _, k := range keys {
		st, ok := states[k]
		if !ok {
			st = State{Kind: "absent"}
		}
		switch st.Kind {
		case "file":
			if len(sums) == 0 {
				return nil, fmt.Errorf("path facts: no hash for %s (did it change while being read?)", k)
			}
			// "HASH  NAME" (GNU; a leading \ marks an escaped name) or "HASH NAME" (BSD).
			sum := strings.TrimPrefix(strings.Fields(sums[0])[0], `\`)
			if len(sum) != 64 {
				return nil, fmt.Errorf("path facts: unexpected hash line %q", sums[0])
			}
			st.Sum, sums = sum, sums[1:]
		case "link":
			if len(links) == 0 {
				return nil, fmt.Errorf("path facts: no target for link %s", k)
			}
			st.Target, links = links[0], links[1:]
		}
		out2[k] = st
	}
	return out2, nil
}

// kind maps the file type bits of st_mode.
func kind(mode uint64) string {
	switch mode & 0o170000 {
	case 0o100000:
		return "file"
	case 0o040000:
		return "directory"
	case 0o120000:
		return "link"
	}
	return "other"
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
