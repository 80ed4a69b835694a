package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/engine/conn/dockerconn"
	"github.com/orch-dev/orch/engine/conn/sshconn"
	"github.com/orch-dev/orch/inventory"
)

// UnreachableError is the error of a host that could not be reached.
type UnreachableError = conn.UnreachableError

// SSHOptions are the run-wide SSH settings; inventory vars and ~/.ssh/config
// fill in the rest per host.
type SSHOptions struct {
	KnownHosts     []string      // known_hosts files; default ~/.ssh/known_hosts
	HostKeyCheck   string        // strict, accept-new (default) or off
	ConnectTimeout time.Duration // per host; default 10s
	SSHConfig      string        // ssh config file; "" means ~/.ssh/config
	NoSSHConfig    bool          // ignore ssh config files
	IdentityFiles  []string      // keys for hosts whose inventory names none
}

// DefaultDialer connects by each host's connection type: ssh (the default),
// local or docker. Keys orch pinned for hosts it created (pinnedKeys) are
// trusted alongside the known_hosts files.
func DefaultDialer(o SSHOptions, pinnedKeys string, warn func(string)) func(context.Context, *inventory.Host) (conn.Conn, error) {
	return func(ctx context.Context, h *inventory.Host) (conn.Conn, error) {
		if h.Unusable != "" {
			return nil, fmt.Errorf("%s: orch cannot connect to this host: %s", h.Name, h.Unusable)
		}
		switch h.Connection {
		case "local":
			return &conn.Local{Name: h.Name}, nil
		case "docker":
			return dockerconn.Dial(ctx, h.Address, dockerconn.Options{User: h.User})
		case "", "ssh":
		default:
			return nil, fmt.Errorf("%s: unknown connection %q", h.Name, h.Connection)
		}
		cfg := sshconn.Config{
			HostName:        h.Name,
			Address:         h.Address,
			Port:            h.Port,
			User:            h.User,
			Agent:           true,
			KnownHostsFiles: o.KnownHosts,
			HostKeyCheck:    o.HostKeyCheck,
			UseSSHConfig:    !o.NoSSHConfig,
			SSHConfigPath:   o.SSHConfig,
			ConnectTimeout:  o.ConnectTimeout,
			Warn:            warn,
			// The host's own ssh args (ansible_ssh_common_args) beat the run's.
			ProxyCommand: h.SSH.ProxyCommand,
			ProxyJump:    h.SSH.ProxyJump,
		}
		if pinnedKeys != "" {
			cfg.ExtraKnownHostsFiles = []string{pinnedKeys}
		}
		if len(h.SSH.UserKnownHostsFiles) > 0 {
			cfg.KnownHostsFiles = h.SSH.UserKnownHostsFiles
		}
		if h.SSH.StrictHostKeyChecking != "" {
			cfg.HostKeyCheck = h.SSH.StrictHostKeyChecking
		}
		if h.ConnectTimeout > 0 {
			cfg.ConnectTimeout = h.ConnectTimeout
		}
		if h.Key != "" {
			cfg.KeyFiles = []string{h.Key}
		} else {
			cfg.KeyFiles = o.IdentityFiles
		}
		return sshconn.Dial(ctx, cfg)
	}
}

// pool keeps one connection per host for the whole run. A failed dial is
// remembered, so an unreachable host is not retried by every apply.
type pool struct {
	dial func(context.Context, *inventory.Host) (conn.Conn, error)

	mu      sync.Mutex
	conns   map[string]*poolEntry
	retired int64 // exchanges of dropped connections
}

type poolEntry struct {
	once  sync.Once
	c     conn.Conn
	err   error
	facts map[string]any
	fmu   sync.Mutex
}

func newPool(dial func(context.Context, *inventory.Host) (conn.Conn, error)) *pool {
	return &pool{dial: dial, conns: map[string]*poolEntry{}}
}

func (p *pool) entry(name string) *poolEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.conns[name]
	if e == nil {
		e = &poolEntry{}
		p.conns[name] = e
	}
	return e
}

// get returns the host's connection, dialling it on first use. Every error
// is an *UnreachableError naming the host.
func (p *pool) get(ctx context.Context, h *inventory.Host) (conn.Conn, error) {
	e := p.entry(h.Name)
	e.once.Do(func() {
		c, err := p.dial(ctx, h)
		if err != nil {
			var ue *UnreachableError
			if !errors.As(err, &ue) {
				err = &UnreachableError{Host: h.Name, Address: h.Address, Err: err}
			}
			e.err = err
			return // c may be a typed nil
		}
		e.c = c
	})
	return e.c, e.err
}

// exec runs a script on the host's connection.
func (p *pool) exec(ctx context.Context, h *inventory.Host, script string) (conn.Result, error) {
	c, err := p.get(ctx, h)
	if err != nil {
		return conn.Result{}, err
	}
	return c.Exec(ctx, script, nil)
}

// exchanges sums the exchanges of one host's connection, or of all when
// name is "".
func (p *pool) exchanges(name string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	if name == "" {
		n = p.retired
	}
	for host, e := range p.conns {
		if (name == "" || host == name) && e.c != nil {
			n += e.c.Exchanges()
		}
	}
	return n
}

// drop closes and forgets a host's connection; its exchanges stay counted.
func (p *pool) drop(name string) {
	p.mu.Lock()
	e := p.conns[name]
	delete(p.conns, name)
	if e != nil && e.c != nil {
		p.retired += e.c.Exchanges()
	}
	p.mu.Unlock()
	if e != nil && e.c != nil {
		e.c.Close()
	}
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.conns {
		if e.c != nil {
			e.c.Close()
		}
	}
}

// factScript gathers every fact in one exchange, as key=value lines.
const factScript = `echo "os=$(uname -s | tr A-Z a-z)"
echo "kernel=$(uname -r)"
echo "arch=$(uname -m)"
echo "hostname=$(hostname)"
echo "user=$(id -un)"
if [ -r /etc/os-release ]; then . /etc/os-release; echo "distribution=$ID"; echo "version=$VERSION_ID"; echo "os_family=${ID_LIKE:-$ID}"; fi
`

// Fact implements plans.Runner. All facts of a host are gathered together
// on first use and cached for the run.
func (r *run) Fact(ctx context.Context, h *inventory.Host, name string) (any, error) {
	e := r.pool.entry(h.Name)
	e.fmu.Lock()
	defer e.fmu.Unlock()
	if e.facts == nil {
		res, err := r.pool.exec(ctx, h, factScript)
		if err != nil {
			return nil, err
		}
		if res.ExitCode != 0 {
			return nil, fmt.Errorf("gathering facts: exit %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
		}
		e.facts = map[string]any{}
		for _, line := range strings.Split(string(res.Stdout), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				e.facts[k] = v
			}
		}
	}
	v, ok := e.facts[name]
	if !ok {
		return nil, fmt.Errorf("unknown fact; known facts are arch, distribution, hostname, kernel, os, os_family, user, version")
	}
	return v, nil
}
