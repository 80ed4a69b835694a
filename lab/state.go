package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/orch-dev/orch/lab/internal/atomicfile"
	"github.com/orch-dev/orch/lab/internal/flock"
)

// Files in the lab state folder.
const (
	stateFile      = "lab.json"         // labState
	tokensFile     = "tokens.json"      // cloud API tokens, 0600
	cloudFile      = "cloud.json"       // cloudProcess, written by ServeCloud
	cloudLog       = "cloud.log"        // the cloud process's output
	keyFile        = "id_ed25519"       // the lab's SSH client key (and .pub)
	knownHostsFile = "known_hosts"      // every lab machine's host key, by address
	hostKeysDir    = "hostkeys"         // default hosts' host keys, kept across re-creation
	reservedFile   = "reserved.json"    // reserved IP -> container ID
	inventoryYAML  = "inventory.yaml"   // for users: an Ansible YAML inventory of the lab
	inventoryINI   = "inventory.ini"    // the same as INI
	lockFile       = ".lock"            // serialises short state edits across processes
	upLockFile     = ".up.lock"         // serialises Up and Down
	cloudStateFile = "cloud-state.json" // the lab cloud's API objects, 0600 (see cloud.Open)
	labelLab       = "dev.orch.lab"     // container and network label: the lab's prefix
	labelGroups    = "dev.orch.lab.groups"
	labelKind      = "dev.orch.lab.kind" // "default" (topology) or "cloud"
	labelImage     = "dev.orch.lab.image"
	labelKey       = "dev.orch.lab.key"   // a cloud machine's MachineSpec.Key
	labelState     = "dev.orch.lab.state" // network label: the lab's state folder
)

// labState is the lab's durable description, written by Up.
type labState struct {
	Prefix  string `json:"prefix"`  // container names are <prefix>-<host>; the network is <prefix>
	Network string `json:"network"` // docker network name
	Subnet  string `json:"subnet"`  // e.g. 172.30.0.0/24
	Image   string `json:"image"`   // the lab image tag machines start from
	Seeded  bool   `json:"seeded"`  // the name servers were created in the lab cloud
}

type tokens struct {
	Linode       string `json:"linode"`
	DigitalOcean string `json:"digitalocean"`
}

// ErrNotUp reports that a state dir holds no lab.
var ErrNotUp = errors.New("the lab is not up (run `orch lab up`)")

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

func writeJSON(path string, v any, mode os.FileMode) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), mode)
}

// writeFileAtomic replaces path so that readers in other processes never
// see half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ensureKey returns the ed25519 key at path, generating and saving it (with
// path.pub) the first time.
func ensureKey(path, comment string) (ssh.Signer, error) {
	if data, err := os.ReadFile(path); err == nil {
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		return signer, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	pub := authorizedLine(signer.PublicKey(), comment)
	if err := writeFileAtomic(path+".pub", []byte(pub+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return signer, nil
}

func authorizedLine(k ssh.PublicKey, comment string) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
}

// lockState takes the lab's cross-process lock.
func lockState(ctx context.Context, dir string) (func(), error) {
	return flock.Lock(ctx, filepath.Join(dir, lockFile))
}

// setKnownHosts replaces the known_hosts entries of addr with keys (none
// removes them). Lab entries are plain addresses, never hashed, so they can
// be found again. The caller holds the state lock.
func setKnownHosts(dir, addr string, keys []ssh.PublicKey) error {
	path := filepath.Join(dir, knownHostsFile)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	host := knownhosts.Normalize(net.JoinHostPort(addr, "22"))
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) > 0 && slices.Contains(strings.Split(fields[0], ","), host) {
			continue
		}
		out.WriteString(line + "\n")
	}
	for _, k := range keys {
		out.WriteString(knownhosts.Line([]string{host}, k) + "\n")
	}
	if bytes.Equal(out.Bytes(), data) {
		return nil
	}
	return writeFileAtomic(path, out.Bytes(), 0o644)
}

// parsePublicKeys reads authorized_keys-format lines (as in *.pub files).
func parsePublicKeys(data []byte) []ssh.PublicKey {
	var keys []ssh.PublicKey
	for len(bytes.TrimSpace(data)) > 0 {
		k, _, _, rest, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			break
		}
		keys = append(keys, k)
		data = rest
	}
	return keys
}
