package conn

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/orch-dev/orch/inventory"
)

// Dialer opens a connection to a host. Dialers register by connection name
// (the inventory's `connection` var) in init(), as modules do; an embedder
// adds its own with Register.
//
// A dialer returns a *UnreachableError when the host cannot be reached or
// logged in to; any other error is the host's configuration's.
type Dialer func(ctx context.Context, req DialRequest) (Conn, error)

// DialRequest is what a dialer gets.
type DialRequest struct {
	Host *inventory.Host
	SSH  SSHSettings
	// DockerHost is the Docker Engine the docker connection talks to
	// (unix:///path or tcp://host:port); "" means its default socket.
	DockerHost string
	// Parent returns the connection of another inventory host, dialling it
	// if needed: the jail connection reaches a jail through its jail host.
	Parent func(ctx context.Context, host string) (Conn, error)
	// Warn reports something the user should know; the same message is
	// shown once per run.
	Warn func(msg string)
	// Shared holds what the connections of one run share, such as one
	// connection to a jump host many hosts are reached through. nil
	// shares nothing.
	Shared *Shared
}

// Shared is state the connections of one run share; the engine makes one
// per run, so runs share none. A dialer keeps its state under a key of a
// type of its own. It is safe for concurrent use.
type Shared struct {
	mu     sync.Mutex
	values map[any]any
}

// Get returns the value under key, made with newValue on first use. On a
// nil Shared it returns a fresh value every time.
func (s *Shared) Get(key any, newValue func() any) any {
	if s == nil {
		return newValue()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[key]
	if !ok {
		if s.values == nil {
			s.values = map[any]any{}
		}
		v = newValue()
		s.values[key] = v
	}
	return v
}

// SSHSettings are the run-wide SSH settings; inventory vars and
// ~/.ssh/config fill in the rest per host.
type SSHSettings struct {
	KnownHosts      []string      // known_hosts files; default: the ssh config's, else ~/.ssh/known_hosts
	ExtraKnownHosts []string      // read (never written) beside them: the keys orch pinned for machines it created
	HostKeyCheck    string        // strict, accept-new (default) or off
	ConnectTimeout  time.Duration // per host; default 10s
	SSHConfig       string        // ssh config file; "" means ~/.ssh/config
	NoSSHConfig     bool          // ignore ssh config files
	IdentityFiles   []string      // keys for hosts whose inventory names none
}

var (
	dialersMu sync.RWMutex
	dialers   = map[string]Dialer{}
)

// Register adds a connection type, which inventory hosts select with
// their connection var (`connection: bastion`). A duplicate or empty
// name, or a nil dialer, is a programming error and panics. Register in
// init(), or before the runs that use it start.
func Register(name string, d Dialer) {
	dialersMu.Lock()
	defer dialersMu.Unlock()
	if _, dup := dialers[name]; dup || name == "" || d == nil {
		panic(fmt.Sprintf("conn: duplicate or empty connection %q", name))
	}
	dialers[name] = d
	inventory.RegisterConnection(name)
}

// Lookup returns the dialer of a connection type; ok is false for a name
// nothing registered.
func Lookup(name string) (Dialer, bool) {
	dialersMu.RLock()
	defer dialersMu.RUnlock()
	d, ok := dialers[name]
	return d, ok
}

// Names lists the registered connection types.
func Names() []string {
	dialersMu.RLock()
	defer dialersMu.RUnlock()
	out := make([]string, 0, len(dialers))
	for n := range dialers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Nested is implemented by connections that reach their host through
// another host's connection, which counts their exchanges as its own (the
// jail connection's jexec is an exec of its parent's). Their Exchanges are
// their host's, but the run's total leaves them out, so each exchange
// counts once.
type Nested interface {
	Nested() bool
}

// Aliver is implemented by connections that can tell they were lost (the
// host rebooted or the network went away), so that the engine dials again
// the next time the plan asks for the host.
type Aliver interface {
	Alive() bool
}

func init() {
	Register("local", func(_ context.Context, req DialRequest) (Conn, error) {
		return &Local{Name: req.Host.Name}, nil
	})
}
