package sshconn

import (
	"context"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Jump host connections are shared between Conns, so a fleet behind one
// bastion makes one connection to it instead of one per host (which would
// also run into the bastion's MaxStartups). A jump connection closes when
// the last Conn using it closes.
var (
	jumpMu sync.Mutex
	jumps  = map[string]*jumpEntry{}
)

type jumpEntry struct {
	ready  chan struct{} // closed once dialled
	client *ssh.Client
	err    error
	refs   int
}

// acquireJump returns the shared client for key, dialling it if needed, and
// the function that gives it back.
func acquireJump(ctx context.Context, key string, dial func() (*ssh.Client, error)) (*ssh.Client, func(), error) {
	jumpMu.Lock()
	e := jumps[key]
	owner := e == nil
	if owner {
		e = &jumpEntry{ready: make(chan struct{})}
		jumps[key] = e
	}
	e.refs++
	jumpMu.Unlock()

	release := func() {
		jumpMu.Lock()
		defer jumpMu.Unlock()
		if e.refs--; e.refs == 0 {
			if jumps[key] == e {
				delete(jumps, key)
			}
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
				jumpMu.Lock()
				if jumps[key] == e {
					delete(jumps, key)
				}
				jumpMu.Unlock()
			}()
		} else {
			jumpMu.Lock()
			delete(jumps, key)
			jumpMu.Unlock()
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
