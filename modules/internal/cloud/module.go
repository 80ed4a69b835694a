package cloud

import (
	"context"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
)

// Record hands machines to the engine as hosts, with their pinned host
// keys, and logs those this call created as "<createID>: created name
// (address)". The caller passes what Create returned even when it failed
// part way, so that those machines are known and can be cleaned up. pin
// says, for one machine, its host, its known_hosts line ("" when the key is
// not known) and whether this call created it.
func Record[M any](env *modules.Env, createID string, ms []M, pin func(M) (h *inventory.Host, knownHostsLine string, created bool)) ([]*inventory.Host, error) {
	hosts := make([]*inventory.Host, 0, len(ms))
	for _, m := range ms {
		h, line, created := pin(m)
		if err := env.Hosts.AddHost(h, line); err != nil {
			return hosts, err
		}
		if created {
			env.Logf("%s: created %s (%s)", createID, h.Name, h.Address)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// Delete is the body of a "<provider>.delete" call: it reads the ID of
// every host with id before doing anything, says under --check what it
// would delete, and otherwise deletes the machines with del and tells the
// engine they are gone. del is where the provider's client is made, so
// that --check needs no credentials.
func Delete(ctx context.Context, env *modules.Env, deleteID string, hosts []*inventory.Host, id func(*inventory.Host) (int, error), del func(ctx context.Context, ids []int) error) error {
	ids := make([]int, len(hosts))
	for i, h := range hosts {
		n, err := id(h)
		if err != nil {
			return err
		}
		ids[i] = n
	}
	if env.Check {
		for _, h := range hosts {
			env.Logf("check: %s would delete %s", deleteID, h.Name)
		}
		return nil
	}
	if err := del(ctx, ids); err != nil {
		return err
	}
	for _, h := range hosts {
		env.Hosts.RemoveHost(h.Name)
		env.Logf("%s: deleted %s", deleteID, h.Name)
	}
	return nil
}
