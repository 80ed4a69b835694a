package modules

import "strings"

// PathKey is the state key of a path; a path ending in "/" stands for the
// path and everything under it.
func PathKey(path string) string { return "path:" + path }

// WatchKey turns a watch= entry into a state key: absolute paths become
// path keys, anything else ("zfs:tank/www") is already a key.
func WatchKey(w string) string {
	if strings.HasPrefix(w, "/") {
		return PathKey(w)
	}
	return w
}

// Overlap reports whether two state keys may name the same state: they are
// of the same kind ("path", "pkg", …) and their subjects are equal, one is
// "*", or one ends in "/" and the other lies under it (or is it, without
// the slash).
func Overlap(a, b string) bool {
	ka, sa, okA := strings.Cut(a, ":")
	kb, sb, okB := strings.Cut(b, ":")
	if !okA || !okB || ka != kb {
		return false
	}
	return sa == sb || sa == "*" || sb == "*" || under(sa, sb) || under(sb, sa)
}

// under reports whether subject s lies in tree t (t ends in "/").
func under(s, t string) bool {
	tree, ok := strings.CutSuffix(t, "/")
	return ok && (s == tree || strings.HasPrefix(s, t))
}

// OverlapAny reports whether any key of a overlaps any key of b.
func OverlapAny(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if Overlap(x, y) {
				return true
			}
		}
	}
	return false
}
