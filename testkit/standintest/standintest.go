// Package standintest starts a lab/standin FreeBSD stand-in host for a
// test, on a docker network of the test's own, with an SSH client key, a
// pinned host key and an inventory that reaches it as root over SSH: what
// the live tests of the FreeBSD modules and plans run against. A missing
// Docker engine or /dev/fuse goes through testkit/require.
package standintest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab/standin"
	"github.com/orch-dev/orch/testkit/require"
)

// Host is a running stand-in host and how to reach it.
type Host struct {
	*standin.Host
	Inventory     *inventory.Inventory // the host, in group "freebsd", as root with Key
	InventoryFile string               // the same as an Ansible INI file
	KnownHosts    string               // a known_hosts file with its host key
	Key           string               // the client's private key file
	Network       string
}

// Start boots a stand-in host named NAME (prefixed with prefix, which
// should name the caller's branch or package, and the process ID) and
// removes it and its network when t ends.
func Start(t *testing.T, prefix, name string) *Host {
	t.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		require.Missing(t, "standin: no Docker engine (docker info failed)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		require.Missing(t, "standin: /dev/fuse is missing: zfs-fuse cannot run in the stand-in host")
	}
	base := fmt.Sprintf("orch-%s-%d", prefix, os.Getpid())
	network, subnet := makeNetwork(t, base+"-"+name)

	dir := t.TempDir()
	_, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	client, _ := ssh.NewSignerFromKey(clientPriv)
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	hostPub, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostBlock, err := ssh.MarshalPrivateKey(hostPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	hostPK, _ := ssh.NewPublicKey(hostPub)

	b := subnet.Addr().As4()
	b[3] = 10
	address := netip.AddrFrom4(b).String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // the first start builds the image
	defer cancel()
	h, err := standin.Start(ctx, standin.Options{
		Name:           base + "-" + name,
		Hostname:       name,
		Network:        network,
		Address:        address,
		AuthorizedKeys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(client.PublicKey())))},
		HostKey:        pem.EncodeToMemory(hostBlock),
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

	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte(h.Address+" "+string(ssh.MarshalAuthorizedKey(hostPK))), 0o600); err != nil {
		t.Fatal(err)
	}
	ini := filepath.Join(dir, "inventory.ini")
	if err := os.WriteFile(ini, []byte(fmt.Sprintf("[freebsd]\n%s ansible_host=%s ansible_user=root ansible_ssh_private_key_file=%s\n", name, h.Address, key)), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := inventory.New()
	if err := inv.Add(&inventory.Host{Name: name, Address: h.Address, User: "root", Key: key, Groups: []string{"freebsd"}}); err != nil {
		t.Fatal(err)
	}
	return &Host{Host: h, Inventory: inv, InventoryFile: ini, KnownHosts: known, Key: key, Network: network}
}

// Must runs script on the host as root, outside orch (through docker
// exec), and fails the test unless it exits 0.
func (h *Host) Must(t *testing.T, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := h.Exec(ctx, script)
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", script, res.ExitCode, res.Stdout, res.Stderr)
	}
	return string(res.Stdout)
}

// makeNetwork creates a bridge network on a free /24 of 172.31.0.0/16 and
// removes it when t ends.
func makeNetwork(t *testing.T, name string) (string, netip.Prefix) {
	t.Helper()
	for third := 100; third < 250; third++ {
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 31, byte(third), 0}), 24)
		out, err := exec.Command("docker", "network", "create", "--driver", "bridge", "--subnet", subnet.String(), name).CombinedOutput()
		if err != nil && strings.Contains(strings.ToLower(string(out)), "overlap") {
			continue
		}
		if err != nil {
			t.Fatalf("docker network create %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() { exec.Command("docker", "network", "rm", name).Run() })
		return name, subnet
	}
	t.Fatal("no free /24 in 172.31.100.0-172.31.249.0")
	return "", netip.Prefix{}
}
