package digitalocean

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/orch-dev/orch/modules/internal/cloud"
)

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
func withHostKey(userData string, newKey func() (cloud.HostKey, error)) (data, pinned string, err error) {
	if strings.TrimSpace(userData) == "" {
		k, err := newKey()
		if err != nil {
			return "", "", err
		}
		return k.CloudConfig(), k.Public, nil
	}
	first, rest, _ := strings.Cut(userData, "\n")
	if strings.TrimSpace(first) != cloud.CloudConfigHeader {
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
	priv := scalar(k.Private)
	priv.Style = yaml.LiteralStyle
	keys.Content = append(keys.Content, scalar("ed25519_private"), priv, scalar("ed25519_public"), scalar(k.Public))
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", "", err
	}
	if err := enc.Close(); err != nil {
		return "", "", err
	}
	return cloud.CloudConfigHeader + "\n" + b.String(), k.Public, nil
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
