package cloud

import "context"

// MachineSpec is what a cloud API call asks for when it creates an instance.
type MachineSpec struct {
	Name     string   // the instance label (Linode) or droplet name (DigitalOcean)
	Image    string   // the image named in the request, recorded for the API's answers
	Tags     []string // tags from the request
	UserData []byte   // decoded cloud-init user data, if any (write_files, runcmd, ssh_keys)
	SSHKeys  []string // authorized public keys to install for root
	// Key names the API object the machine belongs to ("linode/1003"). A
	// start that a restart of the cloud interrupted is started again with
	// the same key: a machine left over from the first try, with this key,
	// is replaced.
	Key string
}

// Machine is a started lab machine.
type Machine struct {
	ID      string // backend id (the docker container name in the lab)
	Address string // IPv4 address on the lab network
}

// Machines starts and removes the real machines behind the lab cloud. The lab
// package implements it with docker containers; tests may use a fake.
type Machines interface {
	Start(ctx context.Context, spec MachineSpec) (Machine, error)
	Remove(ctx context.Context, id string) error
	// Rename gives the machine a new name (hostname and label) without restarting it.
	Rename(ctx context.Context, id, name string) error
	// AssignIP moves the fixed address ip to machine id, taking it from any
	// machine that holds it; id "" unassigns it.
	AssignIP(ctx context.Context, ip, id string) error
	// ReservedIPs lists the fixed addresses the lab network keeps for reserved IPs.
	ReservedIPs() []string
}
