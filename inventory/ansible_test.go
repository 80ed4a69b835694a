package inventory

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func names(hosts []*Host) []string {
	out := []string{}
	for _, h := range hosts {
		out = append(out, h.Name)
	}
	return out
}

func mustLoad(t *testing.T, path string) *Inventory {
	t.Helper()
	inv, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return inv
}

func mustParse(t *testing.T, filename, src string) *Inventory {
	t.Helper()
	inv, err := Parse(filename, []byte(src))
	if err != nil {
		t.Fatalf("Parse(%s): %v", filename, err)
	}
	return inv
}

func mustHost(t *testing.T, inv *Inventory, name string) *Host {
	t.Helper()
	h, ok := inv.Host(name)
	if !ok {
		t.Fatalf("no host %q; have %v", name, names(inv.Hosts()))
	}
	return h
}

var productionHosts = []string{
	"mail.example.com", "bastion.example.com",
	"www01.example.com", "www02.example.com", "www03.example.com", "web-canary.example.com",
	"db-a.example.com", "db-b.example.com", "db-c.example.com", "db-backup.example.com",
}

// The INI and YAML fixtures describe one production inventory; both must
// load to exactly the same hosts, fields, groups and vars.
func TestAnsibleINIAndYAMLAgree(t *testing.T) {
	ini := mustLoad(t, "testdata/ansible/hosts.ini")
	yml := mustLoad(t, "testdata/ansible/hosts.yml")
	if got := names(ini.Hosts()); !slices.Equal(got, productionHosts) {
		t.Fatalf("INI hosts = %v\nwant %v", got, productionHosts)
	}
	if got := names(yml.Hosts()); !slices.Equal(got, productionHosts) {
		t.Fatalf("YAML hosts = %v\nwant %v", got, productionHosts)
	}
	for i, a := range ini.Hosts() {
		b := yml.Hosts()[i]
		if !reflect.DeepEqual(a, b) {
			t.Errorf("host %s differs:\nINI  %+v\nYAML %+v", a.Name, a, b)
		}
	}
	if !reflect.DeepEqual(ini.Groups(), yml.Groups()) {
		t.Errorf("groups differ:\nINI  %v\nYAML %v", ini.Groups(), yml.Groups())
	}
	if w := ini.Warnings(); len(w) > 0 {
		t.Errorf("INI warnings: %v", w)
	}
}

func TestAnsibleProductionInventory(t *testing.T) {
	inv := mustLoad(t, "testdata/ansible/hosts.ini")
	tests := []struct {
		host       string
		address    string
		port       int
		user       string
		groups     []string
		vars       map[string]any // a subset of the host's vars
		absentVars []string
	}{
		{
			host: "mail.example.com", address: "mail.example.com", user: "deploy",
			groups: []string{"ungrouped"},
			vars: map[string]any{
				"ntp_server":  "pool.ntp.org",
				"dns_servers": []any{"192.0.2.53", "198.51.100.53"},
				"timezone":    "UTC", // group_vars/all/time.yml
			},
			absentVars: []string{"http_port"},
		},
		{
			// Host vars beat [all:vars].
			host: "bastion.example.com", address: "203.0.113.10", port: 2222, user: "ops",
			groups: []string{"ungrouped"},
		},
		{
			// southeast is deeper than webservers, so its proxy_timeout wins.
			host: "www01.example.com", address: "www01.example.com", user: "deploy",
			groups: []string{"atlanta", "southeast", "usa", "webservers"},
			vars: map[string]any{
				"proxy_timeout": 5, "http_port": 80, "nginx_worker_processes": "auto",
				"ntp_server": "ntp.southeast.example.com", "escape_pods": 2,
			},
		},
		{
			host: "www03.example.com", address: "www03.example.com", user: "deploy",
			groups: []string{"northwest", "usa", "webservers"},
			vars:   map[string]any{"proxy_timeout": 30, "ntp_server": "pool.ntp.org"},
		},
		{
			// host:port sets ansible_port; INI values are typed like Python literals.
			host: "web-canary.example.com", address: "web-canary.example.com", port: 8022, user: "deploy",
			groups: []string{"webservers"},
			vars:   map[string]any{"canary": true, "weight": 5, "ansible_port": 8022},
		},
		{
			// group_vars/dbservers.yml beats [dbservers:vars]; host_vars/ beats both.
			host: "db-a.example.com", address: "db-a.example.com", port: 5522, user: "postgres",
			groups: []string{"atlanta", "dbservers", "southeast", "usa"},
			vars:   map[string]any{"pg_max_connections": 300, "pg_version": 15, "pg_role": "primary", "pg_listen": "*"},
		},
		{
			host: "db-c.example.com", address: "db-c.example.com", user: "postgres",
			groups:     []string{"dbservers", "northeast", "usa"},
			absentVars: []string{"pg_role"},
		},
		{
			host: "db-backup.example.com", address: "10.0.5.20", user: "deploy",
			groups: []string{"dbservers", "northwest", "usa"},
			vars:   map[string]any{"backup_window": "02:00-04:00"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			h := mustHost(t, inv, tt.host)
			if h.Address != tt.address || h.Port != tt.port || h.User != tt.user {
				t.Errorf("address, port, user = %q, %d, %q; want %q, %d, %q", h.Address, h.Port, h.User, tt.address, tt.port, tt.user)
			}
			if h.Key != "~/.ssh/prod_ed25519" || h.Connection != "ssh" {
				t.Errorf("key, connection = %q, %q", h.Key, h.Connection)
			}
			if !slices.Equal(h.Groups, tt.groups) {
				t.Errorf("groups = %v, want %v", h.Groups, tt.groups)
			}
			for k, want := range tt.vars {
				if got := h.Vars[k]; !reflect.DeepEqual(got, want) {
					t.Errorf("var %s = %#v, want %#v", k, got, want)
				}
			}
			for _, k := range tt.absentVars {
				if v, ok := h.Vars[k]; ok {
					t.Errorf("var %s = %#v, want it unset", k, v)
				}
			}
		})
	}
}

func TestINIDetails(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		hosts []string
		check func(t *testing.T, inv *Inventory)
	}{
		{
			name:  "numeric range",
			src:   "web[1:3]\n",
			hosts: []string{"web1", "web2", "web3"},
		},
		{
			name:  "padded range with step",
			src:   "web[01:10:3].example.com\n",
			hosts: []string{"web01.example.com", "web04.example.com", "web07.example.com", "web10.example.com"},
		},
		{
			name:  "two ranges, letters and numbers",
			src:   "db-[a:b]-[1:2]\n",
			hosts: []string{"db-a-1", "db-a-2", "db-b-1", "db-b-2"},
		},
		{
			name:  "range with a port",
			src:   "[web]\nweb[1:2]:2200\n",
			hosts: []string{"web1", "web2"},
			check: func(t *testing.T, inv *Inventory) {
				if p := mustHost(t, inv, "web2").Port; p != 2200 {
					t.Errorf("port = %d, want 2200", p)
				}
			},
		},
		{
			name:  "IPv4 and bracketed IPv6 with ports, bare IPv6 without",
			src:   "10.0.0.1:2201\n[2001:db8::1]:2202\nfe80::1\n",
			hosts: []string{"10.0.0.1", "2001:db8::1", "fe80::1"},
			check: func(t *testing.T, inv *Inventory) {
				if p := mustHost(t, inv, "2001:db8::1").Port; p != 2202 {
					t.Errorf("IPv6 port = %d", p)
				}
				if h := mustHost(t, inv, "fe80::1"); h.Port != 0 || h.Address != "fe80::1" {
					t.Errorf("bare IPv6 = %+v", h)
				}
			},
		},
		{
			name:  "typed and quoted host vars",
			src:   `web1 s="a b" q='c d' n=1 b=True t=true z=None f=1.5 l="[1, 'x']" str="'22'" path=/usr/bin/python3 e= # c=3` + "\n",
			hosts: []string{"web1"},
			check: func(t *testing.T, inv *Inventory) {
				want := map[string]any{
					"s": "a b", "q": "c d", "n": 1, "b": true, "t": "true", "z": nil, "f": 1.5,
					"l": []any{1, "x"}, "str": "22", "path": "/usr/bin/python3", "e": "",
				}
				if got := mustHost(t, inv, "web1").Vars; !reflect.DeepEqual(got, want) {
					t.Errorf("vars = %#v\nwant %#v", got, want)
				}
			},
		},
		{
			name:  "a # inside a word starts a comment, as in shlex",
			src:   "web1 a=1#b=2\n",
			hosts: []string{"web1"},
			check: func(t *testing.T, inv *Inventory) {
				if got := mustHost(t, inv, "web1").Vars; !reflect.DeepEqual(got, map[string]any{"a": 1}) {
					t.Errorf("vars = %#v", got)
				}
			},
		},
		{
			// Ansible keeps a trailing comment in a :vars value unless the value is
			// a Python literal, which may be followed by a comment.
			name:  "comments in vars sections",
			src:   "[web]\nweb1\n[web:vars]\nmsg=hello world # kept\nq=\"quoted # kept\" # dropped\n; whole-line comment\n",
			hosts: []string{"web1"},
			check: func(t *testing.T, inv *Inventory) {
				v := mustHost(t, inv, "web1").Vars
				if v["msg"] != "hello world # kept" || v["q"] != "quoted # kept" || len(v) != 2 {
					t.Errorf("vars = %#v", v)
				}
			},
		},
		{
			name:  "children may be declared after use",
			src:   "[usa:children]\nsoutheast\n[southeast:children]\natlanta\n[atlanta]\nh1\n[southeast:vars]\nx=1\n",
			hosts: []string{"h1"},
			check: func(t *testing.T, inv *Inventory) {
				h := mustHost(t, inv, "h1")
				if !slices.Equal(h.Groups, []string{"atlanta", "southeast", "usa"}) || h.Vars["x"] != 1 {
					t.Errorf("h1 = %+v", h)
				}
			},
		},
		{
			name:  "a host listed twice merges its vars",
			src:   "web1 a=1 b=1\n[web]\nweb1 b=2\n",
			hosts: []string{"web1"},
			check: func(t *testing.T, inv *Inventory) {
				h := mustHost(t, inv, "web1")
				if !reflect.DeepEqual(h.Vars, map[string]any{"a": 1, "b": 2}) || !slices.Equal(h.Groups, []string{"web"}) {
					t.Errorf("web1 = %+v (a host in a group is no longer ungrouped)", h)
				}
			},
		},
		{
			name:  "connection names map onto orch's",
			src:   "a ansible_connection=smart\nb ansible_connection=paramiko\nc ansible_connection=local\nd ansible_connection=community.docker.docker\ne\n",
			hosts: []string{"a", "b", "c", "d", "e"},
			check: func(t *testing.T, inv *Inventory) {
				var got []string
				for _, h := range inv.Hosts() {
					got = append(got, h.Connection)
				}
				if want := []string{"ssh", "ssh", "local", "docker", "ssh"}; !slices.Equal(got, want) {
					t.Errorf("connections = %v, want %v", got, want)
				}
			},
		},
		{
			name:  "legacy ansible_ssh_* names",
			src:   "old ansible_ssh_host=192.0.2.9 ansible_ssh_port=2022 ansible_ssh_user=admin ansible_private_key_file=/k\n",
			hosts: []string{"old"},
			check: func(t *testing.T, inv *Inventory) {
				h := mustHost(t, inv, "old")
				if h.Address != "192.0.2.9" || h.Port != 2022 || h.User != "admin" || h.Key != "/k" {
					t.Errorf("old = %+v", h)
				}
			},
		},
		{
			name:  "empty file",
			src:   "# nothing here\n",
			hosts: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := mustParse(t, "inventory.ini", tt.src)
			if got := names(inv.Hosts()); !slices.Equal(got, tt.hosts) {
				t.Errorf("hosts = %v, want %v", got, tt.hosts)
			}
			if tt.check != nil {
				tt.check(t, inv)
			}
		})
	}
}

func TestINIErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"bad port in host vars", "[web]\nweb1 ansible_port=abc\n",
			`inventory.ini:2: host "web1": ansible_port: "abc" is not a port number (1-65535)`},
		{"port out of range", "web1:70000\n",
			`inventory.ini:1: host "web1": ansible_port: 70000 is not a port number (1-65535)`},
		{"bad port in group vars names the vars line", "[web]\nweb1\n\n[web:vars]\nansible_port=22x\n",
			`inventory.ini:5: host "web1": ansible_port: "22x" is not a port number (1-65535)`},
		{"vars for an undefined group", "[web:vars]\nx=1\n",
			`inventory.ini:1: section [web:vars] not valid for undefined group "web"`},
		{"undefined child", "[usa:children]\nsoutheast\n",
			`inventory.ini:2: section [usa:children] includes undefined group "southeast"`},
		{"unknown section type", "[web:host]\n",
			`inventory.ini:1: section [web:host] has unknown type "host" (want vars or children)`},
		{"space in a section", "[web servers]\n",
			`inventory.ini:1: invalid section entry "[web servers]"`},
		{"host var without =", "web1 ansible_user\n",
			`inventory.ini:1: expected key=value host variable assignment, got "ansible_user"`},
		{"vars line without =", "[web]\nw\n[web:vars]\njust_a_word\n",
			`inventory.ini:4: expected key=value, got "just_a_word"`},
		{"bad child name", "[a]\n[b:children]\na:b\n",
			`inventory.ini:3: expected group name, got "a:b"`},
		{"unclosed quote", "web1 motd=\"hello\n",
			`inventory.ini:1: cannot parse host definition "web1 motd=\"hello": no closing quotation`},
		{"unequal range widths", "web[01:3]\n",
			`inventory.ini:1: host pattern "web[01:3]": host range must specify equal-length begin and end formats`},
		{"range without an end", "web[1:]\n",
			`inventory.ini:1: host pattern "web[1:]": host range must specify end value`},
		{"trailing colon", "web1:\n",
			`inventory.ini:1: invalid host pattern "web1:": a trailing ':' is reserved for a port`},
		{"YAML fed to INI", "---\n",
			`inventory.ini:1: invalid host pattern "---": '---' is normally a sign this is a YAML file`},
		{"group loop", "[a:children]\nb\n[b:children]\na\n",
			`is its own descendant`},
		{"bad group priority", "[web]\nw\n[web:vars]\nansible_group_priority=high\n",
			`inventory.ini:4: group "web": ansible_group_priority: "high" is not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("inventory.ini", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadErrorNamesFile(t *testing.T) {
	_, err := Load("testdata/errors/bad-port.ini")
	want := `testdata/errors/bad-port.ini:6: host "web1": ansible_port: "ssh" is not a port number (1-65535)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
	if _, err := Load("testdata/nonexistent.ini"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: error = %v", err)
	}
}

func TestAnsibleYAMLDetails(t *testing.T) {
	src := `
all:
  vars:
    site: main
  children:
    web:
      hosts:
        web[1:2]:
          role: front
      hosts_typo: oops
      vars:
        tier: 1
    prod:
      children:
        web:
        db:
          hosts: db1
    empty: ~
    notagroup: [1, 2]
`
	inv := mustParse(t, "hosts.yaml", src)
	if got := names(inv.Hosts()); !slices.Equal(got, []string{"web1", "web2", "db1"}) {
		t.Fatalf("hosts = %v", got)
	}
	h := mustHost(t, inv, "web2")
	want := map[string]any{"site": "main", "role": "front", "tier": 1}
	if !reflect.DeepEqual(h.Vars, want) || !slices.Equal(h.Groups, []string{"prod", "web"}) {
		t.Errorf("web2 = %+v", h)
	}
	if got := mustHost(t, inv, "db1").Groups; !slices.Equal(got, []string{"db", "prod"}) {
		t.Errorf("db1 groups = %v (a lone string is a host, as in Ansible)", got)
	}
	if _, ok := inv.Groups()["empty"]; !ok {
		t.Error("null group not declared")
	}
	warnings := strings.Join(inv.Warnings(), "\n")
	for _, w := range []string{
		`hosts.yaml:10: skipping unexpected key "hosts_typo" in group "web"`,
		`hosts.yaml:19: skipping "notagroup": not a valid group definition`,
	} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings %q lack %q", warnings, w)
		}
	}
}

func TestAnsibleYAMLErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"hosts as a list", "all:\n  hosts:\n    - web1\n",
			`hosts.yml:3: invalid "hosts" entry for group "all": want a mapping, not a list`},
		{"host vars not a mapping", "all:\n  hosts:\n    web1: [a]\n",
			`hosts.yml:3: host "web1": vars must be a mapping, not a list`},
		{"bad port names the key's line", "all:\n  hosts:\n    web1:\n      ansible_port: 0\n",
			`hosts.yml:4: host "web1": ansible_port: 0 is not a port number (1-65535)`},
		{"vault value", "all:\n  vars:\n    secret: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      6162\n",
			`hosts.yml:3: vault-encrypted values are not supported`},
		{"plugin configuration", "plugin: amazon.aws.aws_ec2\nregions: [us-east-1]\n",
			`hosts.yml:1: this is an Ansible inventory plugin configuration (plugin: amazon.aws.aws_ec2)`},
		{"not a mapping", "- web1\n- web2\n",
			`hosts.yml:1: a YAML inventory must be a mapping, not a list`},
		{"syntax", "all:\n  hosts: [\n",
			`hosts.yml:2: did not find expected node content`},
		{"bad range", "all:\n  hosts:\n    web[a:1]:\n",
			`hosts.yml:3: host pattern "web[a:1]": host range [a:1] is neither numeric nor single letters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("hosts.yml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// Ansible reads a file without an extension as YAML when it is a YAML
// mapping and as INI otherwise; "hosts" files come in both kinds.
func TestFormatSniffing(t *testing.T) {
	for _, fixture := range []string{"testdata/ansible/hosts.ini", "testdata/ansible/hosts.yml"} {
		src, err := os.ReadFile(fixture)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := Parse("hosts", src)
		if err != nil {
			t.Fatalf("%s as hosts: %v", fixture, err)
		}
		// Parse reads no group_vars/, so compare with a Parse of the original.
		want := mustParse(t, fixture, string(src))
		if !reflect.DeepEqual(inv.Hosts(), want.Hosts()) {
			t.Errorf("%s read as \"hosts\" differs", fixture)
		}
	}
	inv := mustParse(t, "hosts", "web1\nweb2 ansible_port=2222\n")
	if got := names(inv.Hosts()); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Errorf("plain host list = %v", got)
	}
}

// An inventory directory is read as Ansible reads one: .ini files in it are
// ignored (they configure dynamic inventory scripts), YAML files are read,
// and so are group_vars/ and host_vars/.
func TestLoadDirectory(t *testing.T) {
	dir := mustLoad(t, "testdata/ansible")
	file := mustLoad(t, "testdata/ansible/hosts.yml")
	if !reflect.DeepEqual(dir.Hosts(), file.Hosts()) {
		t.Errorf("directory and hosts.yml differ:\n%v\n%v", names(dir.Hosts()), names(file.Hosts()))
	}

	empty := t.TempDir()
	if err := os.WriteFile(empty+"/notes.md", []byte("# not an inventory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty+"/ec2.py", []byte("#!/usr/bin/env python3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(empty); err == nil || !strings.Contains(err.Error(), "no inventory files in directory") {
		t.Errorf("error = %v", err)
	}
}

func TestVarsFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(dir+"/"+path[:strings.LastIndex(path, "/")+1], 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/"+path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hosts", "[web]\nweb1\n")
	write("group_vars/web.yml", "$ANSIBLE_VAULT;1.1;AES256\n6162\n")
	if _, err := Load(dir + "/hosts"); err == nil || !strings.Contains(err.Error(), "group_vars/web.yml: vault-encrypted files are not supported") {
		t.Errorf("vault file: error = %v", err)
	}
	write("group_vars/web.yml", "- a list\n")
	if _, err := Load(dir + "/hosts"); err == nil || !strings.Contains(err.Error(), "group_vars/web.yml:1: a vars file must hold a mapping, not a list") {
		t.Errorf("list file: error = %v", err)
	}
	write("group_vars/web.yml", "ansible_port: [22]\n")
	if _, err := Load(dir + "/hosts"); err == nil || !strings.Contains(err.Error(), `group_vars/web.yml:1: host "web1": ansible_port: a list is not a port number`) {
		t.Errorf("bad port: error = %v", err)
	}
}
