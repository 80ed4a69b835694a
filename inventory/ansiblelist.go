package inventory

import "slices"

// AnsibleList returns the inventory in the form `ansible-inventory --list`
// prints it: every group reachable from "all" with its direct hosts and
// child groups in Ansible's order (empty lists and groups left out), and
// _meta.hostvars with each host's merged vars. Encoded as JSON it can be
// diffed against Ansible's output. The var values are shared with the
// Hosts: do not change them.
func (inv *Inventory) AnsibleList() map[string]any {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	out := map[string]any{}
	seen := map[string]bool{}
	var walk func(name string)
	walk = func(name string) {
		entry := map[string]any{}
		if name != All {
			if hosts := inv.directHosts(name); len(hosts) > 0 {
				entry["hosts"] = hosts
			}
		}
		children := inv.children(name)
		if len(children) > 0 {
			entry["children"] = children
		}
		for _, c := range children {
			if !seen[c] {
				seen[c] = true
				walk(c)
			}
		}
		if len(entry) > 0 {
			out[name] = entry
		}
	}
	walk(All)
	hostvars := map[string]any{}
	for _, name := range inv.order {
		if h := inv.hosts[name].host; len(h.Vars) > 0 {
			hostvars[name] = h.Vars
		}
	}
	out["_meta"] = map[string]any{"hostvars": hostvars}
	return out
}

// children lists a group's child groups as Ansible orders them. "all"
// has "ungrouped" first, then the groups made its children explicitly,
// then every other group without a parent, in creation order (Ansible's
// reconcile_inventory).
func (inv *Inventory) children(name string) []string {
	g, ok := inv.groups[name]
	if !ok {
		return nil
	}
	if name != All {
		return slices.Clone(g.children)
	}
	out := []string{Ungrouped}
	for _, c := range g.children {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	hasParent := map[string]bool{}
	for _, gd := range inv.groups {
		for _, c := range gd.children {
			hasParent[c] = true
		}
	}
	for _, n := range inv.groupSeq {
		if n != All && !hasParent[n] && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// directHosts lists the hosts declared in a group itself. For "ungrouped"
// it is the hosts in no other group: those declared ungrouped first, then
// the rest in inventory order.
func (inv *Inventory) directHosts(name string) []string {
	g, ok := inv.groups[name]
	if !ok {
		return nil
	}
	if name != Ungrouped {
		return slices.DeleteFunc(slices.Clone(g.hosts), func(h string) bool { return inv.hosts[h] == nil })
	}
	isUngrouped := func(h string) bool {
		d := inv.hosts[h]
		return d != nil && d.host != nil && slices.Equal(d.host.Groups, []string{Ungrouped})
	}
	var out []string
	for _, h := range g.hosts {
		if isUngrouped(h) {
			out = append(out, h)
		}
	}
	for _, h := range inv.order {
		if isUngrouped(h) && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}
