package inventory

import "time"

// Host is one target machine and everything the engine needs to reach it.
type Host struct {
	Name       string // inventory name, unique
	Address    string // address to connect to (ssh_host / ansible_host); Name when unset
	Port       int    // ssh_port; 0 means the default (22 or ~/.ssh/config)
	User       string // ssh_user; "" means the default (~/.ssh/config or current user)
	Key        string // ssh_key: a private key file, offered before the ssh config's, as ssh -i
	Connection string // "ssh" (default), "local", "docker", "jail" or one an embedder registered
	// ConnectTimeout is ansible_timeout / ansible_ssh_timeout; 0 means the
	// run's --connect-timeout.
	ConnectTimeout time.Duration
	// SSH holds what ansible_ssh_common_args and its kin say that orch
	// honours (ProxyCommand, ProxyJump, known hosts files, host key policy).
	SSH SSHArgs
	// Become runs the host's tasks with privilege (become / ansible_become),
	// as BecomeUser ("" means root) through BecomeMethod ("sudo" when "",
	// or "doas"; any other value is one orch cannot become with, and tasks
	// that become on the host must fail).
	Become       bool
	BecomeUser   string
	BecomeMethod string
	// Unusable says why orch cannot connect to this host, naming the var
	// and its value (a winrm connection, an unrendered Jinja template);
	// "" when it can. Such a host loads, matches patterns and is listed, but
	// dialling it fails.
	Unusable string
	Groups   []string       // groups the host belongs to, directly or through children, sorted
	Vars     map[string]any // merged vars, in Ansible's precedence order
}

// NotCreated is the address of a placeholder host: one that a cloud call
// would create, standing in for it under --check. Roles applied to it are
// evaluated and their tasks reported as would-change, with no connection.
const NotCreated = "(known after create)"

// IsPlaceholder reports whether h stands for a machine not created yet.
func (h *Host) IsPlaceholder() bool { return h.Address == NotCreated }
