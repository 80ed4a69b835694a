package cloud

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// CloudConfigHeader is the first line of a cloud-init #cloud-config document.
const CloudConfigHeader = "#cloud-config"

// HostKey is an SSH host key made on the controller for a new machine, so
// that the first connection to it can be verified strictly.
type HostKey struct {
	Private string // OpenSSH PEM
	Public  string // authorized_keys format: "ssh-ed25519 AAAA…"
}

// NewHostKey generates a fresh ed25519 host key.
func NewHostKey() (HostKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return HostKey{}, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return HostKey{}, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return HostKey{}, err
	}
	return HostKey{
		Private: string(pem.EncodeToMemory(block)),
		Public:  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))),
	}, nil
}

// CloudConfig is user data that does nothing but install the key pair:
// cloud-init makes it the host's ed25519 key before sshd starts.
func (k HostKey) CloudConfig() string {
	var b strings.Builder
	b.WriteString(CloudConfigHeader + "\nssh_keys:\n  ed25519_private: |\n")
	for _, line := range strings.Split(strings.TrimSpace(k.Private), "\n") {
		fmt.Fprintf(&b, "    %s\n", line)
	}
	fmt.Fprintf(&b, "  ed25519_public: %s\n", k.Public)
	return b.String()
}
