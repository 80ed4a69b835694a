package sshconn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"sync"
	"sync/atomic"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/engine/conn"
)

// sftpSession is the connection's one SFTP client and the session under it.
type sftpSession struct {
	client  *sftp.Client
	session *ssh.Session
}

// close ends the session first: that unblocks a client waiting on a hung
// request, which client.Close alone would wait for.
func (s *sftpSession) close() {
	s.session.Close()
	s.client.Close()
}

// sftpClient returns the SFTP client, starting it on first use.
func (c *Conn) sftpClient(ctx context.Context) (*sftpSession, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	select {
	case <-c.done:
		return nil, errors.New("connection closed")
	default:
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		return nil, err
	}
	w, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		sess.Close()
		return nil, fmt.Errorf("starting sftp: %w", err)
	}
	client, err := sftp.NewClientPipe(r, &requestCounter{w: w, n: &c.exchanges}, sftp.UseConcurrentWrites(true))
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("starting sftp: %w", err)
	}
	c.sftp = &sftpSession{client: client, session: sess}
	return c.sftp, nil
}

// dropSFTP discards a broken SFTP client so the next call starts a new one.
func (c *Conn) dropSFTP(s *sftpSession) {
	c.sftpMu.Lock()
	if c.sftp == s {
		c.sftp = nil
	}
	c.sftpMu.Unlock()
	s.close()
}

// WriteFile atomically replaces path over SFTP: it creates a temporary file
// next to it, writes data, sets mode, syncs (when the server offers
// fsync@openssh.com), closes, and renames it over path with
// posix-rename@openssh.com.
//
// That is six exchanges for a file up to 32 KiB (open, write, fsetstat,
// fsync, close, rename), one more per further 32 KiB, and one for the SFTP
// handshake on the connection's first WriteFile. Cancelling ctx abandons the
// SFTP session (the next call starts another) and removes nothing: the
// temporary file may remain.
func (c *Conn) WriteFile(ctx context.Context, p string, data []byte, mode uint32) error {
	if err := c.writeFile(ctx, p, data, mode); err != nil {
		return fmt.Errorf("%s: write %s: %w", c.name, p, err)
	}
	return nil
}

func (c *Conn) writeFile(ctx context.Context, p string, data []byte, mode uint32) error {
	s, err := c.sftpClient(ctx)
	if err != nil {
		return err
	}
	// pkg/sftp calls take no context: on cancel, closing the session is what
	// unblocks them.
	stop := context.AfterFunc(ctx, func() { c.dropSFTP(s) })
	defer stop()

	cl := s.client
	dir, base := path.Split(p)
	tmp := path.Join(dir, fmt.Sprintf(".%s.orch-%08x", base, rand.Uint32()))
	f, err := cl.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return c.sftpErr(ctx, s, err)
	}
	fail := func(err error) error {
		f.Close()
		cl.Remove(tmp)
		return c.sftpErr(ctx, s, err)
	}
	if len(data) > 0 {
		if _, err := f.Write(data); err != nil {
			return fail(err)
		}
	}
	// An explicit chmod, because the server's umask applies at creation.
	if err := f.Chmod(conn.FileMode(mode)); err != nil {
		return fail(err)
	}
	if v, ok := cl.HasExtension("fsync@openssh.com"); ok && v == "1" {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		cl.Remove(tmp)
		return c.sftpErr(ctx, s, err)
	}
	if _, ok := cl.HasExtension("posix-rename@openssh.com"); ok {
		err = cl.PosixRename(tmp, p)
	} else {
		// Plain SFTP rename refuses to replace; this fallback is not atomic.
		if err = cl.Remove(p); err == nil || errors.Is(err, os.ErrNotExist) {
			err = cl.Rename(tmp, p)
		}
	}
	if err != nil {
		cl.Remove(tmp)
		return c.sftpErr(ctx, s, err)
	}
	return nil
}

// sftpErr prefers the context's error and drops the SFTP client when the
// failure was not a plain status reply (permission denied, no such file…).
func (c *Conn) sftpErr(ctx context.Context, s *sftpSession, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var status *sftp.StatusError
	if !errors.As(err, &status) && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrPermission) {
		c.dropSFTP(s)
	}
	return err
}

// requestCounter counts the SFTP packets the client sends. Every client
// packet in SFTP v3 is a request that waits for its reply, so packets are
// exchanges. It follows the uint32 length framing because pkg/sftp writes a
// packet in several Write calls.
type requestCounter struct {
	w io.WriteCloser
	n *atomic.Int64

	mu        sync.Mutex
	header    [4]byte
	headerLen int
	remaining uint32
}

func (r *requestCounter) Write(b []byte) (int, error) {
	n, err := r.w.Write(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	for rest := b[:n]; len(rest) > 0; {
		if r.remaining > 0 {
			k := min(uint32(len(rest)), r.remaining)
			rest, r.remaining = rest[k:], r.remaining-k
			continue
		}
		k := copy(r.header[r.headerLen:], rest)
		rest, r.headerLen = rest[k:], r.headerLen+k
		if r.headerLen == len(r.header) {
			r.remaining, r.headerLen = binary.BigEndian.Uint32(r.header[:]), 0
			r.n.Add(1)
		}
	}
	return n, err
}

func (r *requestCounter) Close() error { return r.w.Close() }
