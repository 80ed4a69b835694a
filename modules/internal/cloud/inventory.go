package cloud

import (
	"strings"

	"github.com/orch-dev/orch/inventory"
)

// Inventory turns a provider's machines into a dynamic inventory: every
// host is in the group named after the provider and in one group per tag
// (tags that cannot name a group are left out of the groups, not the vars).
func Inventory[M interface{ Host() *inventory.Host }](provider string, machines []M) (*inventory.Inventory, error) {
	inv := inventory.New()
	for _, m := range machines {
		h := m.Host()
		h.Groups = append(h.Groups, provider)
		if tags, ok := h.Vars["tags"].([]string); ok {
			for _, t := range tags {
				if t != "" && !strings.ContainsAny(t, " \t\r\n,:!&[]*?~") {
					h.Groups = append(h.Groups, t)
				}
			}
		}
		if err := inv.Add(h); err != nil {
			return nil, err
		}
	}
	return inv, nil
}
