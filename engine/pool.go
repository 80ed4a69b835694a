package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/inventory"
)

// pool keeps one connection per host for the whole run. A failed dial is
// remembered, so an unreachable host is not retried by every apply; a
// connection that was lost (a reboot) is dialled again when the plan next
// asks for the host.
type pool struct {
	dial func(context.Context, *inventory.Host) (conn.Conn, error)
	// beforeDial runs before a host is first dialled (the run locks it);
	// its error fails the dial. afterDial sees each fresh connection and
	// may replace it (by one verified with a new host key).
	beforeDial func(*inventory.Host) error
	afterDial  func(context.Context, *inventory.Host, conn.Conn) conn.Conn

	mu      sync.Mutex
	conns   map[string]*poolEntry
	retired atomic.Int64 // exchanges of connections no longer in the pool
}

type poolEntry struct {
	mu    sync.Mutex // held while dialling
	c     conn.Conn
	err   error          // a failed dial, until forget
	lost  bool           // the connection was lost mid-run
	facts map[string]any // host facts gathered on this connection
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

// get returns the host's connection, dialling it on first use and again
// after it was lost. Every error is an *UnreachableError naming the host.
func (p *pool) get(ctx context.Context, h *inventory.Host) (conn.Conn, error) {
	e := p.entry(h.Name)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c != nil {
		if a, ok := e.c.(conn.Aliver); !ok || a.Alive() {
			return e.c, nil
		}
		p.retire(e) // lost: dial again
	}
	if e.err != nil {
		return nil, e.err
	}
	var err error
	if p.beforeDial != nil {
		err = p.beforeDial(h)
	}
	var c conn.Conn
	if err == nil {
		c, err = p.dialAside(ctx, h)
	}
	if err != nil {
		var ue *UnreachableError
		if !errors.As(err, &ue) {
			err = &UnreachableError{Host: h.Name, Address: h.Address, Err: err}
		}
		e.err = err
		return nil, err
	}
	if p.afterDial != nil {
		c = p.afterDial(ctx, h, c)
	}
	e.c, e.lost = c, false
	return c, nil
}

// dialAside dials on a goroutine of its own and waits for it. An SSH
// handshake grows a goroutine's stack to 16 KiB, and the host's goroutine
// would keep that stack for the rest of the run (a thousand hosts: 16 MB);
// the dialling goroutine gives it back when it ends.
func (p *pool) dialAside(ctx context.Context, h *inventory.Host) (c conn.Conn, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err = p.dial(ctx, h)
	}()
	<-done
	return c, err
}

// retire closes an entry's connection, keeping its exchanges counted and
// forgetting the facts gathered on it. Callers hold e.mu.
func (p *pool) retire(e *poolEntry) {
	if e.c == nil {
		return
	}
	if !nested(e.c) {
		p.retired.Add(e.c.Exchanges())
	}
	e.c.Close()
	e.c, e.facts = nil, nil
}

// forget drops a host's connection and any remembered dial failure, so the
// next get dials afresh (waiting for a host to come back).
func (p *pool) forget(name string) {
	e := p.entry(name)
	e.mu.Lock()
	defer e.mu.Unlock()
	p.retire(e)
	e.err = nil
}

// exec runs a script on the host's connection. A connection lost during it
// is marked, so the host counts as unreachable and is dialled again later.
func (p *pool) exec(ctx context.Context, h *inventory.Host, script string) (conn.Result, error) {
	c, err := p.get(ctx, h)
	if err != nil {
		return conn.Result{}, err
	}
	res, err := c.Exec(ctx, script, nil)
	var ue *UnreachableError
	if errors.As(err, &ue) {
		e := p.entry(h.Name)
		e.mu.Lock()
		e.lost = true
		e.mu.Unlock()
	}
	return res, err
}

// lost reports whether the host's connection was lost during the run.
func (p *pool) lost(name string) bool {
	e := p.entry(name)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lost
}

func (p *pool) hostFact(host, name string) (any, bool) {
	e := p.entry(host)
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.facts[name]
	return v, ok
}

func (p *pool) setHostFact(host, name string, v any) {
	e := p.entry(host)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.facts == nil {
		e.facts = map[string]any{}
	}
	e.facts[name] = v
}

// nested reports whether c's exchanges are its parent's too (conn.Nested).
func nested(c conn.Conn) bool {
	n, ok := c.(conn.Nested)
	return ok && n.Nested()
}

// exchanges sums the exchanges of one host's connection, or of all when
// name is "": then a nested connection's are counted by its parent's.
func (p *pool) exchanges(name string) int64 {
	var n int64
	if name == "" {
		n = p.retired.Load()
	}
	p.mu.Lock()
	var entries []*poolEntry
	for host, e := range p.conns {
		if name == "" || host == name {
			entries = append(entries, e)
		}
	}
	p.mu.Unlock()
	for _, e := range entries {
		e.mu.Lock()
		if e.c != nil && (name != "" || !nested(e.c)) {
			n += e.c.Exchanges()
		}
		e.mu.Unlock()
	}
	return n
}

// drop closes and forgets a host's connection; its exchanges stay counted.
func (p *pool) drop(name string) {
	p.mu.Lock()
	e := p.conns[name]
	delete(p.conns, name)
	p.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		p.retire(e)
		e.mu.Unlock()
	}
}

func (p *pool) close() {
	p.mu.Lock()
	entries := make([]*poolEntry, 0, len(p.conns))
	for _, e := range p.conns {
		entries = append(entries, e)
	}
	p.mu.Unlock()
	for _, e := range entries {
		e.mu.Lock()
		if e.c != nil {
			e.c.Close()
		}
		e.mu.Unlock()
	}
}
