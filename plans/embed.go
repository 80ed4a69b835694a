package plans

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed *.star templates
var shipped embed.FS

// Shipped holds the plans that ship with orch, so that `orch run dns-swap`
// works outside the repository too.
var Shipped fs.FS = shipped

// shippedName maps "dns-swap", "dns-swap.star" or "plans/dns-swap.star" to
// the embedded file name, if orch ships such a plan.
func shippedName(p string) (string, bool) {
	name := p[strings.LastIndexByte(p, '/')+1:]
	if !strings.HasSuffix(name, ".star") {
		name += ".star"
	}
	if _, err := fs.Stat(shipped, name); err != nil {
		return "", false
	}
	return name, true
}

// ShippedPlans lists the names of the shipped plans.
func ShippedPlans() []string {
	entries, _ := fs.ReadDir(shipped, ".")
	var out []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".star"); ok {
			out = append(out, name)
		}
	}
	return out
}
