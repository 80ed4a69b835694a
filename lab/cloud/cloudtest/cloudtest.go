// Package cloudtest runs the lab cloud in tests without docker: a fake
// Machines that hands out addresses from 198.51.100.0/24, and a helper that
// serves the lab cloud API on a loopback httptest server.
package cloudtest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orch-dev/orch/lab/cloud"
)

// Machine is a fake machine as Machines recorded it.
type Machine struct {
	ID      string
	Name    string // current name (Rename changes it)
	Address string
	Spec    cloud.MachineSpec // what Start was asked for
}

// Machines is an in-memory cloud.Machines. Set the exported fields before
// the first call.
type Machines struct {
	// StartDelay makes each Start take this long, so that callers see the
	// provisioning state. Start returns early when its context ends.
	StartDelay time.Duration
	// StartErr, when set, makes every Start fail with it, or only the
	// Start of a machine named FailName when that is set.
	StartErr error
	FailName string
	// OpDelay makes each Rename and AssignIP take this long, so that
	// callers see actions in progress.
	OpDelay time.Duration

	mu       sync.Mutex
	next     int
	starts   int
	machines map[string]*Machine
	reserved []string
	holder   map[string]string // reserved ip -> machine ID
}

var _ cloud.Machines = (*Machines)(nil)

// NewMachines returns fake machines with four reserved IPs, 203.0.113.10-13.
func NewMachines() *Machines {
	return &Machines{
		machines: map[string]*Machine{},
		reserved: []string{"203.0.113.10", "203.0.113.11", "203.0.113.12", "203.0.113.13"},
		holder:   map[string]string{},
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Start records a new machine.
func (m *Machines) Start(ctx context.Context, spec cloud.MachineSpec) (cloud.Machine, error) {
	if err := sleep(ctx, m.StartDelay); err != nil {
		return cloud.Machine{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.starts++
	if m.StartErr != nil && (m.FailName == "" || m.FailName == spec.Name) {
		return cloud.Machine{}, m.StartErr
	}
	m.next++
	if m.next > 250 {
		return cloud.Machine{}, fmt.Errorf("cloudtest: out of addresses")
	}
	mc := &Machine{
		ID:      fmt.Sprintf("fake-%d", m.next),
		Name:    spec.Name,
		Address: fmt.Sprintf("198.51.100.%d", m.next),
		Spec:    spec,
	}
	m.machines[mc.ID] = mc
	return cloud.Machine{ID: mc.ID, Address: mc.Address}, nil
}

// Remove forgets a machine and frees the reserved IPs it held.
func (m *Machines) Remove(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.machines[id] == nil {
		return fmt.Errorf("cloudtest: no machine %q", id)
	}
	delete(m.machines, id)
	for ip, holder := range m.holder {
		if holder == id {
			delete(m.holder, ip)
		}
	}
	return nil
}

// Rename changes a machine's name.
func (m *Machines) Rename(ctx context.Context, id, name string) error {
	if err := sleep(ctx, m.OpDelay); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mc := m.machines[id]
	if mc == nil {
		return fmt.Errorf("cloudtest: no machine %q", id)
	}
	mc.Name = name
	return nil
}

// AssignIP moves a reserved IP to machine id, or frees it when id is "".
func (m *Machines) AssignIP(ctx context.Context, ip, id string) error {
	if err := sleep(ctx, m.OpDelay); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.reserved, ip) {
		return fmt.Errorf("cloudtest: %s is not a reserved IP", ip)
	}
	if id == "" {
		delete(m.holder, ip)
		return nil
	}
	if m.machines[id] == nil {
		return fmt.Errorf("cloudtest: no machine %q", id)
	}
	m.holder[ip] = id
	return nil
}

// ReservedIPs lists the reserved addresses.
func (m *Machines) ReservedIPs() []string {
	return slices.Clone(m.reserved)
}

// List returns the running machines, ordered by ID.
func (m *Machines) List() []Machine {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Machine
	for _, mc := range m.machines {
		out = append(out, *mc)
	}
	slices.SortFunc(out, func(a, b Machine) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// ByName returns the running machine currently named name.
func (m *Machines) ByName(name string) (Machine, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mc := range m.machines {
		if mc.Name == name {
			return *mc, true
		}
	}
	return Machine{}, false
}

// Holder returns the ID of the machine holding reserved IP ip, or "".
func (m *Machines) Holder(ip string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.holder[ip]
}

// Starts counts the calls to Start, failed ones included.
func (m *Machines) Starts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.starts
}

// Lab is a lab cloud served on loopback for one test.
type Lab struct {
	URL      string // base URL for LINODE_URL and DIGITALOCEAN_URL
	Tokens   cloud.Tokens
	Machines *Machines
	Server   *cloud.Server

	close     func()
	closeOnce sync.Once
}

// Tokens are the tokens of every test lab.
var Tokens = cloud.Tokens{Linode: "lab-linode-token-7f3a9c", DigitalOcean: "lab-do-token-5e1b2d"}

// Start serves a lab cloud backed by machines (NewMachines when nil) until
// the test ends.
func Start(t testing.TB, machines *Machines) *Lab {
	t.Helper()
	if machines == nil {
		machines = NewMachines()
	}
	return serve(t, machines, cloud.NewServer(machines, Tokens))
}

// Open serves a lab cloud whose state lives in the file at path (see
// cloud.Open) until the test ends or Close is called: opening the same path
// again is a restart of the cloud.
func Open(t testing.TB, machines *Machines, path string) *Lab {
	t.Helper()
	srv, err := cloud.Open(machines, Tokens, path, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, machines, srv)
}

func serve(t testing.TB, machines *Machines, srv *cloud.Server) *Lab {
	hs := httptest.NewServer(srv)
	l := &Lab{URL: hs.URL, Tokens: Tokens, Machines: machines, Server: srv, close: func() {
		hs.Close()
		srv.Close()
	}}
	t.Cleanup(l.Close)
	return l
}

// Close stops serving, as the cloud's process would on SIGTERM. It may be
// called more than once.
func (l *Lab) Close() {
	l.closeOnce.Do(l.close)
}

// Count is how many machines exist now.
func (m *Machines) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.machines)
}
