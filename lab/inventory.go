package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// writeInventory writes inventory.yaml and inventory.ini for users: the
// lab's running machines in Ansible's formats, which orch reads too. Use
// them with --known-hosts <state>/lab/known_hosts --host-key-check strict.
func (l *Lab) writeInventory(ctx context.Context) error {
	hosts, err := l.Hosts(ctx)
	if err != nil {
		return err
	}
	groups := map[string][]string{}
	var order []string
	var ungrouped []string
	for _, h := range hosts {
		if len(h.Groups) == 0 {
			ungrouped = append(ungrouped, h.Name)
		}
		for _, g := range h.Groups {
			if _, ok := groups[g]; !ok {
				order = append(order, g)
			}
			groups[g] = append(groups[g], h.Name)
		}
	}
	addr := map[string]string{}
	for _, h := range hosts {
		addr[h.Name] = h.Address
	}

	var y strings.Builder
	y.WriteString("# The orch lab's machines, written by `orch lab up`; it changes as the lab cloud creates, renames and deletes machines.\n")
	fmt.Fprintf(&y, "all:\n  vars:\n    ansible_user: root\n    ansible_port: 22\n    ansible_ssh_private_key_file: %q\n", l.KeyPath())
	if len(ungrouped) > 0 {
		y.WriteString("  hosts:\n")
		for _, n := range ungrouped {
			fmt.Fprintf(&y, "    %s:\n      ansible_host: %s\n", n, addr[n])
		}
	}
	if len(order) > 0 {
		y.WriteString("  children:\n")
		for _, g := range order {
			fmt.Fprintf(&y, "    %s:\n      hosts:\n", g)
			for _, n := range groups[g] {
				fmt.Fprintf(&y, "        %s:\n          ansible_host: %s\n", n, addr[n])
			}
		}
	}

	var ini strings.Builder
	ini.WriteString("# The orch lab's machines, written by `orch lab up`.\n")
	for _, n := range ungrouped {
		fmt.Fprintf(&ini, "%s ansible_host=%s\n", n, addr[n])
	}
	for _, g := range order {
		fmt.Fprintf(&ini, "\n[%s]\n", g)
		for _, n := range groups[g] {
			fmt.Fprintf(&ini, "%s ansible_host=%s\n", n, addr[n])
		}
	}
	fmt.Fprintf(&ini, "\n[all:vars]\nansible_user=root\nansible_port=22\nansible_ssh_private_key_file=%s\n", l.KeyPath())

	if err := writeFileAtomic(filepath.Join(l.dir, inventoryYAML), []byte(y.String()), 0o644); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(l.dir, inventoryINI), []byte(ini.String()), 0o644)
}

// refreshInventory rewrites the inventory files after a machine changed.
// The machine change already happened, so a failure here is only logged.
func (l *Lab) refreshInventory(ctx context.Context) {
	unlock, err := lockState(ctx, l.dir)
	if err == nil {
		defer unlock()
		err = l.writeInventory(ctx)
	}
	if err != nil {
		l.logf("lab: inventory files: %v", err)
	}
}
