// Package inventory loads the hosts that orch runs against, and the groups
// they belong to, from Starlark, YAML and Ansible inventories, and matches
// Ansible-style host patterns against them.
//
// # Formats
//
// Load picks the format from the file name (see Load). All formats share
// one model: hosts in declaration order, groups with member hosts and child
// groups, and vars on both. Two implicit groups always exist: "all" and
// "ungrouped" (the hosts in no other group). Host.Groups lists every group a
// host is in, directly or through children, except "all", as Ansible's
// group_names does.
//
// Starlark (inventory.star) has two builtins; both return the name they
// declare, and each name may be declared once:
//
//	host(name, address=None, port=None, user=None, key=None, connection=None, groups=[], vars={})
//	group(name, hosts=[], children=[], vars={})
//
//	group("all", vars = {"ntp": "pool.ntp.org"})
//	group("dns", hosts = [host("ns%d" % i, address = "192.0.2.%d" % i) for i in (1, 2)])
//	group("edge", children = ["dns", "lb"])
//	host("lb1", groups = ["lb"], user = "admin", vars = {"weight": 10})
//
// Hosts named in group(hosts=...) but never declared with host() exist with
// default settings; child groups must be declared (with group() or by a
// host's groups). Top-level for loops are allowed, load() is not, and
// scripts run under a step limit.
//
// orch YAML has top-level hosts and groups keys, with the same fields as the
// Starlark builtins. Unknown keys are errors:
//
//	hosts:
//	  ns1: {address: 192.0.2.1, port: 22, user: root, key: ~/.ssh/orch, connection: ssh,
//	        groups: [dns], vars: {zone: example.test}}
//	  lb1:
//	groups:
//	  all: {vars: {ntp: pool.ntp.org}}
//	  dns: {hosts: [ns1, ns2], vars: {serial: 7}}
//	  edge: {children: [dns, lb]}
//
// Ansible INI and YAML inventories load as Ansible 2.14 loads them, which
// the oracle tests check against ansible-inventory and ansible themselves:
// [group], [group:vars] and [group:children] sections, ungrouped hosts at
// the top, host ranges (web[01:20], db-[a:f]), host:port, quoted values, #
// and ; comments, INI values typed like Python literals, YAML typed by
// YAML 1.1 as PyYAML does (yes is true, 0755 is 493, dates are ISO text),
// nested children, inventory folders, "a,b," host lists, and group_vars/
// and host_vars/ beside each source and beside the playbook
// (Options.PlaybookDir), of which only the first of NAME, NAME.yml,
// NAME.yaml and NAME.json is read. Dynamic inventory scripts, plugin
// configurations and vault-encrypted values are not supported.
//
// # Variables
//
// A host's Vars merge in Ansible's precedence order (see levels in
// inventory.go): inventory-file vars of all, then of the host's groups
// (shallower before deeper, then by ansible_group_priority, then by name);
// group_vars/all; group_vars/GROUP; the host's inventory-file vars;
// host_vars/HOST. The connection fields come from the merged vars (see
// connVars in vars.go for the names and their order); fields given
// directly (Starlark arguments, orch YAML keys, Add) beat all vars.
// Connections are ssh, local, docker and jail; Ansible's smart and
// paramiko mean ssh. A connection orch lacks, or a Jinja template in a
// connection var, does not fail the load: it sets Host.Unusable. A port
// that is not 1-65535 is an error naming the file and line that set it.
package inventory
