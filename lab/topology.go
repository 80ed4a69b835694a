package lab

import (
	"fmt"
	"net/netip"
	"strings"
)

// The default topology: two name servers behind two nginx DNS load balancers.
// Default hosts get fixed addresses low in the subnet; docker hands out
// dynamicRange to cloud machines; reserved IPs sit at the top, outside both.
const (
	Zone       = "example.test"
	ProbeName  = "www.example.test"
	ProbeValue = "192.0.2.80"

	dynamicFirst  = 128 // docker hands out .128-.191
	dynamicBits   = 26
	reservedFirst = 240 // .240-.247
	reservedCount = 8
)

type defaultHost struct {
	name   string
	groups []string
	octet  int // last octet of its fixed address
}

var topology = []defaultHost{
	{name: "ns1", groups: []string{"dns"}, octet: 10},
	{name: "ns2", groups: []string{"dns"}, octet: 11},
	{name: "lb1", groups: []string{"lb"}, octet: 20},
	{name: "lb2", groups: []string{"lb"}, octet: 21},
}

// hostAddr returns the address with the given last octet in a /24.
func hostAddr(subnet netip.Prefix, octet int) netip.Addr {
	a := subnet.Masked().Addr().As4()
	a[3] = byte(octet)
	return netip.AddrFrom4(a)
}

// roleSeed is what a default host runs: its files and services.
func roleSeed(h defaultHost, subnet netip.Prefix) *seed {
	ns1, ns2 := hostAddr(subnet, topology[0].octet), hostAddr(subnet, topology[1].octet)
	s := &seed{}
	switch h.groups[0] {
	case "dns":
		s.files = []seedFile{
			{path: "/etc/bind/named.conf.local", mode: 0o644, data: []byte(namedConfLocal)},
			{path: "/etc/bind/db." + Zone, mode: 0o644, data: []byte(zoneFile(ns1, ns2))},
		}
		s.services = []string{"named"}
	case "lb":
		s.files = []seedFile{{path: "/etc/nginx/nginx.conf", mode: 0o644, data: []byte(nginxConf(ns1, ns2))}}
		s.services = []string{"nginx"}
	}
	return s
}

const namedConfLocal = `// orch lab: the zone every name server serves.
zone "` + Zone + `" {
	type primary;
	file "/etc/bind/db.` + Zone + `";
};
`

func zoneFile(ns1, ns2 netip.Addr) string {
	return fmt.Sprintf(`$TTL 60
@	IN SOA	ns1.%[1]s. hostmaster.%[1]s. ( 1 3600 600 86400 60 )
	IN NS	ns1.%[1]s.
	IN NS	ns2.%[1]s.
ns1	IN A	%[2]s
ns2	IN A	%[3]s
www	IN A	%[4]s
`, Zone, ns1, ns2, ProbeValue)
}

// nginxConf is a load balancer's whole config: a UDP and TCP stream proxy on
// port 53 in front of the name servers, and nothing else.
func nginxConf(servers ...netip.Addr) string {
	var up strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&up, "\t\tserver %s:53;\n", s)
	}
	return `# orch lab: DNS load balancer.
user www-data;
worker_processes 1;
pid /run/nginx.pid;
include /etc/nginx/modules-enabled/*.conf;

events {
	worker_connections 512;
}

stream {
	upstream dns {
` + up.String() + `	}

	server {
		listen 53 udp;
		proxy_pass dns;
		proxy_responses 1;
		proxy_timeout 2s;
	}

	server {
		listen 53;
		proxy_pass dns;
	}
}
`
}
