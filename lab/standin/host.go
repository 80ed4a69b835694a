package standin

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/engine/conn/dockerconn"
	"github.com/orch-dev/orch/internal/freebsd"
	"github.com/orch-dev/orch/lab/internal/dockercli"
)

// Options describe a stand-in host.
type Options struct {
	Name           string            // the container's name; also the hostname unless Hostname is set
	Hostname       string            // rc.conf's hostname
	Network        string            // the docker network it joins (required)
	Address        string            // its IPv4 address on Network; "" lets docker choose
	AuthorizedKeys []string          // authorized_keys lines root accepts
	HostKey        []byte            // an OpenSSH private host key; nil makes one at first boot
	Labels         map[string]string // docker labels (the lab's, so that it finds the host)
	Logf           func(format string, args ...any)
}

// Host is a running stand-in FreeBSD host.
type Host struct {
	ID      string // docker container ID
	Name    string // container name
	Address string // IPv4 address on the network
}

// BootWait bounds how long a boot may take (the first one creates the pool).
const BootWait = 3 * time.Minute

// Start creates and boots a stand-in host and returns once its sshd
// answers. On failure nothing is left behind.
func Start(ctx context.Context, opts Options) (*Host, error) {
	if opts.Name == "" || opts.Network == "" {
		return nil, errors.New("standin: a host needs a name and a network")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Hostname == "" {
		opts.Hostname = opts.Name
	}
	seed, err := seedTar(opts)
	if err != nil {
		return nil, fmt.Errorf("standin: %s: %w", opts.Name, err)
	}
	tag, err := Ensure(ctx, opts.Logf)
	if err != nil {
		return nil, err
	}
	args := []string{"create", "--name", opts.Name, "--hostname", opts.Hostname,
		"--network", opts.Network,
		// What zfs-fuse, jails (namespaces, chroot, veth, mounts) and the
		// NIC rename need, short of --privileged.
		"--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--device", "/dev/fuse",
		"--security-opt", "seccomp=unconfined", "--sysctl", "net.ipv4.ip_forward=1",
		// A reboot ends PID 1; the restart policy is what boots it again.
		"--restart", "unless-stopped",
		"--mount", "type=volume,dst=/var/lib/standin"}
	if opts.Address != "" {
		args = append(args, "--ip", opts.Address)
	}
	for k, v := range opts.Labels {
		args = append(args, "--label", k+"="+v)
	}
	args = append(args, tag)
	id, err := dockercli.Run(ctx, nil, args...)
	if err != nil {
		return nil, fmt.Errorf("standin: %s: %w", opts.Name, err)
	}
	h := &Host{ID: id, Name: opts.Name}
	fail := func(err error) (*Host, error) {
		h.Remove(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("standin: %s: %w", opts.Name, err)
	}
	if _, err := dockercli.Run(ctx, bytes.NewReader(seed), "cp", "-", id+":/"); err != nil {
		return fail(err)
	}
	if _, err := dockercli.Run(ctx, nil, "start", id); err != nil {
		return fail(err)
	}
	if h.Address, err = dockercli.Run(ctx, nil, "inspect", "--format",
		`{{with index .NetworkSettings.Networks "`+opts.Network+`"}}{{.IPAddress}}{{end}}`, id); err != nil {
		return fail(err)
	}
	if _, err := h.WaitBoot(ctx, ""); err != nil {
		return fail(err)
	}
	opts.Logf("standin: %s booted at %s", opts.Name, h.Address)
	return h, nil
}

// seedTar holds the files a new host starts with: root's authorized keys,
// the host key and rc.conf.
func seedTar(opts Options) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Typeflag: tar.TypeDir, ModTime: time.Now()})
	}
	rc := fmt.Sprintf("hostname=%q\nsshd_enable=\"YES\"\nzfs_enable=\"YES\"\n", opts.Hostname)
	if err := dir("root/.ssh/", 0o700); err != nil {
		return nil, err
	}
	if err := add("root/.ssh/authorized_keys", 0o600, []byte(strings.Join(opts.AuthorizedKeys, "\n")+"\n")); err != nil {
		return nil, err
	}
	if err := add("etc/rc.conf", 0o644, []byte(rc)); err != nil {
		return nil, err
	}
	if opts.HostKey != nil {
		signer, err := ssh.ParsePrivateKey(opts.HostKey)
		if err != nil {
			return nil, fmt.Errorf("host key: %w", err)
		}
		name := "etc/ssh/ssh_host_" + strings.TrimPrefix(signer.PublicKey().Type(), "ssh-") + "_key"
		if err := add(name, 0o600, opts.HostKey); err != nil {
			return nil, err
		}
		if err := add(name+".pub", 0o644, ssh.MarshalAuthorizedKey(signer.PublicKey())); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Exec runs a script on the host as root, through the Docker Engine API.
func (h *Host) Exec(ctx context.Context, script string) (conn.Result, error) {
	c, err := dockerconn.Dial(ctx, h.ID, dockerconn.Options{Host: dockercli.Host()})
	if err != nil {
		return conn.Result{}, err
	}
	defer c.Close()
	return c.Exec(ctx, script, nil)
}

// BootID returns the host's kern.boot_id in hex.
func (h *Host) BootID(ctx context.Context) (string, error) {
	res, err := h.Exec(ctx, "sysctl -x kern.boot_id")
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("sysctl -x kern.boot_id: exit %d: %s", res.ExitCode, bytes.TrimSpace(res.Stderr))
	}
	return freebsd.ParseBootID(res.Stdout)
}

// WaitBoot waits until the host has booted with a boot ID other than
// previous ("" for any) and its sshd answers, and returns the new boot ID.
// It gives up when the container stops for good, with the end of its
// console log.
func (h *Host) WaitBoot(ctx context.Context, previous string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, BootWait)
	defer cancel()
	for {
		if id, err := h.booted(ctx); err == nil && id != previous {
			return id, nil
		}
		state, _ := dockercli.Run(ctx, nil, "inspect", "--format", "{{.State.Status}} {{.State.Restarting}}", h.ID)
		if strings.HasPrefix(state, "exited false") || strings.HasPrefix(state, "dead") {
			return "", fmt.Errorf("the container stopped while booting:\n%s", h.Console(context.WithoutCancel(ctx), 20))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no boot after boot ID %q: %w\n%s", previous, ctx.Err(), h.Console(context.WithoutCancel(ctx), 20))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// booted returns the boot ID once init has chosen a BE and sshd answers.
func (h *Host) booted(ctx context.Context) (string, error) {
	res, err := h.Exec(ctx, "test -s /var/run/standin/rootfs && cat /var/run/standin/boot_id")
	if err != nil || res.ExitCode != 0 {
		return "", errors.New("not booted")
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(h.Address, "22"))
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	banner := make([]byte, 4)
	if _, err := io.ReadFull(c, banner); err != nil || string(banner) != "SSH-" {
		return "", errors.New("no ssh banner")
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

// Console returns the last lines of the host's console (docker logs).
func (h *Host) Console(ctx context.Context, lines int) string {
	out, _ := dockercli.Run(ctx, nil, "logs", "--tail", fmt.Sprint(lines), h.ID)
	return out
}

// RestartCount is how often Docker has restarted the container: one per
// reboot, two for a boot that panicked and fell back.
func (h *Host) RestartCount(ctx context.Context) (int, error) {
	out, err := dockercli.Run(ctx, nil, "inspect", "--format", "{{.RestartCount}}", h.ID)
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscan(out, &n)
	return n, err
}

// Remove deletes the host's container and its pool volume.
func (h *Host) Remove(ctx context.Context) error {
	if _, err := dockercli.Run(ctx, nil, "rm", "-f", "-v", h.ID); err != nil && !errors.Is(err, dockercli.ErrNoSuchObject) {
		return fmt.Errorf("standin: remove %s: %w", h.Name, err)
	}
	return nil
}
