package conn_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/engine/conn/sshconn"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules/file"
	"github.com/orch-dev/orch/testkit/sshdtest"
)

// bastion is the connection the program already holds to its bastion
// host, and tunnels counts the connections made through it.
var (
	bastion atomic.Pointer[ssh.Client]
	tunnels atomic.Int64
)

// A program's own connection type registers in init(), as orch's do;
// hosts select it with their connection var. This one reaches hosts over
// SSH through the bastion: it starts from the Config the ssh connection
// would dial (ssh config, known_hosts, keys, the run's settings) and
// changes only how the TCP connection is made.
func init() {
	conn.Register("bastion", func(ctx context.Context, req conn.DialRequest) (conn.Conn, error) {
		b := bastion.Load()
		if b == nil {
			return nil, &conn.UnreachableError{Host: req.Host.Name, Address: req.Host.Address, Err: errors.New("no connection to the bastion")}
		}
		cfg := sshconn.ConfigFor(req)
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			tunnels.Add(1)
			return b.DialContext(ctx, network, addr)
		}
		return sshconn.Dial(ctx, cfg)
	})
}

// dialBastion is how the program would have reached its bastion.
func dialBastion(h *sshdtest.Host, f *sshdtest.Fleet) (*ssh.Client, error) {
	key, err := os.ReadFile(f.ClientKey)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return nil, err
	}
	hostKeys, err := knownhosts.New(f.KnownHosts)
	if err != nil {
		return nil, err
	}
	return ssh.Dial("tcp", h.Addr(), &ssh.ClientConfig{User: f.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hostKeys})
}

// Register a connection type from Go: hosts reached through a bastion the
// program already holds an *ssh.Client for.
func ExampleRegister() {
	dir, err := os.MkdirTemp("", "orch-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	fleet, err := sshdtest.StartFleet(context.Background(), filepath.Join(dir, "sshd"), 3, sshdtest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fleet.Stop()
	b, err := dialBastion(fleet.Hosts[0], fleet)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	bastion.Store(b)
	defer bastion.Store(nil)
	tunnels.Store(0)

	var hosts []*inventory.Host
	for _, h := range fleet.Hosts[1:] {
		hosts = append(hosts, &inventory.Host{Name: h.Name, Address: h.IP, Port: h.Port, User: fleet.User, Key: fleet.ClientKey, Connection: "bastion"})
	}
	var mu sync.Mutex
	done := map[string]string{}
	opts := engine.ConvergeOptions{
		Options: engine.Options{
			StateDir: filepath.Join(dir, "state"),
			SSH:      engine.SSHOptions{KnownHosts: []string{fleet.KnownHosts}, HostKeyCheck: "strict", NoSSHConfig: true},
			OnEvent: func(e engine.Event) {
				if e.Event == "host_done" {
					mu.Lock()
					done[e.Host] = string(e.Status)
					mu.Unlock()
				}
			},
		},
		PerHost: func(h *inventory.Host) ([]engine.Task, error) {
			return []engine.Task{{Args: &file.File{Path: filepath.Join(dir, h.Name), State: "directory"}}}, nil
		},
	}
	rep, err := engine.Converge(context.Background(), hosts, nil, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("h2:", done["h2"], "h3:", done["h3"])
	fmt.Println("changed:", rep.Summary.Changed, "of", rep.Summary.Hosts)
	fmt.Println("connections through the bastion:", tunnels.Load())
	// Output:
	// h2: changed h3: changed
	// changed: 2 of 2
	// connections through the bastion: 2
}
