package inventory

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	inv := mustLoad(t, "testdata/ansible/hosts.ini")
	const (
		mail   = "mail.example.com"
		bast   = "bastion.example.com"
		www1   = "www01.example.com"
		www2   = "www02.example.com"
		www3   = "www03.example.com"
		canary = "web-canary.example.com"
		dba    = "db-a.example.com"
		dbb    = "db-b.example.com"
		dbc    = "db-c.example.com"
		backup = "db-backup.example.com"
	)
	tests := []struct {
		pattern string
		want    []string
	}{
		{"all", productionHosts},
		{"*", productionHosts},
		{"webservers", []string{www1, www2, www3, canary}},
		{"usa", []string{www1, www2, www3, dba, dbb, dbc, backup}}, // through nested children
		{"ungrouped", []string{mail, bast}},
		{"mail.example.com", []string{mail}},
		{"www0*", []string{www1, www2, www3}},
		{"db-?.example.com", []string{dba, dbb, dbc}},
		{"web[!s]*", []string{canary}},                                                      // fnmatch set: matches no group, one host
		{"*east", []string{www1, www2, dba, dbb, dbc}},                                      // glob over group names
		{"~db-[ab]\\.", []string{dba, dbb}},                                                 // regex, anchored at the start only
		{"dbservers:webservers", []string{www1, www2, www3, canary, dba, dbb, dbc, backup}}, // inventory order
		{"dbservers,webservers", []string{www1, www2, www3, canary, dba, dbb, dbc, backup}},
		{" atlanta , raleigh ", []string{www1, www2, dba, dbb}},
		{"webservers:!atlanta", []string{www2, www3, canary}},
		{"webservers:&southeast", []string{www1, www2}},
		{"!dbservers:usa:&webservers", []string{www1, www2, www3}}, // order of terms does not matter
		{"!ungrouped", []string{www1, www2, www3, canary, dba, dbb, dbc, backup}},
		{"&dbservers", []string{dba, dbb, dbc, backup}},
		{"webservers:webservers:www01.example.com", []string{www1, www2, www3, canary}}, // deduplicated
		{"dbservers[0]", []string{dba}},
		{"dbservers[-1]", []string{backup}},
		{"dbservers[1:2]", []string{dbb, dbc}}, // inclusive, as in Ansible
		{"dbservers[2:]", []string{dbc, backup}},
		{"dbservers[1:2],webservers[0]", []string{www1, dbb, dbc}},
		{"nosuch*", nil}, // a glob matching nothing is fine
		{"southwest*", nil},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			hosts, err := inv.Match(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			got := names(hosts)
			if len(tt.want) == 0 && len(got) == 0 {
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Match(%q) = %v\nwant %v", tt.pattern, got, tt.want)
			}
		})
	}
}

func TestMatchErrors(t *testing.T) {
	inv := mustLoad(t, "testdata/ansible/hosts.ini")
	tests := []struct {
		pattern, want string
		noMatch       bool
	}{
		{"webserver", `inventory: host pattern "webserver": no host or group by that name (did you mean "webservers"?)`, true},
		{"webservers:!dbserverz", `host pattern "dbserverz": no host or group by that name (did you mean "dbservers"?)`, true},
		{"&atlanat", `host pattern "atlanat": no host or group by that name`, true},
		{"zzzzzzzz", `inventory: host pattern "zzzzzzzz": no host or group by that name`, true},
		{"", `inventory: empty host pattern ""`, false},
		{" , ", `inventory: empty host pattern`, false},
		{"~web(", `inventory: bad regular expression in host pattern "~web("`, false},
		{"dbservers[9]", `inventory: host pattern "dbservers[9]": index out of range (4 hosts)`, false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := inv.Match(tt.pattern)
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
			if got := errors.Is(err, ErrNoMatch); got != tt.noMatch {
				t.Errorf("errors.Is(err, ErrNoMatch) = %v, want %v", got, tt.noMatch)
			}
		})
	}
}

func TestLimit(t *testing.T) {
	inv := mustLoad(t, "testdata/ansible/hosts.ini")
	lim, err := inv.Limit("atlanta:db-c*")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"www01.example.com", "db-a.example.com", "db-c.example.com"}
	if got := names(lim.Hosts()); !slices.Equal(got, want) {
		t.Fatalf("limited hosts = %v, want %v", got, want)
	}
	tests := []struct {
		pattern string
		want    []string
	}{
		{"webservers", []string{"www01.example.com"}},
		{"dbservers", []string{"db-a.example.com", "db-c.example.com"}},
		{"raleigh", nil}, // the group survives with no hosts: no error
		{"all", want},
	}
	for _, tt := range tests {
		hosts, err := lim.Match(tt.pattern)
		if err != nil {
			t.Errorf("limited Match(%q): %v", tt.pattern, err)
			continue
		}
		if got := names(hosts); !slices.Equal(got, tt.want) && (len(got) > 0 || len(tt.want) > 0) {
			t.Errorf("limited Match(%q) = %v, want %v", tt.pattern, got, tt.want)
		}
	}
	// The limited host is the same resolved host, and the original is untouched.
	h1, _ := inv.Host("db-a.example.com")
	h2, _ := lim.Host("db-a.example.com")
	if h1 != h2 {
		t.Error("Limit copied a host")
	}
	if len(inv.Hosts()) != len(productionHosts) {
		t.Errorf("Limit changed the original: %v", names(inv.Hosts()))
	}
	if _, ok := lim.Host("mail.example.com"); ok {
		t.Error("limited inventory still has mail.example.com")
	}
	// Adding to the limited inventory leaves the original alone.
	if err := lim.Add(&Host{Name: "db-d.example.com", Groups: []string{"dbservers"}}); err != nil {
		t.Fatal(err)
	}
	if hosts, _ := inv.Match("dbservers"); len(hosts) != 4 {
		t.Errorf("original dbservers = %v", names(hosts))
	}
	if _, err := inv.Limit("atlnta"); !errors.Is(err, ErrNoMatch) {
		t.Errorf("Limit with a typo: error = %v", err)
	}
}

func TestGlobRegexp(t *testing.T) {
	tests := []struct {
		glob  string
		match []string
		miss  []string
	}{
		{"web*", []string{"web", "web1", "webservers"}, []string{"aweb", "Web1"}},
		{"ns?", []string{"ns1", "nsX"}, []string{"ns", "ns12"}},
		{"db[12]", []string{"db1", "db2"}, []string{"db3", "db12"}},
		{"db[!12]", []string{"db3"}, []string{"db1"}},
		{"db[a-c]x", []string{"dbbx"}, []string{"dbdx"}},
		{"a.b", []string{"a.b"}, []string{"axb"}},
		{"web[", []string{"web["}, []string{"web1"}},
		{"[]]x", []string{"]x"}, []string{"x"}},
	}
	for _, tt := range tests {
		re, err := globRegexp(tt.glob)
		if err != nil {
			t.Fatalf("%s: %v", tt.glob, err)
		}
		for _, s := range tt.match {
			if !re.MatchString(s) {
				t.Errorf("%q should match %q", tt.glob, s)
			}
		}
		for _, s := range tt.miss {
			if re.MatchString(s) {
				t.Errorf("%q should not match %q", tt.glob, s)
			}
		}
	}
}
