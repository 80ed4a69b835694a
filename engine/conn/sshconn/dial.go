package sshconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
)

// dialChain connects to each hop in turn, every one through the previous.
// It returns the target's client and the function that releases the shared
// jump host clients. On failure it names the jump host that failed.
func (d *dialer) dialChain(ctx context.Context, chain []hop) (*ssh.Client, func(), error) {
	defer func() {
		if d.agentConn != nil {
			d.agentConn.Close()
		}
	}()
	hk, err := d.hostKeys(chain[len(chain)-1])
	if err != nil {
		return nil, nil, err
	}
	if hk.policy == Off {
		d.cfg.Warn(fmt.Sprintf("%s: host key checking is off: the connection is open to man-in-the-middle attacks", d.cfg.HostName))
	}
	var releases []func()
	releaseAll := func() {
		for i := len(releases) - 1; i >= 0; i-- {
			releases[i]()
		}
	}
	// Jump connections are shared only between Dials that would check the
	// jump host's key the same way.
	key := hk.policy + "\x00" + strings.Join(hk.files, "\x00")
	var via *ssh.Client
	jumps, target := chain[:len(chain)-1], chain[len(chain)-1]
	for _, h := range jumps {
		key += "\x00" + h.user + "@" + h.addr() + "\x00" + h.proxyCommand
		prev := via
		c, release, err := d.cfg.Jumps.acquire(ctx, key, func() (*ssh.Client, error) { return d.dialHop(ctx, h, prev, hk) })
		if err != nil {
			releaseAll()
			return nil, nil, fmt.Errorf("jump host %s (%s): %w", h.name, h.addr(), err)
		}
		releases = append(releases, release)
		via = c
	}
	c, err := d.dialHop(ctx, target, via, hk)
	if err != nil {
		releaseAll()
		return nil, nil, err
	}
	return c, releaseAll, nil
}

// dialHop makes the TCP connection (directly or through via) and the SSH
// handshake, together bounded by the connect timeout and by ctx.
func (d *dialer) dialHop(ctx context.Context, h hop, via *ssh.Client, hk *hostKeys) (*ssh.Client, error) {
	signers, offered, err := d.signers(h)
	if err != nil {
		return nil, err
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("no usable private key for %s@%s (tried %s)", h.user, h.addr(), strings.Join(h.keyFiles, ", "))
	}
	timeout := d.cfg.ConnectTimeout
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var nc net.Conn
	switch {
	case via != nil:
		nc, err = via.DialContext(dctx, "tcp", h.addr())
	case h.proxyCommand != "" && h.proxyCommand != "none":
		nc, err = startProxyCommand(h.proxyCommand, h.addr())
	case d.cfg.DialContext != nil:
		nc, err = d.cfg.DialContext(dctx, "tcp", h.addr())
	default:
		nc, err = (&net.Dialer{}).DialContext(dctx, "tcp", h.addr())
	}
	if err != nil {
		if ctx.Err() == nil && dctx.Err() != nil {
			return nil, fmt.Errorf("connect timeout after %v", timeout)
		}
		return nil, err
	}

	config := &ssh.ClientConfig{
		User:              h.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback:   hk.callback(h),
		HostKeyAlgorithms: hk.algorithms(h.knownAs()),
	}
	// Connections through a jump host have no deadlines, so the handshake is
	// bounded by closing the connection instead.
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, h.knownAs(), config)
	if !stop() {
		// dctx ended, and nc with it, possibly just after a good handshake.
		if err == nil {
			sc.Close()
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("connect timeout after %v (TCP connect and SSH handshake)", timeout)
	}
	if err != nil {
		nc.Close()
		var hkErr *HostKeyError
		if errors.As(err, &hkErr) {
			return nil, hkErr // says all there is to say
		}
		err = hk.offersNoKnownType(err, h)
		if pc, ok := nc.(*proxyConn); ok {
			err = pc.explain(err)
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			err = fmt.Errorf("%w (user %s, offered %s)", err, h.user, strings.Join(offered, ", "))
		}
		return nil, err
	}
	return ssh.NewClient(sc, chans, reqs), nil
}
