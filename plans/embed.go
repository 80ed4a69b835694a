// Package plans holds the plans that ship with orch, with their roles and
// templates, embedded so that `orch run dns-swap` works outside the
// repository too. The Starlark host that loads and runs them is package
// plan.
package plans

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed *.star templates floating-ip dns-swap bootenv
var shipped embed.FS

// FS holds the shipped plans and the files they load and read.
var FS fs.FS = shipped

// Lookup maps "dns-swap", "dns-swap.star" or "plans/dns-swap.star" to the
// embedded file name, if orch ships such a plan.
func Lookup(p string) (string, bool) {
	name := p[strings.LastIndexByte(p, '/')+1:]
	if !strings.HasSuffix(name, ".star") {
		name += ".star"
	}
	if _, err := fs.Stat(shipped, name); err != nil {
		return "", false
	}
	return name, true
}

// Names lists the shipped plans, without the .star suffix.
func Names() []string {
	entries, _ := fs.ReadDir(shipped, ".")
	var out []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".star"); ok {
			out = append(out, name)
		}
	}
	return out
}
