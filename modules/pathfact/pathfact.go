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

	// UmaskApplies says that a file created beside the path gets its
	// permission bits from the umask, so the file module can create it
	// with its mode instead of running chmod. It is false when a directory
	// the host's paths are created in (the nearest one that exists) shows
	// an ACL, since a default ACL overrides the umask, and when that could
	// not be told: the fact answers it once for all of a host's paths.
	UmaskApplies bool `json:"-"`

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

// Script prints five sections: "#stat", a line per existing path ("HEXMODE
// UID GID OWNER GROUP PATH", lstat semantics); "#absent", the paths that do
// not exist; "#sums", the sha256sum lines of the regular files; "#links",
// each link's path and then its target; "#acl", the `ls -ld` lines of the
// nearest existing directory above each path (a mode ending in "+" has an
// ACL), or "?" when ls failed or may be one that shows no ACLs (BusyBox's,
// which /bin/ls or /usr/bin/ls links to). Paths are absolute and have no
// newline (the file module ensures both). Paths that do not exist cost no
// stat process, so a first run's check of new files costs one ls alone.
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
	each(`_orch_statsome "$@" 2>/dev/null`)
	b.WriteString("echo '#absent'\n")
	each(`for p; do if [ ! -e "$p" ] && [ ! -L "$p" ]; then printf '%s\n' "$p"; fi; done`)
	b.WriteString("echo '#sums'\n")
	each(`_orch_hashall "$@"`)
	b.WriteString("echo '#links'\n")
	each(`for p; do if [ -L "$p" ]; then printf '%s\n' "$p"; readlink "$p"; fi; done`)
	b.WriteString("echo '#acl'\nif [ -L /bin/ls ] || [ -L /usr/bin/ls ]; then echo '?'; fi\n")
	each(aclScan)
	return b.String()
}

// aclScan replaces the arguments with the nearest existing directory above
// each (once per run of equal ones: a role's files share directories) and
// lists them with one ls; -L, as creating a file follows a link.
const aclScan = `_orch_n=$#; _orch_l=
for p; do
  _orch_d=${p%/*}
  while [ -n "$_orch_d" ] && [ ! -d "$_orch_d" ]; do _orch_d=${_orch_d%/*}; done
  _orch_d=${_orch_d:-/}
  if [ "$_orch_d" != "$_orch_l" ]; then set -- "$@" "$_orch_d"; _orch_l=$_orch_d; fi
done
shift "$_orch_n"
LC_ALL=C ls -ldL -- "$@" 2>/dev/null || echo '?'`

// Parse reads the script's output; see Script. A path that is neither
// stat-ed nor absent (it could not be read) is an error, not "absent".
func (fact) Parse(out []byte, keys []string) (map[string]any, error) {
	sections, err := split(string(out), "#stat", "#absent", "#sums", "#links", "#acl")
	if err != nil {
		return nil, err
	}
	umask := umaskApplies(sections[4])
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
		st.UmaskApplies = umask
		res[k] = st
	}
	return res, nil
}

// umaskApplies reads the "#acl" lines: true when ls listed directories and
// none shows an ACL ("drwxr-xr-x+"; GNU's "." for an SELinux context alone
// is no ACL).
func umaskApplies(lines []string) bool {
	for _, l := range lines {
		mode, _, _ := strings.Cut(l, " ")
		if l == "?" || len(mode) < 10 || strings.HasSuffix(mode, "+") {
			return false
		}
	}
	return len(lines) > 0
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
