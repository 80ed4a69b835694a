package lab

import (
	"fmt"
	"net/netip"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/orch-dev/orch/internal/nginxconf"
)

// The default topology: two name servers behind two nginx DNS load
// balancers, as in the seven-step DNS swap, and a stand-in FreeBSD host,
// bsd1 (group freebsd, freebsdhost.go), for the jail blue/green flow.
//
// The name servers, ns1 and ns2, are instances of the lab cloud's Linode
// API, tagged dns, which Up creates once, the first time the lab starts;
// from then on they are the cloud's, for plans to list, delete, create and
// rename like any Linode. The load balancers, lb1 and lb2, are plain lab
// hosts with fixed addresses. Public names of the service, ns1.example.test
// and ns2.example.test, point at the load balancers, which is what clients
// query; the servers behind them may change.
//
// Addresses in the lab's /24: .1 the gateway (this machine), .5 the apt
// proxy, low fixed addresses for the default hosts (.20 and .21 the load
// balancers, .30 bsd1, .31-.39 free for bsd1's jails), .128-.191 for cloud
// machines (each keeps its address for life, restarts included), and
// reserved IPs at the top, outside both.
const (
	Zone       = "example.test"
	ProbeName  = "www.example.test"
	ProbeValue = "192.0.2.80"

	// UpstreamPath is the file on each load balancer that holds the
	// `upstream dns` block, included from nginx.conf's stream block, so
	// that a plan's nginx.upstream rewrites the servers and nothing else.
	UpstreamPath = "/etc/nginx/stream.d/dns-upstream.conf"
	// DNSTag tags the name server instances in the lab cloud.
	DNSTag = "dns"

	aptOctet      = 5
	dynamicFirst  = 128 // cloud machines: .128-.191
	dynamicCount  = 64
	dynamicBits   = 26
	reservedFirst = 240 // .240-.247
	reservedCount = 8
)

// nameServers are created through the lab cloud on the lab's first start.
var nameServers = []string{"ns1", "ns2"}

type defaultHost struct {
	name    string
	groups  []string
	octet   int  // last octet of its fixed address
	standin bool // a stand-in FreeBSD host (freebsdhost.go), not a lab container
}

// topology lists the lab's plain hosts.
var topology = []defaultHost{
	{name: "lb1", groups: []string{"lb"}, octet: 20},
	{name: "lb2", groups: []string{"lb"}, octet: 21},
	{name: FreeBSDHost, groups: []string{"freebsd"}, octet: 30, standin: true},
}

// hostAddr returns the address with the given last octet in a /24.
func hostAddr(subnet netip.Prefix, octet int) netip.Addr {
	a := subnet.Masked().Addr().As4()
	a[3] = byte(octet)
	return netip.AddrFrom4(a)
}

// lbAddrs are the load balancers' addresses, the service's public ones.
func lbAddrs(subnet netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, h := range topology {
		if !slices.Contains(h.groups, "lb") {
			continue
		}
		out = append(out, hostAddr(subnet, h.octet))
	}
	return out
}

// lbSeed is what a load balancer runs: nginx proxying UDP and TCP port 53
// to the name servers.
func lbSeed(nameServers []netip.Addr) *seed {
	return &seed{
		files: []seedFile{
			{path: "/etc/nginx/nginx.conf", mode: 0o644, data: []byte(nginxConf)},
			{path: UpstreamPath, mode: 0o644, data: []byte(upstreamConf(nameServers))},
		},
		services: []string{"nginx"},
	}
}

// nameServerUserData is the cloud-init user data a name server instance is
// created with: BIND serving the zone, enabled at boot, and the host key the
// lab keeps for that name (so a re-created lab keeps its known_hosts lines).
func nameServerUserData(subnet netip.Prefix, hostKey, hostPub string) ([]byte, error) {
	type file struct {
		Path        string `yaml:"path"`
		Content     string `yaml:"content"`
		Permissions string `yaml:"permissions"`
	}
	cc := struct {
		WriteFiles []file            `yaml:"write_files"`
		RunCmd     [][]string        `yaml:"runcmd"`
		SSHKeys    map[string]string `yaml:"ssh_keys"`
	}{
		WriteFiles: []file{
			{Path: "/etc/bind/named.conf.local", Content: namedConfLocal, Permissions: "0644"},
			{Path: "/etc/bind/db." + Zone, Content: zoneFile(lbAddrs(subnet)), Permissions: "0644"},
		},
		RunCmd:  [][]string{{"update-rc.d", "named", "enable"}},
		SSHKeys: map[string]string{"ed25519_private": hostKey, "ed25519_public": hostPub},
	}
	data, err := yaml.Marshal(cc)
	if err != nil {
		return nil, err
	}
	return append([]byte("#cloud-config\n"), data...), nil
}

const namedConfLocal = `// orch lab: the zone every name server serves.
zone "` + Zone + `" {
	type primary;
	file "/etc/bind/db.` + Zone + `";
};
`

// zoneFile is the lab zone. Its name servers' names point at the load
// balancers, which answer for whichever servers are behind them.
func zoneFile(lbs []netip.Addr) string {
	return fmt.Sprintf(`$TTL 60
@	IN SOA	ns1.%[1]s. hostmaster.%[1]s. ( 1 3600 600 86400 60 )
	IN NS	ns1.%[1]s.
	IN NS	ns2.%[1]s.
ns1	IN A	%[2]s
ns2	IN A	%[3]s
www	IN A	%[4]s
`, Zone, lbs[0], lbs[1], ProbeValue)
}

// nginxConf is a load balancer's config: a UDP and TCP stream proxy on port
// 53 in front of the name servers of UpstreamPath, and nothing else.
var nginxConf = `# orch lab: DNS load balancer.
user www-data;
worker_processes 1;
pid /run/nginx.pid;
include /etc/nginx/modules-enabled/*.conf;

events {
	worker_connections 512;
}

stream {
	# upstream dns { ... }: the name servers.
	include ` + UpstreamPath + `;
` + StreamServers("53") + `}
`

// StreamServers are the stream block's proxies of the DNS load balancer:
// UDP and TCP on listen ("53", "127.0.0.1:5353") to upstream dns, set up
// for the graceful reloads of nginx.upstream:
//   - no reuseport: every worker generation reads the one UDP socket the
//     master opened, so datagrams queued on it when a reload starts are
//     read by the new workers; with reuseport each worker has a socket of
//     its own, and what is queued on an old worker's is lost when it
//     closes it;
//   - proxy_responses 1: an answer ends its UDP session at once, so an old
//     worker exits as soon as its answers are out; without it a session
//     lasts proxy_timeout after its answer, and old workers with it;
//   - proxy_timeout 2s: bounds a session whose answer never comes;
//   - TCP connections stay with their worker until they close, so the
//     TCP proxy needs nothing more.
//
// What no directive changes: a worker that shuts down drops the UDP
// sessions it has in flight ("disconnected on shutdown", by design in
// ngx_stream_proxy_module.c: its copy of the socket is closed), so a query
// whose answer was on its way at that instant gets none; a resolver sends
// it again (stub resolvers do, check.dns after a second) and a new worker
// answers. The nginx module's test runs this block in front of two real
// BIND servers with resolvers over UDP and TCP across ten upstream
// switches: 0 failed queries; nginx dropped 2 to 4 sessions a run, each
// answered on its resend.
func StreamServers(listen string) string {
	return `
	server {
		listen ` + listen + ` udp;
		proxy_pass dns;
		proxy_responses 1;
		proxy_timeout 2s;
	}

	server {
		listen ` + listen + `;
		proxy_pass dns;
	}
`
}

// upstreamConf is UpstreamPath's content, as nginx.upstream renders it, so
// that a plan restoring the first servers writes the file back byte for byte.
func upstreamConf(servers []netip.Addr) string {
	var lines []string
	for _, s := range servers {
		lines = append(lines, s.String()+":53")
	}
	return string(nginxconf.Upstream("dns", lines, true))
}
