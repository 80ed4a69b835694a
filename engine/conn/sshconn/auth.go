package sshconn

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// signers loads the hop's private keys, then adds the agent's keys. Key
// files come first so that an explicitly chosen key is tried before sshd's
// MaxAuthTries runs out on agent keys.
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
	for _, path := range h.keyFiles {
		pem, err := os.ReadFile(path)
		if err != nil {
			if h.keysMust {
				return nil, nil, fmt.Errorf("key file: %w", err)
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(pem)
		var needPass *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &needPass):
			d.warnOnce("pass:"+path, fmt.Sprintf("key %s is passphrase-protected; add it to ssh-agent to use it", path))
			continue
		case err != nil:
			if h.keysMust {
				return nil, nil, fmt.Errorf("key file %s: %w", path, err)
			}
			d.warnOnce("bad:"+path, fmt.Sprintf("ignoring key %s: %v", path, err))
			continue
		}
		add(s, path)
	}
	if d.cfg.Agent {
		for _, s := range d.agentSigners() {
			add(s, "agent key "+ssh.FingerprintSHA256(s.PublicKey()))
		}
	}
	return signers, offered, nil
}

// agentSigners returns the keys of the ssh-agent at $SSH_AUTH_SOCK. The agent
// connection only needs to live through the handshake, so each Dial opens
// its own; a broken agent is a warning, not an error.
func (d *dialer) agentSigners() []ssh.Signer {
	if d.agentKeys != nil {
		return d.agentKeys
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		d.warnOnce("agent", fmt.Sprintf("ssh-agent at %s: %v", sock, err))
		return nil
	}
	d.agentConn = c
	keys, err := agent.NewClient(c).Signers()
	if err != nil {
		d.warnOnce("agent", fmt.Sprintf("ssh-agent at %s: %v", sock, err))
		return nil
	}
	d.agentKeys = keys
	return keys
}
