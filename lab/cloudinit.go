package lab

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/orch-dev/orch/internal/shell"
)

// Cloud-init support. Lab machines have no cloud-init; the lab parses the
// user data itself, in Go, and turns it into a seed: files copied into the
// container before it starts plus a boot script that init.sh runs once,
// before sshd accepts connections. The supported subset:
//
//   - A "#!" script: run once, as root.
//   - "#cloud-config" YAML (optionally gzipped) with:
//     write_files: path, content, encoding (b64, base64, gz, gzip, gz+b64,
//     gzip+base64 and so on), permissions (octal string, default 0644),
//     owner ("user:group"), append; defer is accepted and has no effect.
//     runcmd: strings (shell lines) or lists (an argv, quoted for you), run
//     in order by one /bin/sh.
//     ssh_keys: {rsa,ecdsa,ed25519}_{private,public} become the host keys;
//     when any is given, sshd has only those.
//     ssh_authorized_keys: added to root's authorized_keys.
//
// Other keys (users, packages, hostname, ...) are ignored, and the boot log,
// /var/log/cloud-init-output.log, names them. MIME multi-part data is
// refused.

// cloudConfig is the part of #cloud-config that the lab reads.
type cloudConfig struct {
	WriteFiles        []writeFile       `yaml:"write_files"`
	RunCmd            []yaml.Node       `yaml:"runcmd"`
	SSHKeys           map[string]string `yaml:"ssh_keys"`
	SSHAuthorizedKeys []string          `yaml:"ssh_authorized_keys"`
}

type writeFile struct {
	Path        string     `yaml:"path"`
	Content     string     `yaml:"content"`
	Encoding    string     `yaml:"encoding"`
	Permissions octalValue `yaml:"permissions"`
	Owner       string     `yaml:"owner"`
	Append      bool       `yaml:"append"`
	Defer       bool       `yaml:"defer"`
}

// octalValue reads a mode as written ("0644", 0644, "644"), whatever YAML
// version would make of a leading zero.
type octalValue struct {
	mode int64
	set  bool
}

func (o *octalValue) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimPrefix(n.Value, "0o"), "0"), 8, 32)
	if n.Value == "0" {
		v, err = 0, nil
	}
	if err != nil || v < 0 || v > 0o7777 {
		return fmt.Errorf("permissions %q: want an octal mode such as 0644", n.Value)
	}
	o.mode, o.set = v, true
	return nil
}

var supportedKeys = []string{"write_files", "runcmd", "ssh_keys", "ssh_authorized_keys"}

var hostKeyTypes = []string{"rsa", "ecdsa", "ed25519"}

// parseUserData turns cloud-init user data into a seed. Empty data gives an
// empty seed.
func parseUserData(data []byte) (*seed, error) {
	s := &seed{}
	if len(bytes.TrimSpace(data)) == 0 {
		return s, nil
	}
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		var err error
		if data, err = gunzip(data); err != nil {
			return nil, fmt.Errorf("user data: %v", err)
		}
	}
	switch {
	case bytes.HasPrefix(data, []byte("#!")):
		s.script = data
		return s, nil
	case bytes.HasPrefix(data, []byte("Content-Type:")) || bytes.HasPrefix(data, []byte("MIME-Version:")):
		return nil, errors.New("user data: MIME multi-part is not supported by the lab; use #cloud-config or a #! script")
	case !bytes.HasPrefix(data, []byte("#cloud-config")):
		return nil, errors.New("user data: the lab supports #cloud-config and #! scripts only")
	}

	var all map[string]yaml.Node
	if err := yaml.Unmarshal(data, &all); err != nil {
		return nil, fmt.Errorf("user data: %v", err)
	}
	for k := range all {
		if !slices.Contains(supportedKeys, k) {
			s.ignored = append(s.ignored, k)
		}
	}
	slices.Sort(s.ignored)
	var cc cloudConfig
	if err := yaml.Unmarshal(data, &cc); err != nil {
		return nil, fmt.Errorf("user data: %v", err)
	}

	for i, wf := range cc.WriteFiles {
		if !strings.HasPrefix(wf.Path, "/") {
			return nil, fmt.Errorf("user data: write_files[%d]: path %q is not absolute", i, wf.Path)
		}
		content, err := decodeContent(wf.Content, wf.Encoding)
		if err != nil {
			return nil, fmt.Errorf("user data: write_files[%d] %s: %v", i, wf.Path, err)
		}
		mode := int64(0o644)
		if wf.Permissions.set {
			mode = wf.Permissions.mode
		}
		owner := wf.Owner
		if owner == "root" || owner == "root:root" {
			owner = ""
		}
		s.files = append(s.files, seedFile{path: wf.Path, data: content, mode: mode, owner: owner, append: wf.Append})
	}

	for i, n := range cc.RunCmd {
		switch n.Kind {
		case yaml.ScalarNode:
			s.runcmd = append(s.runcmd, n.Value)
		case yaml.SequenceNode:
			var argv []string
			if err := n.Decode(&argv); err != nil {
				return nil, fmt.Errorf("user data: runcmd[%d]: %v", i, err)
			}
			for j, a := range argv {
				argv[j] = shell.Quote(a)
			}
			s.runcmd = append(s.runcmd, strings.Join(argv, " "))
		default:
			return nil, fmt.Errorf("user data: runcmd[%d]: want a string or a list of strings", i)
		}
	}

	for k, v := range cc.SSHKeys {
		typ, part, ok := strings.Cut(k, "_")
		if !ok || !slices.Contains(hostKeyTypes, typ) || (part != "private" && part != "public") {
			s.ignored = append(s.ignored, "ssh_keys."+k)
			continue
		}
		if s.hostKeys == nil {
			s.hostKeys = map[string][]byte{}
		}
		name := "ssh_host_" + typ + "_key"
		if part == "public" {
			name += ".pub"
		}
		s.hostKeys[name] = []byte(strings.TrimRight(v, "\n") + "\n")
	}
	for _, k := range cc.SSHAuthorizedKeys {
		if k = strings.TrimSpace(k); k != "" {
			s.authorizedKeys = append(s.authorizedKeys, k)
		}
	}
	return s, nil
}

func decodeContent(content, encoding string) ([]byte, error) {
	switch strings.ToLower(encoding) {
	case "", "text/plain":
		return []byte(content), nil
	case "b64", "base64":
		return base64.StdEncoding.DecodeString(strings.Join(strings.Fields(content), ""))
	case "gz", "gzip":
		return gunzip([]byte(content))
	case "gz+b64", "gz+base64", "gzip+b64", "gzip+base64":
		raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(content), ""))
		if err != nil {
			return nil, err
		}
		return gunzip(raw)
	}
	return nil, fmt.Errorf("unknown encoding %q", encoding)
}

func gunzip(data []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, 64<<20))
}
