package cloud

import (
	"context"
	"fmt"
	"strings"

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
		if h.IsPlaceholder() {
			continue // only under --check: nothing was created
		}
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

// CleanUp is how a create call that failed part way undoes its own part
// before the plan's undos run: it deletes the machines this call made
// (created), tells the engine they are gone, and returns the failure with
// what it did. Machines that existed before the call are left alone.
func CleanUp[M any](ctx context.Context, env *modules.Env, createID string, ms []M, failure error,
	made func(M) (h *inventory.Host, id int, created bool), del func(ctx context.Context, ids []int) error) error {
	var ids []int
	var names []string
	for _, m := range ms {
		if h, id, created := made(m); created {
			ids = append(ids, id)
			names = append(names, h.Name)
		}
	}
	if len(ids) == 0 {
		return failure
	}
	// The run may be ending (Ctrl-C): the clean-up still gets its chance.
	ctx = context.WithoutCancel(ctx)
	if err := del(ctx, ids); err != nil {
		return fmt.Errorf("%w; deleting the machines it had made (%s) failed too: %v", failure, strings.Join(names, ", "), err)
	}
	for _, n := range names {
		env.Hosts.RemoveHost(n)
		env.Logf("%s: deleted %s, which it had made before it failed", createID, n)
	}
	return fmt.Errorf("%w (deleted the machines it had made: %s)", failure, strings.Join(names, ", "))
}

// Placeholders stands in, under --check, for the machines a create call
// would make: hosts with their names and tags, and the address
// inventory.NotCreated, which the engine reports as "would change (host
// not created yet)" and checks report as "would check".
func Placeholders(env *modules.Env, createID string, names []string, existing map[string]*inventory.Host, tags []string) ([]*inventory.Host, error) {
	var hosts []*inventory.Host
	for _, n := range names {
		if h, ok := existing[n]; ok {
			hosts = append(hosts, h)
			continue
		}
		env.Logf("check: %s would create %s", createID, n)
		h := Host(n, inventory.NotCreated, tags, "", 0)
		if err := env.Hosts.AddHost(h, ""); err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}
