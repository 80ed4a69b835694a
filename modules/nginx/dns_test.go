package nginx

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/orch-dev/orch/lab"
	"github.com/orch-dev/orch/testkit/localrun"
	"github.com/orch-dev/orch/testkit/proctest"
	"github.com/orch-dev/orch/testkit/require"
	"github.com/orch-dev/orch/testkit/traffic"
)

// startBind starts a real named serving example.test on a loopback port,
// with www A 192.0.2.80 and which TXT NAME, so answers tell who served.
func startBind(t *testing.T, name string) string {
	t.Helper()
	const named = "/usr/sbin/named"
	if _, err := os.Stat(named); err != nil {
		require.Missing(t, "BIND is not installed (apt-get install bind9)")
	}
	dir := t.TempDir()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf(`options {
	directory "%[1]s"; pid-file "%[1]s/named.pid"; lock-file "%[1]s/named.lock";
	session-keyfile "%[1]s/session.key"; managed-keys-directory "%[1]s";
	listen-on port %[2]s { 127.0.0.1; }; listen-on-v6 { none; };
	recursion no; dnssec-validation no;
};
controls { };
zone "example.test" { type primary; file "%[1]s/zone"; };
`, dir, port)
	zone := fmt.Sprintf("$TTL 60\n$ORIGIN example.test.\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A %s\nwhich IN TXT %q\n", lab.ProbeValue, name)
	os.WriteFile(filepath.Join(dir, "named.conf"), []byte(conf), 0o644)
	os.WriteFile(filepath.Join(dir, "zone"), []byte(zone), 0o644)
	log := new(proctest.Output)
	cmd := exec.Command(named, "-g", "-4", "-n", "1", "-c", filepath.Join(dir, "named.conf"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	traffic.WaitFor(t, "named on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("named exited:\n%s", log.String())
		default:
		}
		_, err := which("udp", addr)
		return err == nil
	})
	return addr
}

// resends counts the UDP queries sent again after a second without an
// answer.
var resends atomic.Int64

// which asks who serves (which.example.test TXT), as check.dns asks: over
// UDP, sent once more after a second without an answer, as stub resolvers
// resend, within 2 seconds in all; no other retry, so a query that gets
// no answer in that time is a failed query.
func which(network, addr string) (string, error) {
	cl := &dns.Client{Net: network, Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("which."+lab.Zone+".", dns.TypeTXT)
	var r *dns.Msg
	var err error
	if network == "udp" {
		cl.Timeout = time.Second
		r, _, err = cl.Exchange(m, addr)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			resends.Add(1)
			r, _, err = cl.Exchange(m, addr)
		}
	} else {
		r, _, err = cl.Exchange(m, addr)
	}
	if err != nil {
		return "", err
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return "", fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	txt, ok := r.Answer[0].(*dns.TXT)
	if !ok || len(txt.Txt) != 1 {
		return "", fmt.Errorf("unexpected answer %v", r.Answer[0])
	}
	return txt.Txt[0], nil
}

// TestDNSStreamSwitchesLoseNoQuery runs the lab's load balancer stream
// block (lab.StreamServers) in a real nginx in front of two real BIND
// servers, with resolvers querying over UDP and TCP without pause, and
// switches the upstream between the two servers again and again with
// nginx.upstream and its graceful reload. Not one query may fail.
func TestDNSStreamSwitchesLoseNoQuery(t *testing.T) {
	a, b := startBind(t, "a"), startBind(t, "b")
	port := freePort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	s := startNginx(t, map[string]string{
		"nginx.conf": `include /etc/nginx/modules-enabled/*.conf;
pid DIR/nginx.pid;
error_log DIR/error.log info;
worker_processes 2;
events { worker_connections 512; }
stream {
	include DIR/stream.d/dns.conf;
` + lab.StreamServers(listen) + `}
`,
		"stream.d/dns.conf": "upstream dns {\n\tserver " + a + ";\n}\n",
	})
	resends.Store(0)
	udp := traffic.Start(t, 3, func() (string, error) { return which("udp", listen) })
	tcp := traffic.Start(t, 2, func() (string, error) { return which("tcp", listen) })
	traffic.WaitFor(t, "answers from a", func() bool { return udp.Count("a") > 20 && tcp.Count("a") > 5 })

	const switches = 10
	for i := range switches {
		to, name := b, "b"
		if i%2 == 1 {
			to, name = a, "a"
		}
		src := fmt.Sprintf(`
def role(h):
    nginx.upstream(name = "dns", servers = [%q], stream = True, path = %q, conf = %q)

def main(ctx):
    ctx.apply("all", role)
`, to, s.dir+"/stream.d/dns.conf", s.conf)
		if sum, events := localrun.MustRun(t, src, false); sum.TasksChanged != 2 {
			t.Fatalf("switch %d: %+v%s", i+1, sum, localrun.Tasks(events))
		}
		nu, nt := udp.Count(name), tcp.Count(name)
		traffic.WaitFor(t, fmt.Sprintf("switch %d: answers from %s", i+1, name), func() bool {
			return udp.Count(name) > nu+20 && tcp.Count(name) > nt+5
		})
	}
	udp.Stop()
	tcp.Stop()
	dropped := strings.Count(s.read("error.log"), "disconnected on shutdown")
	t.Logf("nginx dropped %d UDP sessions in flight on old workers; the resolvers sent %d queries again", dropped, resends.Load())
	t.Logf("%d switches: %d UDP queries (%v), %d TCP queries (%v)", switches, udp.Sent(), udp.Seen(), tcp.Sent(), tcp.Seen())
	if f := udp.Failed() + tcp.Failed(); f != 0 {
		t.Fatalf("%d UDP and %d TCP queries failed across the switches; last: %s / %s", udp.Failed(), tcp.Failed(), udp.LastError(), tcp.LastError())
	}
}
