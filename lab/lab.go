// Package lab runs orch's local lab: Debian containers with sshd, BIND,
// nginx and HAProxy on a private docker network, plus a local cloud API
// (package lab/cloud) whose instances are more such containers. The same
// plans run against the lab and against real hosts and clouds.
//
// The default topology (topology.go) is ns1 and ns2, instances of the lab
// cloud tagged dns with BIND serving example.test, behind lb1 and lb2
// (group lb, nginx proxying UDP and TCP port 53 to them), and bsd1 (group
// freebsd), a stand-in FreeBSD host (lab/standin) whose nginx routes the
// names "live" and "test" to app jails. Every machine
// trusts the lab's SSH client key for root and for the users deploy and
// deploy-pw, and has a host key the lab recorded in its own known_hosts, so
// lab runs check host keys strictly. Every machine's apt goes through the
// machine's apt proxy (aptproxy.go).
//
// There is one lab per machine: its state lives in Options.Dir, which
// cmd/orch points at one folder whatever directory it runs from. In it:
// lab.json (prefix, network, subnet, image), the client key id_ed25519,
// known_hosts, the host keys the lab keeps per name, the cloud tokens
// (0600), the cloud process's pid and port, the cloud's own state
// (cloud-state.json, 0600), and inventory.yaml / inventory.ini for users.
// Docker objects carry the label dev.orch.lab=<prefix> so that Down finds
// everything Up made, and the network also names the state folder, so that
// a lab is never adopted by another state.
//
// The lab cloud runs as a background process of the orch binary (`orch lab
// serve-cloud --state DIR`, which calls ServeCloud) so that it outlives `orch
// lab up`. Its machines come from Machines, which applies the cloud-init
// subset described in cloudinit.go.
//
// The library never prints: progress goes to Options.Logf.
package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/internal/shell"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/lab/image"
	"github.com/orch-dev/orch/lab/internal/dockercli"
	"github.com/orch-dev/orch/lab/internal/flock"
	"github.com/orch-dev/orch/lab/standin"
)

// DefaultPrefix names the lab's docker network and prefixes its containers.
const DefaultPrefix = "orch-lab"

// Options configure Up and Down.
type Options struct {
	// Dir is the lab's state folder. cmd/orch makes it $ORCH_LAB_STATE,
	// else $XDG_STATE_HOME/orch/lab, else ~/.local/state/orch/lab: one lab
	// per machine, whatever directory a command runs from.
	Dir string
	// Prefix names the docker network and prefixes container names;
	// DefaultPrefix when empty. A lab keeps the prefix it was created with.
	Prefix string
	// Logf receives progress lines. Nil discards them.
	Logf func(format string, args ...any)
	// CloudCommand is the command that runs ServeCloud for this lab in the
	// background. The default is this executable with
	// "lab serve-cloud --state Dir". Tests point it at their own binary.
	CloudCommand []string
	// CloudEnv is added to the cloud process's environment.
	CloudEnv []string
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("lab: no state dir")
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return o, err
	}
	o.Dir = abs
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o, nil
}

// Lab is a lab that is up (or was, when Open found its state).
type Lab struct {
	dir    string // the state folder, Options.Dir
	st     labState
	subnet netip.Prefix
	tokens tokens
	cloud  cloudProcess // as last read; zero if the cloud never started
	logf   func(string, ...any)

	machinesOnce sync.Once
	machines     *Machines
}

// HostStatus is one lab machine, as `orch lab status --json` prints it.
type HostStatus struct {
	Name    string   `json:"name"`
	Address string   `json:"address"`
	Groups  []string `json:"groups"`
}

// EnsureImage returns the tag of the lab image, building it the first time
// (about a minute) and reusing it until its recipe changes. See package
// lab/image.
func EnsureImage(ctx context.Context, logf func(format string, args ...any)) (string, error) {
	return image.Ensure(ctx, logf)
}

// Up starts the lab, or checks that it runs: the image, the network, the
// apt proxy, the cloud process, the name servers and the load balancers. It
// is idempotent: on a running lab it changes nothing and returns quickly.
// Machines that exist are left as they are, even if plans changed them;
// stopped ones are started. The name servers are created in the lab cloud
// on the lab's first start only: afterwards they are the cloud's, and plans
// replace them. Missing load balancers are created with the running name
// servers as their upstreams.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	unlock, err := flock.Lock(ctx, filepath.Join(dir, upLockFile))
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer unlock()
	if err := dockercli.Available(ctx); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	tag, err := image.Ensure(ctx, opts.Logf)
	if err != nil {
		return nil, err
	}

	l := &Lab{dir: dir, logf: opts.Logf}
	switch err := readJSON(filepath.Join(dir, stateFile), &l.st); {
	case errors.Is(err, fs.ErrNotExist):
		l.st = labState{Prefix: opts.Prefix, Network: opts.Prefix}
		if err := l.checkNoOrphans(ctx); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("lab: %w", err)
	}
	l.st.Image = tag
	if err := readJSON(filepath.Join(dir, tokensFile), &l.tokens); err != nil {
		l.tokens = tokens{Linode: randomHex(32), DigitalOcean: randomHex(32)}
		if err := writeJSON(filepath.Join(dir, tokensFile), l.tokens, 0o600); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	if _, err := ensureKey(filepath.Join(dir, keyFile), "orch-lab"); err != nil {
		return nil, fmt.Errorf("lab: client key: %w", err)
	}
	if err := l.ensureNetwork(ctx); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := writeJSON(filepath.Join(dir, stateFile), l.st, 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := l.ensureAptProxy(ctx); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := l.ensureCloud(ctx, opts); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := l.startStopped(ctx); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if !l.st.Seeded {
		if err := l.seedNameServers(ctx); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		l.st.Seeded = true
		if err := writeJSON(filepath.Join(dir, stateFile), l.st, 0o644); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	if err := l.ensureHosts(ctx); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	l.refreshInventory(ctx)
	return l, nil
}

// checkNoOrphans refuses to start a lab whose docker objects exist already
// without its state here: they belong to a lab whose state is elsewhere (or
// lost), and their host keys are unknown to this one.
func (l *Lab) checkNoOrphans(ctx context.Context) error {
	owner, err := dockercli.Run(ctx, nil, "network", "inspect", "--format", `{{index .Labels "`+labelState+`"}}`, l.st.Network)
	if errors.Is(err, dockercli.ErrNoSuchObject) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if owner != "" && owner != l.dir {
		if _, err := os.Stat(filepath.Join(owner, stateFile)); err == nil {
			return fmt.Errorf("lab: the lab named %s belongs to the state in %s, not %s: use that state (ORCH_LAB_STATE=%s), or name another lab with ORCH_LAB_PREFIX",
				l.st.Prefix, owner, l.dir, owner)
		}
	}
	from := "an older orch, which kept lab state in .orch/lab of the directory it ran from"
	if owner != "" {
		from = owner
	}
	return fmt.Errorf("lab: docker objects of a lab named %s exist, but not its state (it was started from %s): "+
		"remove them with `orch lab down` (ORCH_LAB_PREFIX=%s), or name another lab with ORCH_LAB_PREFIX", l.st.Prefix, from, l.st.Prefix)
}

// Open reads the state of a lab that Up started in dir (Options.Dir). It
// returns ErrNotUp when there is none. It does not check that the lab still
// runs.
func Open(dir string) (*Lab, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	l := &Lab{dir: abs, logf: func(string, ...any) {}}
	if err := readJSON(filepath.Join(l.dir, stateFile), &l.st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotUp
		}
		return nil, fmt.Errorf("lab: %w", err)
	}
	if l.subnet, err = netip.ParsePrefix(l.st.Subnet); err != nil {
		return nil, fmt.Errorf("lab: %s: bad subnet %q", stateFile, l.st.Subnet)
	}
	if err := readJSON(filepath.Join(l.dir, tokensFile), &l.tokens); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	_ = readJSON(filepath.Join(l.dir, cloudFile), &l.cloud) // absent until the cloud has started
	return l, nil
}

// Down removes everything Up made for the lab in opts.Dir: the cloud
// process, the containers (cloud machines too), its place on the apt proxy
// (and the proxy itself if no other lab uses it), the network and the lab's
// state. The image and the apt cache stay. Down on a lab that is not up
// does nothing. Without a state in opts.Dir, it removes the docker objects
// of the lab named opts.Prefix.
func Down(ctx context.Context, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	dir := opts.Dir
	st := labState{Prefix: opts.Prefix, Network: opts.Prefix}
	if err := readJSON(filepath.Join(dir, stateFile), &st); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lab: %w", err)
	}
	if _, err := os.Stat(dir); err == nil {
		unlock, err := flock.Lock(ctx, filepath.Join(dir, upLockFile))
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		defer unlock()
		var cp cloudProcess
		if readJSON(filepath.Join(dir, cloudFile), &cp) == nil {
			opts.Logf("lab: stopping the cloud (pid %d)", cp.PID)
			if err := stopCloud(ctx, cp); err != nil {
				return fmt.Errorf("lab: %w", err)
			}
		}
	}
	ids, err := dockercli.Run(ctx, nil, "ps", "-aq", "--filter", "label="+labelLab+"="+st.Prefix)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if ids != "" {
		opts.Logf("lab: removing %d containers", len(strings.Fields(ids)))
		if _, err := dockercli.Run(ctx, nil, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	label, err := dockercli.Run(ctx, nil, "network", "inspect", "--format", `{{index .Labels "`+labelLab+`"}}`, st.Network)
	if err == nil && label == st.Prefix {
		if err := leaveAptProxy(ctx, st.Network, opts.Logf); err != nil {
			return fmt.Errorf("lab: apt proxy: %w", err)
		}
	}
	switch {
	case err == nil && label == st.Prefix:
		opts.Logf("lab: removing network %s", st.Network)
		if _, err := dockercli.Run(ctx, nil, "network", "rm", st.Network); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	case err != nil && !errors.Is(err, dockercli.ErrNoSuchObject):
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// Dir is the lab's state folder.
func (l *Lab) Dir() string { return l.dir }

// KeyPath is the lab's SSH client key, authorized for root on every machine.
func (l *Lab) KeyPath() string { return filepath.Join(l.dir, keyFile) }

// KnownHostsPath is the known_hosts file that holds every lab machine's host
// key, for strict host key checking.
func (l *Lab) KnownHostsPath() string { return filepath.Join(l.dir, knownHostsFile) }

// Network is the docker network the machines share, and Subnet its range.
func (l *Lab) Network() string { return l.st.Network }

// Subnet is the lab network's address range.
func (l *Lab) Subnet() netip.Prefix { return l.subnet }

// Image is the image tag new machines start from.
func (l *Lab) Image() string { return l.st.Image }

// CloudURL is the lab cloud's base URL, for both APIs, or "" if the cloud
// process never started.
func (l *Lab) CloudURL() string {
	if l.cloud.Port == 0 {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d", l.cloud.Port)
}

// Env is what `orch lab env` prints: the cloud endpoints and tokens that the
// linode and digitalocean modules read.
func (l *Lab) Env() map[string]string {
	return map[string]string{
		"LINODE_URL":         l.CloudURL(),
		"LINODE_TOKEN":       l.tokens.Linode,
		"DIGITALOCEAN_URL":   l.CloudURL(),
		"DIGITALOCEAN_TOKEN": l.tokens.DigitalOcean,
	}
}

// EnvLines renders Env as sorted KEY='value' lines that a shell can eval.
func (l *Lab) EnvLines() []string {
	env := l.Env()
	var out []string
	for k, v := range env {
		out = append(out, k+"="+shell.Quote(v))
	}
	sort.Strings(out)
	return out
}

// Status lists the lab's machines, default hosts and cloud machines alike,
// sorted by name. A stopped machine has no address.
func (l *Lab) Status(ctx context.Context) ([]HostStatus, error) {
	cs, err := l.containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	out := make([]HostStatus, 0, len(cs))
	for _, c := range cs {
		out = append(out, HostStatus{Name: c.name, Address: c.address, Groups: c.groups})
	}
	return out, nil
}

// Hosts returns the lab's running machines as inventory hosts reached over
// SSH as root with the lab key. Pair them with KnownHostsPath and strict
// host key checking. Each host's vars hold lab_container, the container
// name, for the docker connection.
func (l *Lab) Hosts(ctx context.Context) ([]*inventory.Host, error) {
	cs, err := l.containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	var out []*inventory.Host
	for _, c := range cs {
		if !c.running || c.address == "" {
			continue
		}
		out = append(out, &inventory.Host{
			Name:       c.name,
			Address:    c.address,
			Port:       22,
			User:       "root",
			Key:        l.KeyPath(),
			Connection: "ssh",
			Groups:     slices.Clone(c.groups),
			Vars:       map[string]any{"lab_container": l.st.Prefix + "-" + c.name},
		})
	}
	return out, nil
}

// container is a lab machine as docker reports it.
type container struct {
	id      string
	name    string // machine name: the container name without the prefix
	running bool
	address string // while it runs
	fixed   string // the address it was created with (--ip), running or not
	groups  []string
	kind    string // "default" (topology) or "cloud"
	key     string // the cloud API object it belongs to (MachineSpec.Key)
	image   string
	created string // the hostname it was created with, which docker restores at every start
}

// containers lists the lab's containers, sorted by name.
func (l *Lab) containers(ctx context.Context) ([]container, error) {
	ids, err := dockercli.Run(ctx, nil, "ps", "-aq", "--no-trunc", "--filter", "label="+labelLab+"="+l.st.Prefix)
	if err != nil || ids == "" {
		return nil, err
	}
	out, err := dockercli.Run(ctx, nil, append([]string{"inspect"}, strings.Fields(ids)...)...)
	if errors.Is(err, dockercli.ErrNoSuchObject) {
		// One was removed between ps and inspect: ask again.
		if ids, err = dockercli.Run(ctx, nil, "ps", "-aq", "--no-trunc", "--filter", "label="+labelLab+"="+l.st.Prefix); err == nil && ids != "" {
			out, err = dockercli.Run(ctx, nil, append([]string{"inspect"}, strings.Fields(ids)...)...)
		}
	}
	if err != nil || ids == "" {
		return nil, err
	}
	var raw []struct {
		ID     string `json:"Id"`
		Name   string
		State  struct{ Running bool }
		Config struct {
			Image    string
			Hostname string
			Labels   map[string]string
		}
		NetworkSettings struct {
			Networks map[string]struct {
				IPAddress  string
				IPAMConfig *struct{ IPv4Address string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, fmt.Errorf("docker inspect: %v", err)
	}
	var cs []container
	for _, r := range raw {
		nw := r.NetworkSettings.Networks[l.st.Network]
		c := container{
			id:      r.ID,
			name:    strings.TrimPrefix(strings.TrimPrefix(r.Name, "/"), l.st.Prefix+"-"),
			running: r.State.Running,
			address: nw.IPAddress,
			groups:  []string{},
			kind:    r.Config.Labels[labelKind],
			key:     r.Config.Labels[labelKey],
			image:   r.Config.Image,
			created: r.Config.Hostname,
		}
		if nw.IPAMConfig != nil {
			c.fixed = nw.IPAMConfig.IPv4Address
		}
		if g := r.Config.Labels[labelGroups]; g != "" {
			c.groups = strings.Split(g, ",")
			slices.Sort(c.groups)
		}
		if !c.running {
			c.address = ""
		}
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b container) int { return strings.Compare(a.name, b.name) })
	return cs, nil
}

// ensureNetwork finds the lab network or creates it on a free /24.
func (l *Lab) ensureNetwork(ctx context.Context) error {
	out, err := dockercli.Run(ctx, nil, "network", "inspect", "--format",
		`{{index .Labels "`+labelLab+`"}} {{range .IPAM.Config}}{{.Subnet}} {{end}}`, l.st.Network)
	if err == nil {
		f := strings.Fields(out)
		if len(f) < 2 || f[0] != l.st.Prefix {
			return fmt.Errorf("docker network %s exists but is not this lab's", l.st.Network)
		}
		l.st.Subnet = f[1]
		l.subnet, err = netip.ParsePrefix(f[1])
		return err
	}
	if !errors.Is(err, dockercli.ErrNoSuchObject) {
		return err
	}
	hostNets := localNetworks()
	for third := 0; third < 256; third++ {
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 30, byte(third), 0}), 24)
		if slices.ContainsFunc(hostNets, subnet.Overlaps) {
			continue
		}
		ipRange := netip.PrefixFrom(hostAddr(subnet, dynamicFirst), dynamicBits)
		_, err := dockercli.Run(ctx, nil, "network", "create", "--driver", "bridge",
			"--subnet", subnet.String(), "--ip-range", ipRange.String(), "--gateway", hostAddr(subnet, 1).String(),
			"--label", labelLab+"="+l.st.Prefix, "--label", labelState+"="+l.dir, l.st.Network)
		if err != nil && strings.Contains(strings.ToLower(err.Error()), "overlap") {
			continue // another docker network has it
		}
		if err != nil {
			return err
		}
		l.logf("lab: created network %s on %s", l.st.Network, subnet)
		l.st.Subnet, l.subnet = subnet.String(), subnet
		return nil
	}
	return errors.New("no free /24 in 172.30.0.0/16 for the lab network")
}

// localNetworks lists the networks this machine's interfaces are on, which
// the lab network must not shadow.
func localNetworks() []netip.Prefix {
	addrs, _ := net.InterfaceAddrs()
	var out []netip.Prefix
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(n.String()); err == nil && p.Addr().Is4() {
				out = append(out, p.Masked())
			}
		}
	}
	return out
}

// startStopped starts every lab machine that is stopped, all at once, and
// waits for their sshd. A renamed machine that docker restarted with the
// hostname it was created with gets its name back.
func (l *Lab) startStopped(ctx context.Context) error {
	existing, err := l.containers(ctx)
	if err != nil {
		return err
	}
	return parallel(existing, func(c container) error {
		if !c.running {
			l.logf("lab: starting %s", c.name)
			if err := l.startAndWait(ctx, c.id); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
		}
		if c.created == c.name {
			return nil
		}
		if now, err := l.exec(ctx, c.id, "hostname", false); err == nil && strings.TrimSpace(string(now)) == c.name {
			return nil
		}
		if err := l.setHostname(ctx, c.id, c.name); err != nil {
			l.logf("lab: %s: the kernel hostname stays %s: %v", c.name, c.created, err)
		}
		return nil
	})
}

// ensureHosts creates the default hosts that are missing, all at once.
func (l *Lab) ensureHosts(ctx context.Context) error {
	existing, err := l.containers(ctx)
	if err != nil {
		return err
	}
	var missing []defaultHost
	for _, h := range topology {
		i := slices.IndexFunc(existing, func(c container) bool { return c.name == h.name })
		want := l.st.Image
		if h.standin {
			want = standin.Tag(l.st.Image)
		}
		if i < 0 {
			missing = append(missing, h)
		} else if existing[i].image != want {
			l.logf("lab: %s runs the older image %s; `orch lab down` and `up` renew it", h.name, existing[i].image)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	servers, err := l.nameServerAddrs(ctx)
	if err != nil {
		return err
	}
	return parallel(missing, func(h defaultHost) error {
		l.logf("lab: creating %s", h.name)
		if h.standin {
			return l.createStandin(ctx, h)
		}
		return l.createDefault(ctx, h, lbSeed(servers))
	})
}

// parallel runs fn on every item at once and joins their errors.
func parallel[T any](items []T, fn func(T) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// createDefault creates and boots a default host with the host key the lab
// keeps for its name.
func (l *Lab) createDefault(ctx context.Context, h defaultHost, s *seed) error {
	signer, priv, err := l.hostKey(h.name)
	if err != nil {
		return err
	}
	s.hostKeys = map[string][]byte{
		"ssh_host_ed25519_key":     priv,
		"ssh_host_ed25519_key.pub": []byte(authorizedLine(signer.PublicKey(), "root@"+h.name) + "\n"),
	}
	addr := hostAddr(l.subnet, h.octet).String()
	id, err := l.create(ctx, newMachine{name: h.name, groups: h.groups, kind: "default", addr: addr}, s)
	if err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	if err := l.recordHostKeys(ctx, addr, []ssh.PublicKey{signer.PublicKey()}); err != nil {
		return err
	}
	if err := l.startAndWait(ctx, id); err != nil {
		dockercli.Run(context.WithoutCancel(ctx), nil, "rm", "-f", id)
		return fmt.Errorf("%s: %w", h.name, err)
	}
	return nil
}

// hostKey is the host key the lab keeps for the default host name (made
// on first use), as a signer and as the private key file's contents.
func (l *Lab) hostKey(name string) (ssh.Signer, []byte, error) {
	keyPath := filepath.Join(l.dir, hostKeysDir, name)
	signer, err := ensureKey(keyPath, "root@"+name)
	if err != nil {
		return nil, nil, err
	}
	priv, err := os.ReadFile(keyPath)
	return signer, priv, err
}

// recordHostKeys sets addr's entries in the lab known_hosts.
func (l *Lab) recordHostKeys(ctx context.Context, addr string, keys []ssh.PublicKey) error {
	unlock, err := lockState(ctx, l.dir)
	if err != nil {
		return err
	}
	defer unlock()
	return setKnownHosts(l.dir, addr, keys)
}

// newMachine describes a container to create.
type newMachine struct {
	name     string
	groups   []string
	kind     string // "default" or "cloud"
	addr     string // its address for life
	imageRef string // the image the cloud API was asked for, if any
	key      string // MachineSpec.Key, if any
}

// create makes a stopped container for a machine and copies its seed in,
// with what every lab machine gets: the lab key for the fixture users and
// the apt proxy.
func (l *Lab) create(ctx context.Context, m newMachine, s *seed) (string, error) {
	pub, err := os.ReadFile(l.KeyPath() + ".pub")
	if err != nil {
		return "", err
	}
	labKey := strings.TrimSpace(string(pub))
	s.authorizedKeys = dedupe(append([]string{labKey}, s.authorizedKeys...))
	s.userKeys = []string{labKey}
	s.aptProxy = l.AptProxyURL()
	tarball, err := s.tarball()
	if err != nil {
		return "", err
	}
	args := []string{"create", "--name", l.st.Prefix + "-" + m.name, "--hostname", m.name,
		"--network", l.st.Network, "--ip", m.addr, "--cap-add", "NET_ADMIN",
		"--label", labelLab + "=" + l.st.Prefix,
		"--label", labelGroups + "=" + strings.Join(m.groups, ","),
		"--label", labelKind + "=" + m.kind}
	if m.imageRef != "" {
		args = append(args, "--label", labelImage+"="+m.imageRef)
	}
	if m.key != "" {
		args = append(args, "--label", labelKey+"="+m.key)
	}
	args = append(args, l.st.Image, "/bin/sh", initPath)
	id, err := dockercli.Run(ctx, nil, args...)
	if err != nil {
		return "", err
	}
	if _, err := dockercli.Run(ctx, bytes.NewReader(tarball), "cp", "-", id+":/"); err != nil {
		dockercli.Run(context.WithoutCancel(ctx), nil, "rm", "-f", id)
		return "", err
	}
	return id, nil
}

// startAndWait starts a container and waits until its sshd answers.
func (l *Lab) startAndWait(ctx context.Context, id string) error {
	if _, err := dockercli.Run(ctx, nil, "start", id); err != nil {
		return err
	}
	addr, err := l.address(ctx, id)
	if err != nil {
		return err
	}
	return l.waitSSH(ctx, id, addr)
}

func (l *Lab) address(ctx context.Context, id string) (string, error) {
	out, err := dockercli.Run(ctx, nil, "inspect", "--format",
		`{{with index .NetworkSettings.Networks "`+l.st.Network+`"}}{{.IPAddress}}{{end}}`, id)
	if err != nil {
		return "", err
	}
	if out == "" {
		return "", fmt.Errorf("container %.12s has no address on %s", id, l.st.Network)
	}
	return out, nil
}

// sshWait bounds how long a machine may take to boot; runcmd from user data
// runs before sshd starts, so this is generous.
const sshWait = 3 * time.Minute

// waitSSH waits until addr:22 sends an SSH banner. It gives up early if the
// container stops, with the end of its log.
func (l *Lab) waitSSH(ctx context.Context, id, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, sshWait)
	defer cancel()
	target := net.JoinHostPort(addr, "22")
	lastCheck := time.Now()
	for {
		if sshBanner(ctx, target) {
			return nil
		}
		if time.Since(lastCheck) > time.Second {
			lastCheck = time.Now()
			running, _ := dockercli.Run(ctx, nil, "inspect", "--format", "{{.State.Running}}", id)
			if running == "false" {
				logs, _ := dockercli.Run(context.WithoutCancel(ctx), nil, "logs", "--tail", "20", id)
				return fmt.Errorf("container %.12s stopped while booting:\n%s", id, logs)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sshd on %s did not answer: %w", target, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func sshBanner(ctx context.Context, target string) bool {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	return err == nil && string(buf) == "SSH-"
}
