package sshconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyErrorKind says why a host key was rejected.
type HostKeyErrorKind int

const (
	// HostKeyUnknown: the host is not in known_hosts and the policy is strict.
	HostKeyUnknown HostKeyErrorKind = iota + 1
	// HostKeyChanged: known_hosts holds a different key for the host. This
	// fails under every policy but off.
	HostKeyChanged
)

// KnownKey is a key found in a known_hosts file.
type KnownKey struct {
	Type        string
	Fingerprint string // SHA256:…
	File        string
	Line        int
}

// HostKeyError is a host key rejected by known_hosts checking.
type HostKeyError struct {
	Kind    HostKeyErrorKind
	Host    string // inventory name
	Address string // "host:port" as looked up in known_hosts
	// The key the server offered. Empty when the server offered no key of a
	// type known_hosts has for it, which counts as changed.
	KeyType     string
	Fingerprint string
	Known       []KnownKey // for HostKeyChanged: what known_hosts expects
	KnownHosts  string     // the known_hosts file new keys would go to
}

func (e *HostKeyError) Error() string {
	var b strings.Builder
	host, port := splitAddr(e.Address)
	switch e.Kind {
	case HostKeyUnknown:
		fmt.Fprintf(&b, "host key for %s (%s) is unknown: the server offered %s %s; "+
			"to trust it, run with --host-key-check accept-new, or check the fingerprint and add the key with: ssh-keyscan -p %s %s >> %s",
			e.Host, e.Address, e.KeyType, e.Fingerprint, port, host, e.KnownHosts)
	case HostKeyChanged:
		var want []string
		for _, k := range e.Known {
			want = append(want, fmt.Sprintf("%s %s (%s:%d)", k.Type, k.Fingerprint, k.File, k.Line))
		}
		if e.Fingerprint != "" {
			fmt.Fprintf(&b, "host key for %s (%s) has CHANGED: the server offered %s %s but known_hosts has %s",
				e.Host, e.Address, e.KeyType, e.Fingerprint, strings.Join(want, ", "))
		} else {
			fmt.Fprintf(&b, "host key for %s (%s) has CHANGED: the server offers no key of the known type(s): known_hosts has %s",
				e.Host, e.Address, strings.Join(want, ", "))
		}
		fmt.Fprintf(&b, "; this could be an attack. If the change is expected, remove the old key with: ssh-keygen -R '%s'",
			knownhosts.Normalize(e.Address))
		if len(e.Known) > 0 {
			fmt.Fprintf(&b, " -f %s", e.Known[0].File)
		}
	default:
		fmt.Fprintf(&b, "host key for %s (%s) rejected", e.Host, e.Address)
	}
	return b.String()
}

func splitAddr(addr string) (host, port string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, "22"
	}
	return host, port
}

// hostKeys is the host key policy of one Dial, shared by all its hops.
type hostKeys struct {
	policy string
	files  []string // every known_hosts file read; new keys go to the first
	hashed bool     // write new entries hashed (HashKnownHosts)
	db     *knownhosts.HostKeyDB
}

// hostKeys reads the known_hosts files of the target: Config's, else the
// ssh config's UserKnownHostsFile (default ~/.ssh/known_hosts and
// known_hosts2); then GlobalKnownHostsFile (default
// /etc/ssh/ssh_known_hosts and ssh_known_hosts2) and the extra files,
// which are read but never written.
func (d *dialer) hostKeys(target hop) (*hostKeys, error) {
	files := d.cfg.KnownHostsFiles
	if len(files) == 0 {
		files = target.settings.UserKnownHostsFiles
	}
	files = append(files[:len(files):len(files)], target.settings.GlobalKnownHostsFiles...)
	files = append(files, d.cfg.ExtraKnownHostsFiles...)
	hk := &hostKeys{policy: d.cfg.HostKeyCheck, files: files, hashed: target.settings.HashKnownHosts}
	if hk.policy == Off {
		return hk, nil
	}
	// knownhosts refuses missing files; a missing file just knows no hosts.
	var existing []string
	var stamp strings.Builder
	for _, f := range hk.files {
		fi, err := os.Stat(f)
		if err == nil {
			existing = append(existing, f)
			fmt.Fprintf(&stamp, "%d\x00%d\x00", fi.Size(), fi.ModTime().UnixNano())
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if len(existing) == 0 {
		return hk, nil
	}
	key := strings.Join(existing, "\x00")
	if e, ok := knownHostsCache.Load(key); ok && e.(knownHostsEntry).stamp == stamp.String() {
		hk.db = e.(knownHostsEntry).db
		return hk, nil
	}
	db, err := knownhosts.NewDB(existing...)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	knownHostsCache.Store(key, knownHostsEntry{stamp: stamp.String(), db: db})
	hk.db = db
	return hk, nil
}

// knownHostsCache keeps the parsed known_hosts database of each set of
// files, so that dialling hundreds of hosts parses them once. A file that
// changed since (accept-new appends) has another size or time: it is read
// again and replaces the entry.
var knownHostsCache sync.Map // joined paths -> knownHostsEntry

type knownHostsEntry struct {
	stamp string // sizes and modification times of the files
	db    *knownhosts.HostKeyDB
}

// algorithms lists the key types known_hosts has for addr, so that the server
// presents a key we can check rather than another type it prefers.
func (hk *hostKeys) algorithms(addr string) []string {
	if hk.db == nil {
		return nil
	}
	return hk.db.HostKeyAlgorithms(addr)
}

func (hk *hostKeys) callback(h hop) ssh.HostKeyCallback {
	if hk.policy == Off {
		return ssh.InsecureIgnoreHostKey()
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := error(&xknownhosts.KeyError{}) // unknown, when no file exists yet
		if hk.db != nil {
			err = hk.db.HostKeyCallback()(hostname, remote, key)
		}
		if err == nil {
			return nil
		}
		var keyErr *xknownhosts.KeyError
		if !errors.As(err, &keyErr) {
			return err // a revoked key, for example
		}
		if len(keyErr.Want) > 0 {
			e := hk.newError(HostKeyChanged, h, hostname)
			e.KeyType, e.Fingerprint = key.Type(), ssh.FingerprintSHA256(key)
			e.Known = knownKeys(keyErr)
			return e
		}
		if hk.policy == Strict {
			e := hk.newError(HostKeyUnknown, h, hostname)
			e.KeyType, e.Fingerprint = key.Type(), ssh.FingerprintSHA256(key)
			return e
		}
		if err := appendKnownHost(hk.files[0], hostname, key, hk.hashed); err != nil {
			return fmt.Errorf("recording new host key: %w", err)
		}
		return nil
	}
}

func (hk *hostKeys) newError(kind HostKeyErrorKind, h hop, addr string) *HostKeyError {
	return &HostKeyError{Kind: kind, Host: h.name, Address: addr, KnownHosts: hk.files[0]}
}

// offersNoKnownType converts the handshake failure of a server that offers
// none of the key types known_hosts has for it into a HostKeyChanged error.
func (hk *hostKeys) offersNoKnownType(err error, h hop) error {
	var neg *ssh.AlgorithmNegotiationError
	if !errors.As(err, &neg) || neg.What != "host key" || hk.db == nil {
		return err
	}
	// Checking a key that matches nothing makes knownhosts list, with files
	// and lines, the keys it has for the host.
	var keyErr *xknownhosts.KeyError
	if !errors.As(hk.db.HostKeyCallback()(h.knownAs(), &net.TCPAddr{}, noKey{}), &keyErr) || len(keyErr.Want) == 0 {
		return err
	}
	e := hk.newError(HostKeyChanged, h, h.knownAs())
	e.Known = knownKeys(keyErr)
	return e
}

func knownKeys(keyErr *xknownhosts.KeyError) []KnownKey {
	var out []KnownKey
	for _, w := range keyErr.Want {
		out = append(out, KnownKey{Type: w.Key.Type(), Fingerprint: ssh.FingerprintSHA256(w.Key), File: w.Filename, Line: w.Line})
	}
	return out
}

// noKey is a public key that matches no known_hosts entry.
type noKey struct{}

func (noKey) Type() string                        { return "none" }
func (noKey) Marshal() []byte                     { return []byte("orch: no key") }
func (noKey) Verify([]byte, *ssh.Signature) error { return errors.New("no key") }

// knownHostsMu serialises appends, so parallel dials never interleave
// lines. A host reached twice at once (two Conns, or two runs) is recorded
// once: the file is read again under the lock before a line is added.
var knownHostsMu sync.Mutex

func appendKnownHost(path, hostname string, key ssh.PublicKey, hashed bool) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	if hashed {
		line = knownhosts.Line([]string{xknownhosts.HashHostname(knownhosts.Normalize(hostname))}, key) + "\n"
	}
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	if known, err := xknownhosts.New(path); err == nil && known(hostname, &net.TCPAddr{}, key) == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	// Do not glue our line onto a last line that lacks its newline.
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	_, err = f.WriteString(line)
	return err
}
