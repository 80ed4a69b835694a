package pkg

import (
	"strconv"
	"strings"
)

// freebsdVersionCmp compares two FreeBSD package versions as pkg does
// (libpkg/pkg_version.c pkg_version_cmp at freebsd/pkg 1.21.3):
// ${PORTVERSION}[_${PORTREVISION}][,${PORTEPOCH}], the epoch first, then
// the version component by component, then the revision. It returns -1, 0
// or 1. apt needs no such thing: its candidate is never older than what is
// installed unless a pin asks for a downgrade.
func freebsdVersionCmp(a, b string) int {
	va, ea, ra := splitFreeBSDVersion(a)
	vb, eb, rb := splitFreeBSDVersion(b)
	if ea != eb {
		return cmpInt(ea, eb)
	}
	if !strings.EqualFold(va, vb) {
		for va != "" || vb != "" {
			blockA := va == "" || va[0] == '+'
			blockB := vb == "" || vb[0] == '+'
			var ca, cb component
			if !blockA {
				va, ca = nextComponent(va)
			}
			if !blockB {
				vb, cb = nextComponent(vb)
			}
			switch {
			case blockA && blockB:
				va, vb = strings.TrimPrefix(va, "+"), strings.TrimPrefix(vb, "+")
			case ca.n != cb.n:
				return cmpInt(ca.n, cb.n)
			case ca.a != cb.a:
				return cmpInt(int64(ca.a), int64(cb.a))
			case ca.pl != cb.pl:
				return cmpInt(ca.pl, cb.pl)
			}
		}
	}
	return cmpInt(ra, rb)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// splitFreeBSDVersion splits off the revision (after the last "_") and
// the epoch (after the last "," behind it).
func splitFreeBSDVersion(v string) (version string, epoch, revision int64) {
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		v = v[i+1:]
	}
	end := len(v)
	rest := v
	if i := strings.LastIndexByte(v, '_'); i >= 0 {
		revision = leadingInt(v[i+1:])
		end = i
		rest = v[i+1:]
	}
	if i := strings.LastIndexByte(rest, ','); i >= 0 {
		epoch = leadingInt(rest[i+1:])
		if end == len(v) {
			end = len(v) - len(rest) + i
		}
	}
	return v[:end], epoch, revision
}

// leadingInt is strtoul's reading of s: its leading digits, 0 for none.
func leadingInt(s string) int64 {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	v, _ := strconv.ParseInt(s[:n], 10, 64)
	return v
}

// component is a number, a letter (or stage) and a patch level.
type component struct {
	n, pl int64
	a     int
}

// stages sort before letters ("pl" first of all); the others sort as
// their first letter, after abase. pkg's table gives "snap" a length of 6,
// so strncasecmp matches it only where the version string ends right after
// it: "1.snap1" sorts as the letter s, after "1.alpha1", as pkg's own
// tests (tests/frontend/version.sh) expect.
var stages = []struct {
	name  string
	value int
}{
	{"pl", 0}, {"snap", 1},
	{"alpha", 'a' - 'a' + abase}, {"beta", 'b' - 'a' + abase}, {"pre", 'p' - 'a' + abase}, {"rc", 'r' - 'a' + abase},
}

const abase = 2

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// nextComponent reads one component of s and returns the rest, after
// any separators.
func nextComponent(s string) (string, component) {
	var c component
	hasStage, hasPatch := false, false
	switch {
	case s != "" && isDigit(s[0]):
		i := 0
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		c.n, _ = strconv.ParseInt(s[:i], 10, 64)
		s = s[i:]
	case s != "" && s[0] == '*':
		c.n = -2
		for s = s[1:]; s != "" && s[0] != '+'; s = s[1:] {
		}
	default:
		c.n = -1
		hasStage = true
	}
	if s != "" && isAlpha(s[0]) {
		letter := int(s[0] | 0x20)
		hasPatch = true
		if len(s) > 1 && isAlpha(s[1]) {
			for _, st := range stages {
				matches := len(s) >= len(st.name) && strings.EqualFold(s[:len(st.name)], st.name) &&
					(len(s) == len(st.name) || !isAlpha(s[len(st.name)]))
				if st.name == "snap" {
					matches = strings.EqualFold(s, "snap")
				}
				if matches {
					if hasStage {
						c.a = st.value
						s = s[len(st.name):]
					} else {
						c.a, hasPatch = 0, false // a dot goes before the stage
					}
					letter = 0
					break
				}
			}
		}
		if letter != 0 {
			c.a = letter - 'a' + abase
			for s = s[1:]; s != "" && isAlpha(s[0]); s = s[1:] {
			}
		}
	}
	if hasPatch {
		if s != "" && isDigit(s[0]) {
			i := 0
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			c.pl, _ = strconv.ParseInt(s[:i], 10, 64)
			s = s[i:]
		} else {
			c.pl = -1
		}
	}
	for s != "" && !isDigit(s[0]) && !isAlpha(s[0]) && s[0] != '+' && s[0] != '*' {
		s = s[1:]
	}
	return s, c
}
