package sshconn

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

type agentKey struct {
	signer ssh.Signer
	cert   bool // the agent holds an OpenSSH certificate, not a plain key
}

// signers returns what the hop offers, in order: certificates
// (CertificateFile, and KEY-cert.pub beside each key) with their private
// keys, then the key files, then the agent's keys and certificates. Key
// files come before agent keys so that an explicitly chosen key is tried
// before sshd's MaxAuthTries runs out. With IdentitiesOnly, only agent
// keys matching a configured identity or certificate are offered, as ssh
// does.
func (d *dialer) signers(h hop) ([]ssh.Signer, []string, error) {
	var signers []ssh.Signer
	var offered []string
	seen := map[string]bool{}
	add := func(s ssh.Signer, from string) {
		k := string(s.PublicKey().Marshal())
		if !seen[k] {
			seen[k] = true
			signers = append(signers, s)
			offered = append(offered, from)
		}
	}
	var keys []ssh.Signer
	var keyFrom []string
	wanted := map[string]bool{} // public keys of the configured identities
	for i, path := range h.keyFiles {
		pem, err := os.ReadFile(path)
		if err != nil {
			if i < h.keysMust {
				return nil, nil, fmt.Errorf("key file: %w", err)
			}
			continue
		}
		if pub, err := os.ReadFile(path + ".pub"); err == nil {
			if k, _, _, _, err := ssh.ParseAuthorizedKey(pub); err == nil {
				wanted[string(k.Marshal())] = true
			}
		}
		s, err := ssh.ParsePrivateKey(pem)
		var needPass *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &needPass):
			if needPass.PublicKey != nil {
				wanted[string(needPass.PublicKey.Marshal())] = true
			}
			d.warnOnce(fmt.Sprintf("key %s is passphrase-protected; add it to ssh-agent to use it", path))
			continue
		case err != nil:
			if i < h.keysMust {
				return nil, nil, fmt.Errorf("key file %s: %w", path, err)
			}
			d.warnOnce(fmt.Sprintf("ignoring key %s: %v", path, err))
			continue
		}
		wanted[string(s.PublicKey().Marshal())] = true
		keys, keyFrom = append(keys, s), append(keyFrom, path)
	}
	var agentKeys []agentKey
	if d.cfg.Agent && h.agentSock != "none" {
		agentKeys = d.agentSigners(h.agentSock)
	}

	// Certificates first, each with the private key it certifies.
	for _, path := range h.certFiles {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
		cert, ok := pub.(*ssh.Certificate)
		if err != nil || !ok {
			d.warnOnce(fmt.Sprintf("ignoring certificate %s: not an OpenSSH certificate", path))
			continue
		}
		wanted[string(cert.Key.Marshal())] = true
		var key ssh.Signer
		for _, k := range keys {
			if bytes.Equal(k.PublicKey().Marshal(), cert.Key.Marshal()) {
				key = k
			}
		}
		for _, k := range agentKeys {
			if key == nil && !k.cert && bytes.Equal(k.signer.PublicKey().Marshal(), cert.Key.Marshal()) {
				key = k.signer
			}
		}
		if key == nil {
			d.warnOnce(fmt.Sprintf("certificate %s: its private key is neither in a key file nor in ssh-agent", path))
			continue
		}
		cs, err := ssh.NewCertSigner(cert, key)
		if err != nil {
			d.warnOnce(fmt.Sprintf("certificate %s: %v", path, err))
			continue
		}
		add(cs, "certificate "+path)
	}
	for i, k := range keys {
		add(k, keyFrom[i])
	}
	for _, k := range agentKeys {
		pub := k.signer.PublicKey()
		underlying := pub
		if c, ok := pub.(*ssh.Certificate); ok {
			underlying = c.Key
		}
		if h.identitiesOnly && !wanted[string(underlying.Marshal())] {
			continue
		}
		what := "agent key "
		if k.cert {
			what = "agent certificate "
		}
		add(k.signer, what+ssh.FingerprintSHA256(underlying))
	}
	return signers, offered, nil
}

// agentSigners returns the keys and certificates of the ssh-agent at sock
// (IdentityAgent), or at $SSH_AUTH_SOCK when sock is "" or SSH_AUTH_SOCK.
// The agent connection only needs to live through the handshake, so each
// Dial opens its own; a broken agent is a warning, not an error.
func (d *dialer) agentSigners(sock string) []agentKey {
	if d.agentKeys != nil {
		return d.agentKeys
	}
	if sock == "" || sock == "SSH_AUTH_SOCK" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	} else if len(sock) > 1 && sock[0] == '$' {
		sock = os.Getenv(sock[1:])
	}
	if sock == "" {
		return nil
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		d.warnOnce(fmt.Sprintf("ssh-agent at %s: %v", sock, err))
		return nil
	}
	d.agentConn = c
	signers, err := agent.NewClient(c).Signers()
	if err != nil {
		d.warnOnce(fmt.Sprintf("ssh-agent at %s: %v", sock, err))
		return nil
	}
	for _, s := range signers {
		_, isCert := s.PublicKey().(*ssh.Certificate)
		d.agentKeys = append(d.agentKeys, agentKey{signer: s, cert: isCert})
	}
	return d.agentKeys
}
