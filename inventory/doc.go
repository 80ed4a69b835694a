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
// Ansible INI and YAML inventories load as Ansible loads them: [group],
// [group:vars] and [group:children] sections, ungrouped hosts at the top,
// host ranges (web[01:20], db-[a:f]), host:port, quoted values, # and ;
// comments, INI values typed like Python literals (22 is a number, True a
// boolean, "a b" a string), nested children in YAML, and the group_vars/ and
// host_vars/ folders beside the file. Dynamic inventory scripts, plugin
// configurations and vault-encrypted values are not supported.
//
// # Variables
//
// A host's Vars merge, lowest precedence first: the "all" group, then the
// other groups it is in, shallower before deeper (then by
// ansible_group_priority, then by name), then the host's own vars. The
// connection fields come from the merged vars:
//
//	Address     ssh_host, ansible_host, ansible_ssh_host (default: the host name)
//	Port        ssh_port, ansible_port, ansible_ssh_port
//	User        ssh_user, ansible_user, ansible_ssh_user
//	Key         ssh_key, ansible_ssh_private_key_file, ansible_private_key_file
//	Connection  connection, ansible_connection (default "ssh")
//
// Where one level sets two names for a field, the first listed wins. Fields
// given directly (Starlark arguments, orch YAML keys, Add) beat all vars.
// Connections are ssh, local and docker; Ansible's smart and paramiko mean
// ssh. An unknown connection or a port that is not 1-65535 is an error that
// names the file and line that set it.
package inventory
