package inventory

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// lab.star and lab.yml describe the same lab in orch's two formats.
func TestOrchFormatsAgree(t *testing.T) {
	star := mustLoad(t, "testdata/lab.star")
	yml := mustLoad(t, "testdata/lab.yml")
	wantHosts := []string{"ns1", "ns2", "lb1", "lb2", "controller"}
	for name, inv := range map[string]*Inventory{"star": star, "yaml": yml} {
		if got := names(inv.Hosts()); !slices.Equal(got, wantHosts) {
			t.Errorf("%s hosts = %v, want %v", name, got, wantHosts)
		}
	}
	if !reflect.DeepEqual(star.Hosts(), yml.Hosts()) {
		for i := range star.Hosts() {
			t.Logf("star %+v\nyaml %+v", star.Hosts()[i], yml.Hosts()[i])
		}
		t.Error("lab.star and lab.yml differ")
	}
	if !reflect.DeepEqual(star.Groups(), yml.Groups()) {
		t.Errorf("groups differ:\nstar %v\nyaml %v", star.Groups(), yml.Groups())
	}

	tests := []Host{
		{
			Name: "ns1", Address: "172.30.0.11", User: "root", Connection: "docker",
			Groups: []string{"dns", "lab"},
			Vars:   map[string]any{"ssh_user": "root", "connection": "docker", "zone": "example.test", "named_conf": "/etc/bind/named.conf", "bind_role": "primary"},
		},
		{
			Name: "lb2", Address: "172.30.0.22", Port: 2222, User: "root", Connection: "docker",
			Groups: []string{"lab", "lb"},
			Vars:   map[string]any{"ssh_user": "root", "connection": "docker", "zone": "example.test", "listen": []any{53}, "stream": true},
		},
		{
			// A field given directly beats the connection var of "all".
			Name: "controller", Address: "controller", User: "root", Connection: "local",
			Groups: []string{"ungrouped"},
			Vars:   map[string]any{"ssh_user": "root", "connection": "docker", "zone": "example.test"},
		},
	}
	for _, want := range tests {
		if got := mustHost(t, star, want.Name); !reflect.DeepEqual(*got, want) {
			t.Errorf("host %s:\n got %+v\nwant %+v", want.Name, *got, want)
		}
	}
}

func TestStarlarkErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax error", "host(\"a\"\n",
			"inventory.star:2:1: got end of file, want ')'"},
		{"bad port", "host(\"a\")\nhost(\"b\", port = 0)\n",
			`inventory.star:2:5: host "b": port 0 is not a port number (1-65535)`},
		{"port of the wrong type", "host(\"a\", port = \"22\")\n",
			`inventory.star:1:5: host "a": port "22" is not a port number (1-65535)`},
		{"unknown connection", "host(\"a\", connection = \"winrm\")\n",
			`inventory.star:1:5: host "a": unknown connection "winrm" (want ssh, local, docker or jail)`},
		{"unknown argument", "host(\"a\", adress = \"192.0.2.1\")\n",
			`inventory.star:1:5: host: unexpected keyword argument "adress" (did you mean address?)`},
		{"duplicate host", "host(\"a\")\n\nhost(\"a\")\n",
			`inventory.star:3:5: host "a": already declared at inventory.star:1:5`},
		{"duplicate group", "group(\"g\")\ngroup(\"g\")\n",
			`inventory.star:2:6: group "g": already declared at inventory.star:1:6`},
		{"empty host name", "host(\"\")\n",
			`inventory.star:1:5: host: host name is empty`},
		{"hosts for all", "group(\"all\", hosts = [\"a\"])\n",
			`inventory.star:1:6: group "all": the group is implicit: only its vars can be set`},
		{"undeclared child", "group(\"edge\", children = [\"dsn\"])\n",
			`inventory.star:1:6: group "edge": child group "dsn" is not declared`},
		{"groups not a list", "host(\"a\", groups = \"web\")\n",
			`inventory.star:1:5: host "a": groups: got string, want a list of strings`},
		{"var of an unsupported type", "host(\"a\", vars = {\"f\": len})\n",
			`inventory.star:1:5: host "a": vars: f: cannot use a builtin_function_or_method here`},
		{"runaway loop hits the step limit", "def spin():\n    while True:\n        pass\nspin()\n",
			"inventory.star:1:1: Starlark computation cancelled: too many steps"},
		{"no load", "load(\"other.star\", \"x\")\n",
			"load() is not available in inventory files"},
		{"bad user var type still names the call", "host(\"a\", vars = {\"ssh_port\": \"ssh\"})\n",
			`inventory.star:1:5: host "a": ssh_port: "ssh" is not a port number (1-65535)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("inventory.star", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestStarlarkHostsNamedOnlyInGroups(t *testing.T) {
	inv := mustParse(t, "inventory.star", `
group("web", hosts = ["w1", "w2"], vars = {"ssh_port": 2200})
host("w2", user = "admin")
`)
	if got := names(inv.Hosts()); !slices.Equal(got, []string{"w1", "w2"}) {
		t.Fatalf("hosts = %v", got)
	}
	w1, w2 := mustHost(t, inv, "w1"), mustHost(t, inv, "w2")
	if w1.Address != "w1" || w1.Port != 2200 || w1.Connection != "ssh" || w2.User != "admin" || w2.Port != 2200 {
		t.Errorf("w1 = %+v\nw2 = %+v", w1, w2)
	}
}

func TestOrchYAMLErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown host key", "hosts:\n  ns1:\n    adress: 192.0.2.1\n",
			`inventory.yml:3: host "ns1": unknown key "adress" (want address, port, user, key, connection, groups or vars)`},
		{"bad port", "hosts:\n  ns1: {port: 99999}\n",
			`inventory.yml:2: host "ns1": port 99999 is not a port number (1-65535)`},
		{"non-numeric port", "hosts:\n  ns1:\n    port: ssh\n",
			`inventory.yml:3: host "ns1": port ssh is not a port number (1-65535)`},
		{"unknown connection", "hosts:\n  ns1:\n    connection: winrm\n",
			`inventory.yml:3: host "ns1": unknown connection "winrm" (want ssh, local, docker or jail)`},
		{"bad port var", "groups:\n  all:\n    vars:\n      ssh_port: [22]\nhosts:\n  ns1:\n",
			`inventory.yml:4: host "ns1": ssh_port: a list is not a port number (1-65535)`},
		{"duplicate host", "hosts:\n  ns1:\n  ns1:\n",
			`inventory.yml:3: host "ns1" is already declared at inventory.yml:2`},
		{"duplicate group", "groups:\n  dns:\n  dns:\n",
			`inventory.yml:3: group "dns" is already declared at inventory.yml:2`},
		{"undeclared child", "groups:\n  edge:\n    children: [dns]\n",
			`inventory.yml:3: group "edge": child group "dns" is not declared`},
		{"hosts for all", "groups:\n  all:\n    hosts: [a]\n",
			`inventory.yml:3: group "all" is implicit: only its vars can be set`},
		{"listing an implicit group", "hosts:\n  a: {groups: [all]}\n",
			`inventory.yml:2: host "a": group "all" is implicit and cannot be listed`},
		{"unknown top-level key", "hosts: {}\nvar: {}\n",
			`inventory.yml:2: unknown top-level key "var" (want hosts or groups)`},
		{"groups not a list", "hosts:\n  a: {groups: web}\n",
			`inventory.yml:2: host "a": groups must be a list of names, not "web"`},
		{"group loop", "groups:\n  a: {children: [b]}\n  b: {children: [a]}\n",
			`inventory.yml:2: group "a" is its own descendant: a > b > a`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("inventory.yml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}
