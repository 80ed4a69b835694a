package linode

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// hostKey is an SSH host key made on the controller for a new instance, so
// that the first connection to it can be verified strictly.
type hostKey struct {
	private string // OpenSSH PEM
	public  string // authorized_keys format: "ssh-ed25519 AAAA…"
}

func newHostKey() (hostKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return hostKey{}, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return hostKey{}, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return hostKey{}, err
	}
	return hostKey{
		private: string(pem.EncodeToMemory(block)),
		public:  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))),
	}, nil
}

// cloudConfig is the instance's user data: cloud-init installs the key pair
// as the host's ed25519 key before sshd starts.
func (k hostKey) cloudConfig() string {
	var b strings.Builder
	b.WriteString("#cloud-config\nssh_keys:\n  ed25519_private: |\n")
	for _, line := range strings.Split(strings.TrimSpace(k.private), "\n") {
		fmt.Fprintf(&b, "    %s\n", line)
	}
	fmt.Fprintf(&b, "  ed25519_public: %s\n", k.public)
	return b.String()
}

// randomPassword is a root password nobody knows: the API wants one with an
// image, and access goes through authorized keys.
func randomPassword() string {
	return "Orch-" + rand.Text() + "-" + rand.Text()
}
