package standin

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/lab/internal/dockercli"
	"github.com/orch-dev/orch/testkit/require"
)

// Docker objects carry the per-process prefix the lab's tests use, so runs
// of different engineers never collide.
var prefix = fmt.Sprintf("orch-labtest-%d", os.Getpid())

const labelLab = "dev.orch.lab"

var (
	netOnce   sync.Once
	netName   string
	netSubnet netip.Prefix
	netErr    error
	nextHost  = 10 // host addresses: .10, .11, ...
	nextMu    sync.Mutex
)

func TestMain(m *testing.M) {
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// cleanup removes every container and the network this process made.
func cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ids, err := dockercli.Run(ctx, nil, "ps", "-aq", "--filter", "label="+labelLab+"="+prefix); err == nil && ids != "" {
		dockercli.Run(ctx, nil, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
	}
	if netName != "" {
		dockercli.Run(ctx, nil, "network", "rm", netName)
	}
}

// network makes this process's docker network on a free /24.
func network(t *testing.T) (string, netip.Prefix) {
	t.Helper()
	netOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		name := prefix + "-standin"
		for third := 100; third < 250; third++ {
			subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 31, byte(third), 0}), 24)
			_, err := dockercli.Run(ctx, nil, "network", "create", "--driver", "bridge", "--subnet", subnet.String(),
				"--label", labelLab+"="+prefix, name)
			if err != nil && strings.Contains(strings.ToLower(err.Error()), "overlap") {
				continue
			}
			if err == nil {
				netName, netSubnet = name, subnet
			}
			netErr = err
			return
		}
		netErr = errors.New("no free /24 in 172.31.100.0-172.31.249.0")
	})
	if netErr != nil {
		t.Fatal(netErr)
	}
	return netName, netSubnet
}

func addr(subnet netip.Prefix, host int) string {
	b := subnet.Addr().As4()
	b[3] = byte(host)
	return netip.AddrFrom4(b).String()
}

// testHost is a stand-in host for one test, with an SSH client key.
type testHost struct {
	*Host
	t      *testing.T
	subnet netip.Prefix
	client ssh.Signer
	hostPK ssh.PublicKey
}

// startHost boots a fresh stand-in host for t and removes it when t ends.
func startHost(t *testing.T) *testHost {
	t.Helper()
	if err := dockercli.Available(context.Background()); err != nil {
		require.Missing(t, "standin: "+err.Error())
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		require.Missing(t, "standin: /dev/fuse is missing: zfs-fuse cannot run in the stand-in host")
	}
	net, subnet := network(t)
	nextMu.Lock()
	n := nextHost
	nextHost++
	nextMu.Unlock()

	_, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	client, _ := ssh.NewSignerFromKey(clientPriv)
	hostPub, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(hostPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	hostPK, _ := ssh.NewPublicKey(hostPub)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // the first run builds the image
	defer cancel()
	h, err := Start(ctx, Options{
		Name:           fmt.Sprintf("%s-bsd%d", prefix, n),
		Hostname:       fmt.Sprintf("bsd%d", n),
		Network:        net,
		Address:        addr(subnet, n),
		AuthorizedKeys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(client.PublicKey())))},
		HostKey:        pem.EncodeToMemory(block),
		Labels:         map[string]string{labelLab: prefix},
		Logf:           t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console of %s:\n%s", h.Name, h.Console(context.Background(), 40))
		}
		h.Remove(context.Background())
	})
	return &testHost{Host: h, t: t, subnet: subnet, client: client, hostPK: hostPK}
}

// with returns h reporting to t (a subtest).
func (h *testHost) with(t *testing.T) *testHost {
	c := *h
	c.t = t
	return &c
}

// result is a command's outcome on the host.
type result struct {
	stdout, stderr string
	exit           int
}

// run runs script on the host through docker exec.
func (h *testHost) run(script string) result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := h.Exec(ctx, script)
	if err != nil {
		h.t.Fatalf("%s: %v", script, err)
	}
	return result{string(res.Stdout), string(res.Stderr), res.ExitCode}
}

// must runs script and fails the test unless it exits 0.
func (h *testHost) must(script string) string {
	h.t.Helper()
	r := h.run(script)
	if r.exit != 0 {
		h.t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", script, r.exit, r.stdout, r.stderr)
	}
	return r.stdout
}

// ssh runs a command on the host over SSH as root, checking its host key.
func (h *testHost) ssh(cmd string) (string, error) {
	h.t.Helper()
	c, err := ssh.Dial("tcp", h.Address+":22", &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(h.client)},
		HostKeyCallback: ssh.FixedHostKey(h.hostPK),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// template makes the jail template dataset from base.txz, the way a
// FreeBSD host does with its distribution set, and returns its snapshot.
func (h *testHost) template() string {
	h.must(`set -e
zfs create -o mountpoint=/jails zroot/jails
zfs create -p zroot/jails/templates/base
tar -xJf /usr/freebsd-dist/base.txz -C /jails/templates/base
zfs snapshot zroot/jails/templates/base@v1`)
	return "zroot/jails/templates/base@v1"
}
