package digitalocean

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

// hostKey is an SSH host key made on the controller for a new droplet, so
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

const cloudConfigHeader = "#cloud-config"

// maxUserData is the API's limit on user_data.
const maxUserData = 64 << 10

// withHostKey returns the user data to send for a new droplet and the host
// public key to pin for it. The rule:
//
//   - empty user data becomes a cloud-config that only installs a fresh
//     ed25519 host key (ssh_keys.ed25519_private and ed25519_public);
//   - a "#cloud-config" document gets the fresh key merged into its
//     ssh_keys mapping, keeping everything else; if it sets
//     ssh_keys.ed25519_public itself, that key is pinned and the user data
//     is sent unchanged;
//   - any other user data (a shell script, MIME multi-part, #include) is
//     refused: orch could not pin the host key.
func withHostKey(userData string, newKey func() (hostKey, error)) (data, pinned string, err error) {
	if strings.TrimSpace(userData) == "" {
		k, err := newKey()
		if err != nil {
			return "", "", err
		}
		var b strings.Builder
		b.WriteString(cloudConfigHeader + "\nssh_keys:\n  ed25519_private: |\n")
		for _, line := range strings.Split(strings.TrimSpace(k.private), "\n") {
			fmt.Fprintf(&b, "    %s\n", line)
		}
		fmt.Fprintf(&b, "  ed25519_public: %s\n", k.public)
		return b.String(), k.public, nil
	}
	first, rest, _ := strings.Cut(userData, "\n")
	if strings.TrimSpace(first) != cloudConfigHeader {
		return "", "", errors.New("user_data must be empty or a #cloud-config document, so that the droplet's SSH host key can be pinned")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(rest), &doc); err != nil {
		return "", "", fmt.Errorf("user_data is not valid YAML: %w", err)
	}
	if doc.Kind == 0 { // an empty document
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return "", "", errors.New("user_data: the #cloud-config document must be a mapping")
	}
	keys := mapValue(root, "ssh_keys")
	switch {
	case keys == nil:
		keys = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		root.Content = append(root.Content, scalar("ssh_keys"), keys)
	case keys.Kind == yaml.ScalarNode && keys.Tag == "!!null":
		*keys = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	case keys.Kind != yaml.MappingNode:
		return "", "", errors.New("user_data: ssh_keys must be a mapping")
	}
	if pub := mapValue(keys, "ed25519_public"); pub != nil {
		if pub.Kind != yaml.ScalarNode || strings.TrimSpace(pub.Value) == "" {
			return "", "", errors.New("user_data: ssh_keys.ed25519_public must be a public key")
		}
		return userData, strings.TrimSpace(pub.Value), nil
	}
	if mapValue(keys, "ed25519_private") != nil {
		return "", "", errors.New("user_data: ssh_keys.ed25519_private is set without ed25519_public, so the host key cannot be pinned")
	}
	k, err := newKey()
	if err != nil {
		return "", "", err
	}
	priv := scalar(k.private)
	priv.Style = yaml.LiteralStyle
	keys.Content = append(keys.Content, scalar("ed25519_private"), priv, scalar("ed25519_public"), scalar(k.public))
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", "", err
	}
	if err := enc.Close(); err != nil {
		return "", "", err
	}
	return cloudConfigHeader + "\n" + b.String(), k.public, nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}
