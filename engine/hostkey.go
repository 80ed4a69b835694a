package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/engine/conn/sshconn"
	"github.com/orch-dev/orch/inventory"
)

// A machine orch creates gets an SSH host key that orch generated and sent
// in its cloud-init user data, so that the first connection to it is
// verified strictly. But the cloud keeps the user data in the machine's
// metadata, which any local user of the machine can read (Linode and
// DigitalOcean serve it on 169.254.169.254): with the private key, they
// could pose as the machine. So the first verified connection replaces
// that key with one generated on the machine, which never leaves it:
//
//  1. over the verified connection, as root: check that sshd's ed25519 key
//     is the injected one, generate a new key beside it, keep the old one
//     aside, move the new one in, and make sshd reload (SIGHUP);
//  2. pin the new public key (it came over the verified connection) in
//     place of the injected one, in orch's known_hosts and in the run's
//     known_hosts files;
//  3. dial again, strictly, with the new key, and delete the old one.
//
// If the new connection fails, the old key is put back and the run goes on
// with the injected key and a warning; the next run tries again (the key
// stays marked injected). It costs a new machine two exchanges and one
// handshake, once. Check mode replaces nothing.

const hostKeyPath = "/etc/ssh/ssh_host_ed25519_key"

// replaceKeyScript does step 1; $1 is the injected key (base64). It prints
// the new public key on a line of its own, after "orch-new-key ".
const replaceKeyScript = `set -e
umask 077
k=` + hostKeyPath + `
[ -f "$k" ] && [ -f "$k.pub" ] || { echo "no $k: sshd does not use the key orch injected" >&2; exit 3; }
set -- $(cat "$k.pub") ; cur=$2
[ "$cur" = "$ORCH_INJECTED" ] || { echo "$k is not the key orch injected" >&2; exit 3; }
rm -f "$k.orch-new" "$k.orch-new.pub"
ssh-keygen -q -t ed25519 -N '' -C "root@$(hostname)" -f "$k.orch-new"
cp -p "$k" "$k.orch-old"
cp -p "$k.pub" "$k.orch-old.pub"
mv -f "$k.orch-new.pub" "$k.pub"
mv -f "$k.orch-new" "$k"
` + reloadSSHD + `
echo "orch-new-key $(cat "$k.pub")"
`

// restoreKeyScript puts the injected key back when the new one could not
// be verified.
const restoreKeyScript = `set -e
k=` + hostKeyPath + `
mv -f "$k.orch-old" "$k"
mv -f "$k.orch-old.pub" "$k.pub"
` + reloadSSHD

// reloadSSHD makes the listening sshd load the new key: SIGHUP to its pid
// (sshd re-executes itself; sessions in progress go on), or the service
// manager's reload. A socket-activated sshd starts afresh per connection.
const reloadSSHD = `pid=$(cat /run/sshd.pid 2>/dev/null || cat /var/run/sshd.pid 2>/dev/null || true)
if [ -n "$pid" ]; then kill -HUP "$pid"
elif command -v systemctl >/dev/null 2>&1; then systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || true
elif command -v service >/dev/null 2>&1; then service sshd reload 2>/dev/null || service ssh reload 2>/dev/null || true
fi`

// replaceInjectedKey runs after every fresh dial: for a host whose pinned
// key is one orch injected, it replaces the key and returns the connection
// verified with the new one.
func (r *run) replaceInjectedKey(ctx context.Context, h *inventory.Host, c conn.Conn) conn.Conn {
	if r.opts.Check || (h.Connection != "" && h.Connection != "ssh") {
		return c
	}
	addr := sshAddr(h)
	old, ok := r.injectedKey(addr)
	if !ok {
		return c
	}
	fresh, err := r.rotateHostKey(ctx, h, c, addr, old)
	if err != nil {
		r.warn(fmt.Sprintf("%s: the host key orch injected at creation (%s) is still in use, and readable in the machine's metadata: %v",
			h.Name, ssh.FingerprintSHA256(old), err))
		return c
	}
	return fresh
}

func (r *run) rotateHostKey(ctx context.Context, h *inventory.Host, c conn.Conn, addr string, old ssh.PublicKey) (conn.Conn, error) {
	injected := strings.Fields(string(ssh.MarshalAuthorizedKey(old)))[1]
	res, err := r.rootExec(ctx, h, c, "ORCH_INJECTED="+injected+"\n"+replaceKeyScript)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("replacing it failed (exit %d): %s", res.ExitCode, lastLine(strings.TrimSpace(string(res.Stderr))))
	}
	var key ssh.PublicKey
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if rest, ok := strings.CutPrefix(line, "orch-new-key "); ok {
			key, _, _, _, err = ssh.ParseAuthorizedKey([]byte(rest))
		}
	}
	if key == nil {
		return nil, fmt.Errorf("the machine printed no new key (%v)", err)
	}
	if err := r.repin(addr, old, key, ""); err != nil {
		return nil, err
	}
	fresh, err := r.dialAfterReload(ctx, h)
	if err != nil {
		// Put the injected key back, on the host and in the pinned keys.
		res, rerr := r.rootExec(ctx, h, c, restoreKeyScript)
		if rerr == nil && res.ExitCode != 0 {
			rerr = fmt.Errorf("exit %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
		}
		if perr := r.repin(addr, key, old, injectedMark); rerr == nil {
			rerr = perr
		}
		if rerr != nil {
			return nil, fmt.Errorf("the new key %s could not be verified (%v), and putting the old one back failed: %v", ssh.FingerprintSHA256(key), err, rerr)
		}
		return nil, fmt.Errorf("the new key %s could not be verified, so the old one was put back: %v", ssh.FingerprintSHA256(key), err)
	}
	if res, err := r.rootExec(ctx, h, fresh, fmt.Sprintf("rm -f %s.orch-old %s.orch-old.pub", hostKeyPath, hostKeyPath)); err != nil || res.ExitCode != 0 {
		r.warn(fmt.Sprintf("%s: could not delete the injected host key kept aside in %s.orch-old: %v %s", h.Name, hostKeyPath, err, strings.TrimSpace(string(res.Stderr))))
	}
	c.Close()
	r.emit(Event{Event: "host_key", Host: h.Name, Msg: fmt.Sprintf("replaced the host key orch injected at creation (%s), which the machine's metadata shows, with one made on the machine (%s), and pinned it",
		ssh.FingerprintSHA256(old), ssh.FingerprintSHA256(key))})
	return fresh, nil
}

// dialAfterReload dials the host again once sshd reloads: a SIGHUP'd sshd
// re-executes itself and listens again a moment later, so refusals are
// retried for ten seconds; a host key that fails to verify is final.
func (r *run) dialAfterReload(ctx context.Context, h *inventory.Host) (conn.Conn, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := r.pool.dial(ctx, h)
		var hk *sshconn.HostKeyError
		if err == nil || errors.As(err, &hk) || time.Now().After(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rootExec runs a script as root: directly when the host logs in as root,
// else through the host's become method.
func (r *run) rootExec(ctx context.Context, h *inventory.Host, c conn.Conn, script string) (conn.Result, error) {
	if h.User != "" && h.User != "root" {
		method := h.BecomeMethod
		if method == "" {
			method = "sudo"
		}
		wrapped, err := becomeScript(identity{user: "root", method: method}, script, r.opts.BecomePassword, "orch-"+nonce())
		if err != nil {
			return conn.Result{}, err
		}
		script = wrapped
	}
	return c.Exec(ctx, script, nil)
}

// sshAddr is the address of a host as known_hosts names it.
func sshAddr(h *inventory.Host) string {
	addr := h.Address
	if addr == "" {
		addr = h.Name
	}
	port := h.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
}
