package inventory

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		src   string
		host  string
		key   string
		want  any
		field func(*Host) any // checked instead of a var when set
	}{
		{
			name: "child group beats parent beats all",
			file: "inventory.ini",
			src:  "[all:vars]\nv=all\n[parent:children]\nchild\n[parent:vars]\nv=parent\n[child]\nh1\n[child:vars]\nv=child\n",
			host: "h1", key: "v", want: "child",
		},
		{
			name: "parent beats all",
			file: "inventory.ini",
			src:  "[all:vars]\nv=all\n[parent:children]\nchild\n[parent:vars]\nv=parent\n[child]\nh1\n",
			host: "h1", key: "v", want: "parent",
		},
		{
			name: "host beats every group",
			file: "inventory.ini",
			src:  "[parent:children]\nchild\n[child]\nh1 v=host\n[child:vars]\nv=child\n",
			host: "h1", key: "v", want: "host",
		},
		{
			name: "deeper group beats a shallower one from another branch",
			file: "inventory.ini",
			src:  "[zeta]\nh1\n[zeta:vars]\nv=zeta\n[region:children]\nalpha\n[alpha]\nh1\n[alpha:vars]\nv=alpha\n",
			host: "h1", key: "v", want: "alpha",
		},
		{
			name: "same depth: later name wins",
			file: "inventory.ini",
			src:  "[beta]\nh1\n[beta:vars]\nv=beta\n[alpha]\nh1\n[alpha:vars]\nv=alpha\n",
			host: "h1", key: "v", want: "beta",
		},
		{
			name: "same depth: higher ansible_group_priority wins",
			file: "inventory.ini",
			src:  "[beta]\nh1\n[beta:vars]\nv=beta\n[alpha]\nh1\n[alpha:vars]\nv=alpha\nansible_group_priority=5\n",
			host: "h1", key: "v", want: "alpha",
		},
		{
			name: "a host-level Ansible name beats a group-level orch name",
			file: "inventory.ini",
			src:  "[web]\nh1 ansible_user=alice\n[web:vars]\nssh_user=bob\n",
			host: "h1", field: func(h *Host) any { return h.User }, want: "alice",
		},
		{
			name: "within one level the orch name wins",
			file: "inventory.ini",
			src:  "h1 ansible_user=alice ssh_user=bob ansible_ssh_user=carol\n",
			host: "h1", field: func(h *Host) any { return h.User }, want: "bob",
		},
		{
			name: "a bad port that the host overrides is harmless",
			file: "inventory.ini",
			src:  "[web]\nh1 ansible_port=22\n[web:vars]\nansible_port=bad\n",
			host: "h1", field: func(h *Host) any { return h.Port }, want: 22,
		},
		{
			name: "Starlark arguments beat vars",
			file: "inventory.star",
			src:  `group("all", vars = {"ssh_host": "10.0.0.1", "ssh_port": 22})` + "\n" + `host("h1", address = "10.0.0.2", vars = {"ssh_port": 2200})`,
			host: "h1", field: func(h *Host) any { return fmt.Sprint(h.Address, ":", h.Port) }, want: "10.0.0.2:2200",
		},
		{
			name: "group vars in orch YAML",
			file: "inventory.yaml",
			src:  "groups:\n  all: {vars: {v: all}}\n  web: {hosts: [h1], vars: {v: web}}\n",
			host: "h1", key: "v", want: "web",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := mustParse(t, tt.file, tt.src)
			h := mustHost(t, inv, tt.host)
			var got any
			if tt.field != nil {
				got = tt.field(h)
			} else {
				got = h.Vars[tt.key]
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v (host %+v)", got, tt.want, h)
			}
		})
	}
}

func TestAddRemove(t *testing.T) {
	inv := mustLoad(t, "testdata/lab.star")
	next := &Host{
		Name:    "ns1-next",
		Address: "203.0.113.5",
		Groups:  []string{"dns"},
		Vars:    map[string]any{"bind_role": "primary", "linode_id": 42},
	}
	if err := inv.Add(next); err != nil {
		t.Fatal(err)
	}
	// Add resolves the caller's host in place: inherited groups, vars and fields.
	want := Host{
		Name: "ns1-next", Address: "203.0.113.5", User: "root", Connection: "docker",
		Groups: []string{"dns", "lab"},
		Vars: map[string]any{
			"ssh_user": "root", "connection": "docker", "zone": "example.test",
			"named_conf": "/etc/bind/named.conf", "bind_role": "primary", "linode_id": 42,
		},
	}
	if !reflect.DeepEqual(*next, want) {
		t.Errorf("added host = %+v\nwant %+v", *next, want)
	}
	if h, _ := inv.Host("ns1-next"); h != next {
		t.Error("Host() does not return the added host")
	}
	if got, _ := inv.Match("dns"); !slices.Equal(names(got), []string{"ns1", "ns2", "ns1-next"}) {
		t.Errorf("dns = %v", names(got))
	}

	// A new group is created on the fly.
	if err := inv.Add(&Host{Name: "web1", Groups: []string{"web"}, Connection: "smart"}); err != nil {
		t.Fatal(err)
	}
	if got, err := inv.Match("web"); err != nil || !slices.Equal(names(got), []string{"web1"}) {
		t.Errorf("web = %v, %v", names(got), err)
	}
	if h, _ := inv.Host("web1"); h.Connection != "ssh" {
		t.Errorf("web1 connection = %q", h.Connection)
	}

	// Replacing keeps the position and takes only the new groups.
	if err := inv.Add(&Host{Name: "ns1", Address: "198.51.100.1"}); err != nil {
		t.Fatal(err)
	}
	if got := names(inv.Hosts()); !slices.Equal(got, []string{"ns1", "ns2", "lb1", "lb2", "controller", "ns1-next", "web1"}) {
		t.Errorf("hosts = %v", got)
	}
	if got, _ := inv.Match("dns"); !slices.Equal(names(got), []string{"ns2", "ns1-next"}) {
		t.Errorf("dns after replacing ns1 = %v", names(got))
	}

	// A bad host is refused and leaves the inventory alone.
	for _, bad := range []struct {
		h    *Host
		want string
	}{
		{&Host{Name: "x", Connection: "winrm"}, `host "x": unknown connection "winrm"`},
		{&Host{Name: "x", Port: 70000}, `host "x": port 70000 out of range 1-65535`},
		{&Host{Name: "x", Vars: map[string]any{"ssh_port": "ssh"}}, `host "x": ssh_port: "ssh" is not a port number`},
		{&Host{Name: ""}, `host name is empty`},
		{&Host{Name: "a b"}, `host name "a b" contains a space or comma`},
	} {
		err := inv.Add(bad.h)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Add(%+v) error = %v, want %q", bad.h, err, bad.want)
		}
	}
	if _, ok := inv.Host("x"); ok {
		t.Error("a refused host was added")
	}

	if !inv.Remove("ns2") || inv.Remove("ns2") {
		t.Error("Remove should report true once, then false")
	}
	if got, _ := inv.Match("dns"); !slices.Equal(names(got), []string{"ns1-next"}) {
		t.Errorf("dns after Remove = %v", names(got))
	}
	if _, err := inv.Match("ns2"); err == nil {
		t.Error("a removed host still matches")
	}
}

func TestMerge(t *testing.T) {
	a := mustParse(t, "a.ini", "[web]\nw1 x=1 keep=a\n[web:vars]\nv=a\n")
	b := mustParse(t, "b.yml", `
hosts:
  w1: {vars: {x: 2}, port: 2200}
  w2: {groups: [web]}
  d1: {groups: [db]}
groups:
  web: {vars: {v: b}}
`)
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if got := names(a.Hosts()); !slices.Equal(got, []string{"w1", "w2", "d1"}) {
		t.Errorf("hosts = %v", got)
	}
	w1 := mustHost(t, a, "w1")
	if !reflect.DeepEqual(w1.Vars, map[string]any{"x": 2, "keep": "a", "v": "b"}) || w1.Port != 2200 {
		t.Errorf("w1 = %+v", w1)
	}
	if got, _ := a.Match("web"); !slices.Equal(names(got), []string{"w1", "w2"}) {
		t.Errorf("web = %v", names(got))
	}
	if got, _ := b.Match("all"); len(got) != 3 {
		t.Errorf("Merge changed its argument: %v", names(got))
	}
	if err := a.Merge(a); err != nil {
		t.Errorf("self-merge: %v", err)
	}

	// A loop across files is refused and leaves the receiver unchanged.
	c := mustParse(t, "c.ini", "[x:children]\ny\n[y]\nh\n")
	d := mustParse(t, "d.ini", "[y:children]\nx\n[x]\n")
	before := names(c.Hosts())
	if err := c.Merge(d); err == nil || !strings.Contains(err.Error(), "is its own descendant") {
		t.Errorf("loop: error = %v", err)
	}
	if got, err := c.Match("x"); err != nil || !slices.Equal(names(got), before) {
		t.Errorf("after failed merge: x = %v, %v", names(got), err)
	}
}

func TestGroups(t *testing.T) {
	inv := mustLoad(t, "testdata/lab.yml")
	want := map[string][]string{
		"all":       {"ns1", "ns2", "lb1", "lb2", "controller"},
		"ungrouped": {"controller"},
		"dns":       {"ns1", "ns2"},
		"lb":        {"lb1", "lb2"},
		"lab":       {"ns1", "ns2", "lb1", "lb2"},
	}
	if got := inv.Groups(); !reflect.DeepEqual(got, want) {
		t.Errorf("Groups() = %v\nwant %v", got, want)
	}
	if got := inv.GroupVars("all"); !reflect.DeepEqual(got, map[string]any{"ssh_user": "root", "connection": "docker", "zone": "example.test"}) {
		t.Errorf("GroupVars(all) = %v", got)
	}
	if got := inv.GroupVars("lab"); got == nil || len(got) != 0 {
		t.Errorf("GroupVars(lab) = %#v, want an empty map", got)
	}
	if got := inv.GroupVars("nosuch"); got != nil {
		t.Errorf("GroupVars(nosuch) = %v, want nil", got)
	}
	// Own vars only: dns's vars do not include all's.
	if got := mustLoad(t, "testdata/lab.star").GroupVars("dns"); !reflect.DeepEqual(got, map[string]any{"named_conf": "/etc/bind/named.conf"}) {
		t.Errorf("GroupVars(dns) = %v", got)
	}
	empty := New()
	if got := empty.Groups(); !reflect.DeepEqual(got, map[string][]string{"all": {}, "ungrouped": {}}) {
		t.Errorf("empty Groups() = %v", got)
	}
	if hosts, err := empty.Match("all"); err != nil || len(hosts) != 0 {
		t.Errorf("empty Match(all) = %v, %v", hosts, err)
	}
}

// Roles read the inventory while cloud calls add hosts; run with -race.
func TestConcurrentUse(t *testing.T) {
	inv := mustLoad(t, "testdata/lab.star")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 50 {
				name := fmt.Sprintf("cloud-%d-%d", i, j)
				if err := inv.Add(&Host{Name: name, Groups: []string{"dns"}}); err != nil {
					t.Error(err)
					return
				}
				if j%2 == 0 {
					inv.Remove(name)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := inv.Match("dns:!ns1"); err != nil {
					t.Error(err)
					return
				}
				for _, h := range inv.Hosts() {
					_ = h.Vars["zone"]
				}
				_ = inv.Groups()
			}
		}()
	}
	wg.Wait()
	if got, _ := inv.Match("dns"); len(got) != 2+4*25 {
		t.Errorf("dns has %d hosts, want %d", len(got), 2+4*25)
	}
}
