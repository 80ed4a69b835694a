package image

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MirrorEnv overrides the Debian mirror that the build reads from the
// machine's apt sources.
const MirrorEnv = "ORCH_LAB_MIRROR"

// aptSource is one repository entry of the machine's apt configuration.
type aptSource struct {
	types, uris, suites, components []string
	enabled                         bool
}

// Mirror returns the Debian mirror that serves suite main, read from the
// machine's own apt sources (/etc/apt/sources.list and
// /etc/apt/sources.list.d/*.list, *.sources), or from $ORCH_LAB_MIRROR.
func Mirror(suite string) (string, error) {
	if m := os.Getenv(MirrorEnv); m != "" {
		return m, nil
	}
	return mirrorFrom("/etc/apt", suite)
}

func mirrorFrom(aptDir, suite string) (string, error) {
	var sources []aptSource
	if data, err := os.ReadFile(filepath.Join(aptDir, "sources.list")); err == nil {
		sources = append(sources, parseOneLine(data)...)
	}
	lists, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*.list"))
	for _, f := range lists {
		if data, err := os.ReadFile(f); err == nil {
			sources = append(sources, parseOneLine(data)...)
		}
	}
	deb822, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*.sources"))
	for _, f := range deb822 {
		if data, err := os.ReadFile(f); err == nil {
			sources = append(sources, parseDeb822(data)...)
		}
	}
	for _, s := range sources {
		if !s.enabled || !slices.Contains(s.types, "deb") || !slices.Contains(s.suites, suite) ||
			!slices.Contains(s.components, "main") {
			continue
		}
		for _, u := range s.uris {
			if p, err := url.Parse(u); err == nil && (p.Scheme == "http" || p.Scheme == "https" || p.Scheme == "file") {
				return strings.TrimSuffix(u, "/"), nil
			}
		}
	}
	return "", fmt.Errorf("no apt source for Debian %s main in %s; set %s to a Debian mirror URL", suite, aptDir, MirrorEnv)
}

// parseOneLine reads the classic format: "deb [options] URI suite component...".
func parseOneLine(data []byte) []aptSource {
	var out []aptSource
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) > 0 && len(f) >= 2 && strings.HasPrefix(f[1], "[") {
			// Drop the options, which may contain spaces: "[arch=amd64 signed-by=…]".
			end := slices.IndexFunc(f, func(s string) bool { return strings.HasSuffix(s, "]") })
			if end < 0 {
				continue
			}
			f = append(f[:1], f[end+1:]...)
		}
		if len(f) < 4 {
			continue
		}
		out = append(out, aptSource{types: f[:1], uris: f[1:2], suites: f[2:3], components: f[3:], enabled: true})
	}
	return out
}

// parseDeb822 reads the stanza format of *.sources files.
func parseDeb822(data []byte) []aptSource {
	var out []aptSource
	cur := aptSource{enabled: true}
	seen := false
	flush := func() {
		if seen {
			out = append(out, cur)
		}
		cur, seen = aptSource{enabled: true}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue // comments and continuation lines (Signed-By blocks)
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		seen = true
		vals := strings.Fields(val)
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "types":
			cur.types = vals
		case "uris":
			cur.uris = vals
		case "suites":
			cur.suites = vals
		case "components":
			cur.components = vals
		case "enabled":
			cur.enabled = len(vals) == 0 || strings.ToLower(vals[0]) != "no"
		}
	}
	flush()
	return out
}
