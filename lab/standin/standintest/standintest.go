// Package standintest starts stand-in FreeBSD hosts (lab/standin) for the
// tests of other packages: each on a docker network of its own, reached
// over SSH as root with a key and a pinned host key, removed with its
// network when the test ends. Only tests import it.
package standintest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/lab/internal/dockercli"
	"github.com/orch-dev/orch/lab/standin"
	"github.com/orch-dev/orch/testkit/require"
)

// Label marks the docker objects of these tests, with the test's prefix.
const Label = "dev.orch.standintest"

// Host is a running stand-in host for one test.
type Host struct {
	*standin.Host
	Subnet     netip.Prefix
	KeyFile    string // root's private key, for the inventory's ssh_key
	KnownHosts string // a known_hosts file that pins its host key

	t      testing.TB
	client ssh.Signer
	hostPK ssh.PublicKey
}

// Start boots a stand-in host on a fresh docker network. prefix names its
// docker objects (a branch or package name, so that concurrent test runs
// never collide); the process ID is added. A missing Docker or /dev/fuse
// goes through testkit/require.
func Start(t testing.TB, prefix string) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // the first run builds the image
	defer cancel()
	if err := dockercli.Available(ctx); err != nil {
		require.Missing(t, "standin: "+err.Error())
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		require.Missing(t, "standin: /dev/fuse is missing: zfs-fuse cannot run in the stand-in host")
	}
	name := fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(name) > 60 {
		name = name[:60]
	}
	network, subnet, err := makeNetwork(ctx, name, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dockercli.Run(context.Background(), nil, "network", "rm", network) })

	dir := t.TempDir()
	_, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	client, _ := ssh.NewSignerFromKey(clientPriv)
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	hostPub, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostBlock, err := ssh.MarshalPrivateKey(hostPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	hostPK, _ := ssh.NewPublicKey(hostPub)
	address := Addr(subnet, 10)
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(address+" "+string(ssh.MarshalAuthorizedKey(hostPK))), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := standin.Start(ctx, standin.Options{
		Name:           name + "-bsd",
		Hostname:       "bsd1",
		Network:        network,
		Address:        address,
		AuthorizedKeys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(client.PublicKey())))},
		HostKey:        pem.EncodeToMemory(hostBlock),
		Labels:         map[string]string{Label: prefix},
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
	return &Host{Host: h, Subnet: subnet, KeyFile: keyFile, KnownHosts: knownHosts, t: t, client: client, hostPK: hostPK}
}

// makeNetwork creates a bridge network on a free /24 of 172.30.0.0/16.
func makeNetwork(ctx context.Context, name, prefix string) (string, netip.Prefix, error) {
	for third := 10; third < 250; third++ {
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 30, byte(third), 0}), 24)
		_, err := dockercli.Run(ctx, nil, "network", "create", "--driver", "bridge", "--subnet", subnet.String(),
			"--label", Label+"="+prefix, name)
		if err != nil && strings.Contains(strings.ToLower(err.Error()), "overlap") {
			continue
		}
		if err != nil {
			return "", netip.Prefix{}, err
		}
		return name, subnet, nil
	}
	return "", netip.Prefix{}, errors.New("standintest: no free /24 in 172.30.10.0-172.30.249.0")
}

// Addr is the address of host number n on subnet.
func Addr(subnet netip.Prefix, n int) string {
	b := subnet.Addr().As4()
	b[3] = byte(n)
	return netip.AddrFrom4(b).String()
}

// With returns h reporting to t (a subtest).
func (h *Host) With(t testing.TB) *Host {
	c := *h
	c.t = t
	return &c
}

// SSH runs cmd on the host over SSH as root, checking its pinned host key,
// and returns its combined output.
func (h *Host) SSH(cmd string) (string, error) {
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

// Must runs script on the host as root through docker exec and returns its
// standard output; it fails the test unless the script exits 0.
func (h *Host) Must(script string) string {
	h.t.Helper()
	out, code, stderr := h.Run(script)
	if code != 0 {
		h.t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", script, code, out, stderr)
	}
	return out
}

// Run runs script on the host as root through docker exec.
func (h *Host) Run(script string) (stdout string, exit int, stderr string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := h.Exec(ctx, script)
	if err != nil {
		h.t.Fatalf("%s: %v", script, err)
	}
	return string(res.Stdout), res.ExitCode, string(res.Stderr)
}

// Template makes a jail template dataset from the host's base.txz, as a
// FreeBSD host does from its distribution set, and returns its snapshot.
func (h *Host) Template() string {
	h.t.Helper()
	h.Must(`set -e
zfs create -o mountpoint=/jails zroot/jails
zfs create -p zroot/jails/templates/base
tar -xJf /usr/freebsd-dist/base.txz -C /jails/templates/base
zfs snapshot zroot/jails/templates/base@v1`)
	return "zroot/jails/templates/base@v1"
}

// Jail clones the template into zroot/jails/NAME (mounted at /jails/NAME)
// and returns that path.
func (h *Host) Jail(name, snapshot string) string {
	h.t.Helper()
	h.Must(fmt.Sprintf("zfs clone %s zroot/jails/%s", snapshot, name))
	return "/jails/" + name
}
