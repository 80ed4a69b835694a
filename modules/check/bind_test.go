package check

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/orch-dev/orch/testkit/proctest"
	"github.com/orch-dev/orch/testkit/require"
)

// bind is a real BIND (named) serving one zone, example.test, on a high
// port of 127.0.0.1, for the life of a test.
type bind struct {
	t      *testing.T
	addr   string // 127.0.0.1:PORT
	dir    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when named exits
	serial int
	log    *proctest.Output
}

const namedPath = "/usr/sbin/named"

// startBind starts named with records (zone-file lines below the SOA and
// NS, names relative to example.test) and waits until it answers.
func startBind(t *testing.T, records string) *bind {
	t.Helper()
	if _, err := os.Stat(namedPath); err != nil {
		require.Missing(t, "BIND is not installed (apt-get install bind9): "+err.Error())
	}
	b := &bind{t: t, dir: t.TempDir(), addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))), log: new(proctest.Output), exited: make(chan struct{})}
	_, port, _ := net.SplitHostPort(b.addr)
	conf := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	lock-file "%[1]s/named.lock";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	listen-on port %[2]s { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
};
controls { };
zone "example.test" { type primary; file "%[1]s/example.test.zone"; };
`, b.dir, port)
	if err := os.WriteFile(filepath.Join(b.dir, "named.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b.writeZone(records)
	b.cmd = exec.Command(namedPath, "-g", "-4", "-n", "1", "-c", filepath.Join(b.dir, "named.conf"))
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting named: %v", err)
	}
	go func() {
		b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.exited
	})
	b.waitSerial()
	return b
}

// freePort returns a port that is free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func (b *bind) writeZone(records string) {
	b.serial++
	zone := fmt.Sprintf(`$TTL 60
$ORIGIN example.test.
@ IN SOA ns1 hostmaster %d 3600 600 86400 60
@ IN NS ns1
ns1 IN A 127.0.0.1
%s
`, b.serial, records)
	if err := os.WriteFile(filepath.Join(b.dir, "example.test.zone"), []byte(zone), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// setRecords replaces the zone's records, reloads named (SIGHUP) and waits
// until it serves the new serial.
func (b *bind) setRecords(records string) {
	b.t.Helper()
	b.writeZone(records)
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		b.t.Fatal(err)
	}
	b.waitSerial()
}

// waitSerial waits until named answers with the zone's current serial. It
// is a readiness wait, bounded so a broken named fails the test.
func (b *bind) waitSerial() {
	b.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeSOA)
	cl := &dns.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, _, err := cl.Exchange(m, b.addr)
		if err == nil && len(r.Answer) == 1 {
			if soa, ok := r.Answer[0].(*dns.SOA); ok && int(soa.Serial) == b.serial {
				return
			}
		}
		select {
		case <-b.exited:
			b.t.Fatalf("named exited:\n%s", strings.TrimSpace(b.log.String()))
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("named did not serve serial %d (last error %v):\n%s", b.serial, err, strings.TrimSpace(b.log.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
