package inventory

// NotCreated is the address of a placeholder host: a machine that a cloud
// call would create, returned under --check, where nothing is created.
const NotCreated = "(known after create)"

// Host is one target machine and everything the engine needs to reach it.
type Host struct {
	Name       string // inventory name, unique
	Address    string // address to connect to (ssh_host / ansible_host); Name when unset
	Port       int    // ssh_port; 0 means the default (22 or ~/.ssh/config)
	User       string // ssh_user; "" means the default (~/.ssh/config or current user)
	Key        string // ssh_key: path to a private key file
	Connection string // "ssh" (default), "local", "docker", "jail" or one an embedder registered
	// Become runs the host's tasks with privilege (become / ansible_become),
	// as BecomeUser ("" means root) through BecomeMethod ("sudo" when "",
	// or "doas").
	Become       bool
	BecomeUser   string
	BecomeMethod string
	Groups       []string       // groups the host belongs to, directly or through children, sorted
	Vars         map[string]any // merged vars: all < parent groups < child groups < host
}
