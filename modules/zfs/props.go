package zfs

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// property is one wanted property: the value the user wrote (what zfs set
// is given) and the value zfs get -p will print once it is set (what the
// check compares with).
type property struct {
	name, value, exact string
}

// sizes are the number-typed native properties: zfs parses their values
// with zfs_nicestrtonum ("1G", "1.5g", "512K", "1GiB") and zfs get -p
// prints them in bytes (or plain numbers).
var sizes = map[string]bool{
	"quota": true, "refquota": true, "reservation": true, "refreservation": true,
	"recordsize": true, "volsize": true, "volblocksize": true, "special_small_blocks": true,
	"filesystem_limit": true, "snapshot_limit": true,
}

// noneIsZero are the sizes whose "none" zfs get -p prints as 0; the
// limits keep printing "none".
var noneIsZero = map[string]bool{"quota": true, "refquota": true, "reservation": true, "refreservation": true}

var (
	nativeName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	// A user property: a colon, lower case, at most 256 characters.
	userName = regexp.MustCompile(`^[a-z0-9_.:-]*:[a-z0-9_.:-]*$`)
)

// unmanaged are properties zfs get all does not list, so their state could
// never be read back, or that are not properties of the dataset.
var unmanaged = []string{"userquota@", "groupquota@", "userobjquota@", "groupobjquota@", "projectquota@", "projectobjquota@", "userused@", "groupused@"}

// properties checks and normalises properties= of a task.
func properties(in map[string]any) ([]property, error) {
	var out []property
	for name, v := range in {
		for _, u := range unmanaged {
			if strings.HasPrefix(name, u) {
				return nil, fmt.Errorf("property %q cannot be managed: zfs get all does not list %s properties", name, strings.TrimSuffix(u, "@"))
			}
		}
		if !nativeName.MatchString(name) && !(userName.MatchString(name) && len(name) <= 256) {
			return nil, fmt.Errorf("property %q is not a ZFS property name", name)
		}
		value, err := valueString(v)
		if err != nil {
			return nil, fmt.Errorf("property %s: %v", name, err)
		}
		if strings.ContainsAny(value, "\n\t") {
			return nil, fmt.Errorf("property %s: the value cannot hold a newline or a tab", name)
		}
		if name == "volsize" {
			return nil, fmt.Errorf("property volsize: volumes are not managed by zfs.dataset (only file systems)")
		}
		exact, err := exactValue(name, value)
		if err != nil {
			return nil, fmt.Errorf("property %s: %v", name, err)
		}
		out = append(out, property{name: name, value: value, exact: exact})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// valueString accepts strings, numbers and booleans (on and off).
func valueString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		if x == "" {
			return "", fmt.Errorf("the value is empty")
		}
		return x, nil
	case bool:
		if x {
			return "on", nil
		}
		return "off", nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	}
	return "", fmt.Errorf("want a string, an integer or a boolean, got %T", v)
}

// exactValue is what zfs get -p prints once value is set.
func exactValue(name, value string) (string, error) {
	switch {
	case sizes[name]:
		if value == "none" {
			if noneIsZero[name] {
				return "0", nil
			}
			return "none", nil
		}
		n, err := niceStrToNum(value)
		if err != nil {
			return "", err
		}
		return strconv.FormatUint(n, 10), nil
	case name == "mountpoint":
		if value == "none" || value == "legacy" {
			return value, nil
		}
		if !strings.HasPrefix(value, "/") {
			return "", fmt.Errorf("%q is not an absolute path, none or legacy", value)
		}
		// zfs keeps a mountpoint as written ("/srv/www/" stays so), so a
		// written form that is not the clean one would compare unequal to
		// the mounted path that other tools print.
		if c := path.Clean(value); c != value {
			return "", fmt.Errorf("write %q as %q", value, c)
		}
	}
	return value, nil
}

// niceStrToNum parses a size as libzfs's zfs_nicestrtonum does: a decimal
// number, maybe with a fraction, then an optional suffix B, K, M, G, T, P,
// E or Z (powers of 1024), which may be followed by "B" or "iB" ("G",
// "GB", "GiB"; "BB" and "BiB" are refused), in any case. A fraction is
// computed in floating point and truncated, as zfs does.
func niceStrToNum(s string) (uint64, error) {
	if s == "" || !(s[0] >= '0' && s[0] <= '9' || s[0] == '.') {
		return 0, fmt.Errorf("bad numeric value %q", s)
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart, rest := s[:i], s[i:]
	frac := ""
	if strings.HasPrefix(rest, ".") {
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		frac, rest = rest[:j], rest[j:]
	}
	shift, err := suffixShift(rest)
	if err != nil {
		return 0, fmt.Errorf("%q: %v", s, err)
	}
	if frac != "" {
		f, err := strconv.ParseFloat(intPart+frac, 64)
		if err != nil {
			return 0, fmt.Errorf("bad numeric value %q", s)
		}
		f *= math.Pow(2, float64(shift))
		if f >= math.MaxUint64 {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return uint64(f), nil
	}
	n, err := strconv.ParseUint(intPart, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if shift >= 64 || (n<<shift)>>shift != n {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

func suffixShift(suffix string) (uint, error) {
	if suffix == "" {
		return 0, nil
	}
	const ends = "BKMGTPEZ"
	i := strings.IndexByte(ends, upper(suffix[0]))
	if i < 0 {
		return 0, fmt.Errorf("invalid numeric suffix %q", suffix)
	}
	rest := strings.ToUpper(suffix[1:])
	if rest == "" || (ends[i] != 'B' && (rest == "B" || rest == "IB")) {
		return uint(10 * i), nil
	}
	return 0, fmt.Errorf("invalid numeric suffix %q", suffix)
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
