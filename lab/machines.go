package lab

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orch-dev/orch/engine/conn/dockerconn"
	"github.com/orch-dev/orch/lab/cloud"
	"github.com/orch-dev/orch/lab/internal/dockercli"
)

// Machines starts and removes lab containers for the lab cloud. It
// implements cloud.Machines. A machine's ID is its docker container ID
// (12 hex digits), which survives renames; its groups are the tags it was
// created with, and it keeps the address it was created with for life, as a
// cloud VM keeps its public address across reboots.
//
// Reserved IPs are extra addresses on the machines' eth0 (containers run
// with NET_ADMIN). Moving one deletes it from the old holder, adds it to the
// new one and sends gratuitous ARP, so neighbours, the host included, switch
// over within a second. Each machine keeps the list of those it holds
// (reservedList), which its init applies again when the container restarts.
type Machines struct {
	lab   *Lab
	mu    sync.Mutex // orders AssignIP calls
	alloc sync.Mutex // held from choosing an address until the container exists
}

var _ cloud.Machines = (*Machines)(nil)

// Machines returns the lab's cloud.Machines implementation.
func (l *Lab) Machines() *Machines {
	l.machinesOnce.Do(func() { l.machines = &Machines{lab: l} })
	return l.machines
}

// machineName is what docker accepts in a container name and a hostname
// allows, as both Linode labels and droplet names do.
var machineName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$`)

// Start creates a machine from the lab image on the lab network, applies
// the spec's user data (see the cloud-init subset in cloudinit.go) and
// returns once its sshd answers. Its host key goes into the lab known_hosts.
func (m *Machines) Start(ctx context.Context, spec cloud.MachineSpec) (cloud.Machine, error) {
	l := m.lab
	if !machineName.MatchString(spec.Name) {
		return cloud.Machine{}, fmt.Errorf("lab: bad machine name %q", spec.Name)
	}
	s, err := parseUserData(spec.UserData)
	if err != nil {
		return cloud.Machine{}, fmt.Errorf("lab: %s: %w", spec.Name, err)
	}
	s.authorizedKeys = append(slices.Clone(spec.SSHKeys), s.authorizedKeys...)

	id, err := m.createCloud(ctx, spec, s)
	if err != nil {
		return cloud.Machine{}, err
	}
	addr, err := m.boot(ctx, id)
	if err != nil {
		dockercli.Run(context.WithoutCancel(ctx), nil, "rm", "-f", id)
		return cloud.Machine{}, fmt.Errorf("lab: %s: %w", spec.Name, err)
	}
	l.refreshInventory(ctx)
	l.logf("lab: started %s (%.12s) at %s", spec.Name, id, addr)
	return cloud.Machine{ID: id[:12], Address: addr}, nil
}

// createCloud creates the container of a cloud machine on a free address.
// A container of the same name left by an interrupted start of the same API
// object (spec.Key) is replaced.
func (m *Machines) createCloud(ctx context.Context, spec cloud.MachineSpec, s *seed) (string, error) {
	l := m.lab
	m.alloc.Lock()
	defer m.alloc.Unlock()
	all, err := l.containers(ctx)
	if err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	if i := slices.IndexFunc(all, func(c container) bool { return c.name == spec.Name }); i >= 0 {
		if spec.Key == "" || all[i].key != spec.Key {
			return "", fmt.Errorf("lab: a machine named %s exists", spec.Name)
		}
		l.logf("lab: replacing %s (%.12s), left by an interrupted start", spec.Name, all[i].id)
		if _, err := dockercli.Run(ctx, nil, "rm", "-f", "-v", all[i].id); err != nil {
			return "", fmt.Errorf("lab: %s: %w", spec.Name, err)
		}
		all = slices.Delete(all, i, i+1)
	}
	addr, err := freeAddress(l.subnet, all)
	if err != nil {
		return "", fmt.Errorf("lab: %s: %w", spec.Name, err)
	}
	id, err := l.create(ctx, newMachine{name: spec.Name, groups: spec.Tags, kind: "cloud", addr: addr.String(),
		imageRef: spec.Image, key: spec.Key}, s)
	if err != nil {
		if strings.Contains(err.Error(), "already in use") {
			return "", fmt.Errorf("lab: a machine named %s exists", spec.Name)
		}
		return "", fmt.Errorf("lab: %s: %w", spec.Name, err)
	}
	return id, nil
}

// freeAddress picks the address of a new cloud machine: the first free one
// after the highest in use, wrapping around, so that an address is reused
// as late as possible (neighbours may still cache the old holder's MAC).
func freeAddress(subnet netip.Prefix, all []container) (netip.Addr, error) {
	used := map[int]bool{}
	highest := dynamicFirst - 1
	for _, c := range all {
		for _, a := range []string{c.fixed, c.address} {
			ip, err := netip.ParseAddr(a)
			if err != nil || !subnet.Contains(ip) {
				continue
			}
			o := int(ip.As4()[3])
			used[o] = true
			if o >= dynamicFirst && o < dynamicFirst+dynamicCount {
				highest = max(highest, o)
			}
		}
	}
	for i := range dynamicCount {
		o := dynamicFirst + (highest+1-dynamicFirst+i)%dynamicCount
		if !used[o] {
			return hostAddr(subnet, o), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address for a cloud machine in %s", subnet)
}

// boot starts a created machine, waits for sshd and records its host keys,
// read back from the machine since user data may have set them.
func (m *Machines) boot(ctx context.Context, id string) (string, error) {
	l := m.lab
	if _, err := dockercli.Run(ctx, nil, "start", id); err != nil {
		return "", err
	}
	addr, err := l.address(ctx, id)
	if err != nil {
		return "", err
	}
	if err := l.waitSSH(ctx, id, addr); err != nil {
		return "", err
	}
	res, err := l.exec(ctx, id, "cat /etc/ssh/ssh_host_*_key.pub", false)
	if err != nil {
		return "", err
	}
	keys := parsePublicKeys(res)
	if len(keys) == 0 {
		return "", errors.New("no host key found")
	}
	return addr, l.recordHostKeys(ctx, addr, keys)
}

// Remove deletes a machine. Removing one that is gone is not an error.
func (m *Machines) Remove(ctx context.Context, id string) error {
	l := m.lab
	c, err := l.machine(ctx, id)
	if errors.Is(err, dockercli.ErrNoSuchObject) {
		return nil
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := dockercli.Run(ctx, nil, "rm", "-f", "-v", c.id); err != nil && !errors.Is(err, dockercli.ErrNoSuchObject) {
		return fmt.Errorf("lab: remove %s: %w", c.name, err)
	}
	l.logf("lab: removed %s (%.12s)", c.name, c.id)
	unlock, err := lockState(ctx, l.dir)
	if err != nil {
		return err
	}
	defer unlock()
	if c.address != "" {
		if err := setKnownHosts(l.dir, c.address, nil); err != nil {
			return err
		}
	}
	// Its reserved IPs went with it.
	held, err := l.reserved()
	if err != nil {
		return err
	}
	for ip, holder := range held {
		if holder == c.id[:12] {
			delete(held, ip)
			if err := setKnownHosts(l.dir, ip, nil); err != nil {
				return err
			}
		}
	}
	if err := writeJSON(filepath.Join(l.dir, reservedFile), held, 0o644); err != nil {
		return err
	}
	unlock()
	l.refreshInventory(ctx)
	return nil
}

// Rename gives a machine a new name: the container's name, the kernel
// hostname, /etc/hostname and /etc/hosts. The machine keeps running.
func (m *Machines) Rename(ctx context.Context, id, name string) error {
	l := m.lab
	if !machineName.MatchString(name) {
		return fmt.Errorf("lab: bad machine name %q", name)
	}
	c, err := l.machine(ctx, id)
	if err != nil {
		return err
	}
	if c.name == name {
		return nil
	}
	if _, err := dockercli.Run(ctx, nil, "rename", c.id, l.st.Prefix+"-"+name); err != nil {
		if strings.Contains(err.Error(), "already in use") {
			return fmt.Errorf("lab: rename %s: a machine named %s exists", c.name, name)
		}
		return fmt.Errorf("lab: rename %s: %w", c.name, err)
	}
	// Docker bind-mounts /etc/hostname and /etc/hosts, so they are rewritten
	// in place. Names are plain words (machineName), safe in the script.
	script := fmt.Sprintf(`set -e
echo %[1]s > /etc/hostname
echo %[1]s > `+seedDir+`/hostname
sed 's/[[:space:]]%[2]s$/ %[1]s/' /etc/hosts > /tmp/.orch-hosts
cat /tmp/.orch-hosts > /etc/hosts
rm -f /tmp/.orch-hosts
`, name, strings.ReplaceAll(c.name, ".", `\.`))
	if _, err := l.exec(ctx, c.id, script, false); err != nil {
		return fmt.Errorf("lab: rename %s: %w", c.name, err)
	}
	if err := l.setHostname(ctx, c.id, name); err != nil {
		l.logf("lab: rename %s: the kernel hostname stays %s: %v", c.name, c.name, err)
	}
	l.logf("lab: renamed %s to %s", c.name, name)
	l.refreshInventory(ctx)
	return nil
}

// setHostname sets a container's kernel hostname, which needs
// CAP_SYS_ADMIN that lab containers lack. A privileged exec has it where the
// engine may grant every capability; elsewhere (a sandboxed engine) root on
// the engine's machine can enter the container's UTS namespace instead.
func (l *Lab) setHostname(ctx context.Context, id, name string) error {
	_, err := l.exec(ctx, id, "hostname "+name, true)
	if err == nil {
		return nil
	}
	pid, perr := dockercli.Run(ctx, nil, "inspect", "--format", "{{.State.Pid}}", id)
	if perr != nil {
		return err
	}
	out, nerr := exec.CommandContext(ctx, "nsenter", "--target", pid, "--uts", "--mount", "hostname", name).CombinedOutput()
	if nerr != nil {
		return fmt.Errorf("%v; nsenter: %v: %s", err, nerr, strings.TrimSpace(string(out)))
	}
	return nil
}

// ReservedIPs lists the lab's reserved addresses: the top of the lab subnet,
// outside the range docker hands out.
func (m *Machines) ReservedIPs() []string {
	var out []string
	for i := range reservedCount {
		out = append(out, hostAddr(m.lab.subnet, reservedFirst+i).String())
	}
	return out
}

// AssignIP moves reserved address ip to machine id, or unassigns it when id
// is "".
func (m *Machines) AssignIP(ctx context.Context, ip, id string) error {
	l := m.lab
	if !slices.Contains(m.ReservedIPs(), ip) {
		return fmt.Errorf("lab: %s is not a reserved IP of the lab", ip)
	}
	var target container
	if id != "" {
		var err error
		if target, err = l.machine(ctx, id); err != nil {
			return err
		}
		if !target.running {
			return fmt.Errorf("lab: %s is not running", target.name)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cidr := ip + "/" + fmt.Sprint(l.subnet.Bits())

	// Take it from every machine that has it, not only the one on record:
	// the record could be stale after a failure.
	all, err := l.containers(ctx)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	// Each machine's reservedList follows, so a restart keeps what it holds.
	drop := fmt.Sprintf(`if ip -o addr show dev eth0 | grep -q ' %[1]s/'; then ip addr del %[2]s dev eth0; fi
if [ -f %[3]s ]; then grep -vx '%[2]s' %[3]s > %[3]s.new || true; mv %[3]s.new %[3]s; fi`, ip, cidr, reservedList)
	for _, c := range all {
		if c.running && c.id != target.id {
			if _, err := l.exec(ctx, c.id, drop, false); err != nil {
				return fmt.Errorf("lab: unassign %s from %s: %w", ip, c.name, err)
			}
		}
	}
	if id != "" {
		// Two unsolicited ARPs a second apart: Linux ignores a neighbour
		// update within a second of the last one (locktime).
		add := fmt.Sprintf(`ip -o addr show dev eth0 | grep -q ' %[1]s/' || ip addr add %[2]s dev eth0
grep -qsx '%[2]s' %[3]s || echo '%[2]s' >> %[3]s
(arping -q -U -c 2 -I eth0 %[1]s >/dev/null 2>&1 &)`, ip, cidr, reservedList)
		if _, err := l.exec(ctx, target.id, add, false); err != nil {
			return fmt.Errorf("lab: assign %s to %s: %w", ip, target.name, err)
		}
	}

	unlock, err := lockState(ctx, l.dir)
	if err != nil {
		return err
	}
	defer unlock()
	held, err := l.reserved()
	if err != nil {
		return err
	}
	// A stopped machine that held it must not take it back when it starts.
	if old := held[ip]; old != "" && old != target.id[:min(12, len(target.id))] {
		if i := slices.IndexFunc(all, func(c container) bool { return strings.HasPrefix(c.id, old) }); i >= 0 && !all[i].running {
			if err := l.writeReservedList(ctx, all[i].id, held, ip); err != nil {
				return fmt.Errorf("lab: unassign %s from %s: %w", ip, all[i].name, err)
			}
		}
	}
	delete(held, ip)
	var keys []byte
	if id != "" {
		held[ip] = target.id[:12]
		if keys, err = l.exec(ctx, target.id, "cat /etc/ssh/ssh_host_*_key.pub", false); err != nil {
			return err
		}
	}
	if err := setKnownHosts(l.dir, ip, parsePublicKeys(keys)); err != nil {
		return err
	}
	l.logf("lab: reserved IP %s now on %q", ip, target.name)
	return writeJSON(filepath.Join(l.dir, reservedFile), held, 0o644)
}

// writeReservedList rewrites a stopped machine's reservedList from held,
// without ip, through docker cp (which works on stopped containers).
func (l *Lab) writeReservedList(ctx context.Context, id string, held map[string]string, ip string) error {
	var b strings.Builder
	for r, holder := range held {
		if r != ip && strings.HasPrefix(id, holder) {
			fmt.Fprintf(&b, "%s/%d\n", r, l.subnet.Bits())
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := []byte(b.String())
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path.Base(reservedList), Mode: 0o644, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
		return err
	}
	tw.Write(data)
	if err := tw.Close(); err != nil {
		return err
	}
	_, err := dockercli.Run(ctx, &buf, "cp", "-", id+":"+path.Dir(reservedList))
	return err
}

// Holder returns the ID of the machine holding reserved IP ip, or "".
func (m *Machines) Holder(ip string) (string, error) {
	held, err := m.lab.reserved()
	return held[ip], err
}

// reserved reads which machine holds each reserved IP.
func (l *Lab) reserved() (map[string]string, error) {
	held := map[string]string{}
	if err := readJSON(filepath.Join(l.dir, reservedFile), &held); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return held, nil
}

// machine finds one of the lab's containers by ID (or name), refusing
// containers that are not the lab's.
func (l *Lab) machine(ctx context.Context, id string) (container, error) {
	if id == "" {
		return container{}, errors.New("lab: no machine ID")
	}
	all, err := l.containers(ctx)
	if err != nil {
		return container{}, fmt.Errorf("lab: %w", err)
	}
	for _, c := range all {
		if strings.HasPrefix(c.id, id) || c.name == id || l.st.Prefix+"-"+c.name == id {
			return c, nil
		}
	}
	return container{}, fmt.Errorf("lab: machine %s: %w", id, dockercli.ErrNoSuchObject)
}

// exec runs a script in a lab container and returns its stdout; a non-zero
// exit is an error carrying stderr.
func (l *Lab) exec(ctx context.Context, id, script string, privileged bool) ([]byte, error) {
	c, err := dockerconn.Dial(ctx, id, dockerconn.Options{Host: dockercli.Host(), Privileged: privileged})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res, err := c.Exec(ctx, script, nil)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("exit %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return res.Stdout, nil
}

func dedupe(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
