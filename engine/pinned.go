package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// <state>/known_hosts holds the host keys orch pinned for machines it
// created; runs trust it beside the known_hosts files. A key orch
// generated and injected through cloud-init carries the comment
// injectedMark until the first connection replaces it (hostkey.go).

const injectedMark = "orch-injected"

func (r *run) pinnedKeysFile() string { return filepath.Join(r.state, "known_hosts") }

// pinKey records the host key orch generated for a machine it created. It
// replaces what was pinned for the same address: the cloud gave that
// address to this new machine, so a key of an earlier one must no longer
// be trusted there.
func (r *run) pinKey(line string) error {
	r.pinMu.Lock()
	defer r.pinMu.Unlock()
	l, ok := parseKnownLine([]byte(line))
	if !ok {
		return fmt.Errorf("pinning host key: not a known_hosts line: %q", line)
	}
	if err := os.MkdirAll(r.state, 0o700); err != nil {
		return fmt.Errorf("pinning host key: %w", err)
	}
	old, err := os.ReadFile(r.pinnedKeysFile())
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("pinning host key: %w", err)
	}
	var out bytes.Buffer
	for _, existing := range bytes.SplitAfter(old, []byte("\n")) {
		if e, ok := parseKnownLine(existing); ok && sameHosts(e, l) {
			continue
		}
		out.Write(existing)
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	out.WriteString(strings.TrimSpace(line) + " " + injectedMark + "\n")
	if err := writeFileAtomic(r.pinnedKeysFile(), out.Bytes()); err != nil {
		return fmt.Errorf("pinning host key: %w", err)
	}
	return nil
}

// sameHosts reports whether two lines name a host in common.
func sameHosts(a, b knownLine) bool {
	for _, h := range b.hosts {
		if a.names(h) {
			return true
		}
	}
	return false
}

// knownLine is one parsed known_hosts line.
type knownLine struct {
	hosts   []string // patterns as written
	key     ssh.PublicKey
	comment string
}

func parseKnownLine(line []byte) (knownLine, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] == '#' || line[0] == '@' {
		return knownLine{}, false
	}
	hosts, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return knownLine{}, false
	}
	key, comment, _, _, err := ssh.ParseAuthorizedKey(rest)
	if err != nil {
		return knownLine{}, false
	}
	return knownLine{hosts: strings.Split(string(hosts), ","), key: key, comment: comment}, true
}

func (l knownLine) names(addr string) bool {
	for _, h := range l.hosts {
		if h == addr {
			return true
		}
	}
	return false
}

// injectedKey returns the injected key pinned for addr ("host:port"), if
// its first connection has not replaced it yet.
func (r *run) injectedKey(addr string) (ssh.PublicKey, bool) {
	r.pinMu.Lock()
	defer r.pinMu.Unlock()
	b, err := os.ReadFile(r.pinnedKeysFile())
	if err != nil {
		return nil, false
	}
	norm := knownhosts.Normalize(addr)
	var found ssh.PublicKey
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l, ok := parseKnownLine(sc.Bytes()); ok && l.names(norm) {
			found = nil // a later line for the address wins
			if l.comment == injectedMark {
				found = l.key
			}
		}
	}
	return found, found != nil
}

// repin replaces the key old of addr with key in the pinned keys and in
// the known_hosts files the run was given, where a line names addr with
// exactly the old key (the lab's, say, which recorded the injected key),
// so that no file orch trusts still holds the key that was in the
// machine's metadata. mark is the comment of the new pinned line.
func (r *run) repin(addr string, old, key ssh.PublicKey, mark string) error {
	r.pinMu.Lock()
	defer r.pinMu.Unlock()
	norm := knownhosts.Normalize(addr)
	pinned := knownhosts.Line([]string{norm}, key)
	if mark != "" {
		pinned += " " + mark
	}
	if err := rewriteKnownHosts(r.pinnedKeysFile(), norm, old, pinned); err != nil {
		return fmt.Errorf("pinning the new host key of %s: %w", addr, err)
	}
	for _, f := range r.opts.SSH.KnownHosts {
		if err := rewriteKnownHosts(f, norm, old, knownhosts.Line([]string{norm}, key)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("replacing the old host key of %s in %s: %w", addr, f, err)
		}
	}
	return nil
}

// rewriteKnownHosts atomically replaces every line of path that names addr
// with the key old by with (appended when path is orch's own and holds
// none). Other lines stay as they are.
func rewriteKnownHosts(path, addr string, old ssh.PublicKey, with string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	replaced := false
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if l, ok := parseKnownLine(line); ok && l.names(addr) && bytes.Equal(l.key.Marshal(), old.Marshal()) {
			if !replaced {
				out.WriteString(with + "\n")
				replaced = true
			}
			continue
		}
		out.Write(line)
		if !bytes.HasSuffix(line, []byte("\n")) {
			out.WriteByte('\n')
		}
	}
	if !replaced {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, out.Bytes()); err != nil {
		return err
	}
	return os.Chmod(path, fi.Mode().Perm())
}
