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
//
// Plans see it as a dict of its JSON form (h.fact("path", "/etc/motd")["kind"]).
type State struct {
	Kind   string `json:"kind"`   // file | directory | link | other | absent
	Mode   uint32 `json:"mode"`   // permission bits, setuid/setgid/sticky included
	UID    int    `json:"uid"`    // numeric owner, for keeping it when a file is rewritten
	GID    int    `json:"gid"`    //
	Owner  string `json:"owner"`  // owner name ("UNKNOWN" when it has none)
	Group  string `json:"group"`  //
	Sum    string `json:"sha256"` // hex SHA-256 of a regular file
	Target string `json:"target"` // what a symlink points to

	stat string // the stat line the state was read from, for Recheck
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

var _ modules.FactRechecker = fact{}

// Recheck is a sh condition that holds while path is as it was gathered:
// the same stat line (kind, mode, owner), hash and link target.
func (fact) Recheck(path string, value any) string {
	st, ok := value.(State)
	if !ok {
		return "false"
	}
	p := modules.Quote(path)
	if st.Kind == "absent" {
		return fmt.Sprintf("{ [ ! -e %s ] && [ ! -L %s ]; }", p, p)
	}
	cond := fmt.Sprintf("[ \"$(_orch_statall %s 2>/dev/null)\" = %s ]", p, modules.Quote(st.stat))
	if st.Kind == "file" {
		cond += fmt.Sprintf(" && _orch_s=$(_orch_sha256 %s) && [ \"${_orch_s%%%% *}\" = %s ]", p, st.Sum)
	}
	if st.Kind == "link" {
		cond += fmt.Sprintf(" && [ \"$(readlink %s)\" = %s ]", p, modules.Quote(st.Target))
	}
	return "{ " + cond + "; }"
}

// chunk bounds the paths given to one stat or sha256sum process, far below
// the kernel's limit on arguments.
const chunk = 256

// Script prints four sections: "#stat", a line per existing path ("HEXMODE
// UID GID OWNER GROUP PATH", lstat semantics); "#absent", the paths that do
// not exist; "#sums", the sha256sum lines of the regular files; "#links",
// each link's path and then its target. Paths are absolute and have no
// newline (the file module ensures both).
func (fact) Script(keys []string) string {
	var b strings.Builder
	each := func(body string) {
		for start := 0; start < len(keys); start += chunk {
			b.WriteString("set --")
			for _, k := range keys[start:min(start+chunk, len(keys))] {
				b.WriteString(" " + modules.Quote(k))
			}
			b.WriteString("\n" + body + "\n")
		}
	}
	b.WriteString("echo '#stat'\n")
	each(`_orch_statall "$@" 2>/dev/null`)
	b.WriteString("echo '#absent'\n")
	each(`for p; do if [ ! -e "$p" ] && [ ! -L "$p" ]; then printf '%s\n' "$p"; fi; done`)
	b.WriteString("echo '#sums'\n")
	each(`_orch_hashall "$@"`)
	b.WriteString("echo '#links'\n")
	each(`for p; do if [ -L "$p" ]; then printf '%s\n' "$p"; readlink "$p"; fi; done`)
	return b.String()
}

// Parse reads the script's output; see Script. A path that is neither
// stat-ed nor absent (it could not be read) is an error, not "absent".
func (fact) Parse(out []byte, keys []string) (map[string]any, error) {
	sections, err := split(string(out), "#stat", "#absent", "#sums", "#links")
	if err != nil {
		return nil, err
	}
	states := make(map[string]State, len(keys))
	for _, line := range sections[0] {
		f := strings.SplitN(line, " ", 6)
		if len(f) != 6 {
			return nil, fmt.Errorf("path facts: unexpected stat line %q", line)
		}
		raw, err1 := strconv.ParseUint(f[0], 16, 32)
		uid, err2 := strconv.Atoi(f[1])
		gid, err3 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("path facts: unexpected stat line %q", line)
		}
		states[f[5]] = State{Kind: kind(raw), Mode: uint32(raw & 0o7777), UID: uid, GID: gid, Owner: f[3], Group: f[4], stat: line}
	}
	for _, p := range sections[1] {
		states[p] = State{Kind: "absent"}
	}
	for _, line := range sections[2] {
		sum, name, err := hashLine(line)
		if err != nil {
			return nil, err
		}
		st, ok := states[name]
		if !ok || st.Kind != "file" {
			return nil, fmt.Errorf("path facts: a hash for %q, which is not a regular file", name)
		}
		st.Sum = sum
		states[name] = st
	}
	links := sections[3]
	for len(links) >= 2 {
		st := states[links[0]]
		st.Target = links[1]
		states[links[0]] = st
		links = links[2:]
	}
	res := make(map[string]any, len(keys))
	for _, k := range keys {
		st, ok := states[k]
		switch {
		case !ok:
			return nil, fmt.Errorf("path facts: could not read %s (permission denied on a parent directory?)", k)
		case st.Kind == "file" && st.Sum == "":
			return nil, fmt.Errorf("path facts: no hash for %s (is it readable, and did it change while being read?)", k)
		}
		res[k] = st
	}
	return res, nil
}

// split cuts the output into the lines of each marked section, in order.
func split(out string, marks ...string) ([][]string, error) {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	sections := make([][]string, len(marks))
	cur := -1
	for _, l := range lines {
		if cur+1 < len(marks) && l == marks[cur+1] {
			cur++
			continue
		}
		if cur < 0 {
			return nil, fmt.Errorf("path facts: unexpected output %q", l)
		}
		if l != "" {
			sections[cur] = append(sections[cur], l)
		}
	}
	if cur != len(marks)-1 {
		return nil, fmt.Errorf("path facts: output ends before %s", marks[cur+1])
	}
	return sections, nil
}

// hashLine reads "HASH  NAME" (GNU; a leading \ marks an escaped name),
// "HASH NAME" (FreeBSD sha256 -r) or "HASH *NAME" (openssl -r).
func hashLine(line string) (sum, name string, err error) {
	escaped := strings.HasPrefix(line, `\`)
	line = strings.TrimPrefix(line, `\`)
	sum, rest, ok := strings.Cut(line, " ")
	if !ok || len(sum) != 64 {
		return "", "", fmt.Errorf("path facts: unexpected hash line %q", line)
	}
	name = strings.TrimLeft(rest, " *") // names are absolute: they start with /
	if escaped {
		name = strings.NewReplacer(`\\`, `\`, `\n`, "\n").Replace(name)
	}
	return sum, name, nil
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
