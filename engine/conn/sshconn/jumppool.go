package sshconn

import (
	"context"
	"sync"

	"golang.org/x/crypto/ssh"
)

// JumpPool shares jump host connections between the Conns dialled with it,
// so a fleet behind one bastion makes one connection to it instead of one
// per host (which would also run into the bastion's MaxStartups). A jump
// connection closes when the last Conn using it closes. The engine gives
// each run a pool of its own (conn.DialRequest.Shared), so runs share no
// connection. The zero value is ready to use; it is safe for concurrent use.
type JumpPool struct {
	mu    sync.Mutex
	jumps map[string]*jumpEntry
}

type jumpEntry struct {
	ready  chan struct{} // closed once dialled
	client *ssh.Client
	err    error
	refs   int
}

// acquire returns the shared client for key, dialling it if needed, and
// the function that gives it back. A nil pool shares nothing.
func (p *JumpPool) acquire(ctx context.Context, key string, dial func() (*ssh.Client, error)) (*ssh.Client, func(), error) {
	if p == nil {
		c, err := dial()
		if err != nil {
			return nil, nil, err
		}
		return c, func() { c.Close() }, nil
	}
	p.mu.Lock()
	if p.jumps == nil {
		p.jumps = map[string]*jumpEntry{}
	}
	e := p.jumps[key]
	owner := e == nil
	if owner {
		e = &jumpEntry{ready: make(chan struct{})}
		p.jumps[key] = e
	}
	e.refs++
	p.mu.Unlock()

	forget := func() { // callers hold p.mu
		if p.jumps[key] == e {
			delete(p.jumps, key)
		}
	}
	release := func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if e.refs--; e.refs == 0 {
			forget()
			if e.client != nil {
				e.client.Close()
			}
		}
	}
	if owner {
		e.client, e.err = dial()
		if e.err == nil {
			// Forget a connection that dies, so the next Dial makes a new one.
			go func() {
				e.client.Wait()
				p.mu.Lock()
				forget()
				p.mu.Unlock()
			}()
		} else {
			p.mu.Lock()
			forget()
			p.mu.Unlock()
		}
		close(e.ready)
	} else {
		select {
		case <-e.ready:
		case <-ctx.Done():
			release()
			return nil, nil, ctx.Err()
		}
	}
	if e.err != nil {
		release()
		return nil, nil, e.err
	}
	return e.client, release, nil
}
