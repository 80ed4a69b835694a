package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/orch-dev/orch/engine/conn"
	_ "github.com/orch-dev/orch/engine/conn/dockerconn" // the docker connection
	_ "github.com/orch-dev/orch/engine/conn/jailconn"   // the jail connection
	_ "github.com/orch-dev/orch/engine/conn/sshconn"    // the ssh connection
	"github.com/orch-dev/orch/inventory"
)

// UnreachableError is the error of a host that could not be reached.
type UnreachableError = conn.UnreachableError

// SSHOptions are the run-wide SSH settings.
type SSHOptions = conn.SSHSettings

// dialHost connects by the host's connection type (ssh when unset),
// through the dialers registered with conn.Register. Keys orch pinned for
// hosts it created are trusted alongside the known_hosts files, and the
// run's connections share what their dialers keep in r.shared.
func (r *run) dialHost(ctx context.Context, h *inventory.Host) (conn.Conn, error) {
	if h.Unusable != "" {
		return nil, fmt.Errorf("%s: orch cannot connect to this host: %s", h.Name, h.Unusable)
	}
	name := h.Connection
	if name == "" {
		name = "ssh"
	}
	dial, ok := conn.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%s: connection %q is not one orch has (it has %s)", h.Name, name, strings.Join(conn.Names(), ", "))
	}
	settings := r.opts.SSH
	pinned := r.pinnedKeysFile()
	settings.ExtraKnownHosts = append(settings.ExtraKnownHosts[:len(settings.ExtraKnownHosts):len(settings.ExtraKnownHosts)], pinned)
	return dial(ctx, conn.DialRequest{Host: h, SSH: settings, DockerHost: r.opts.DockerHost, Warn: r.warn, Parent: r.parent, Shared: &r.shared})
}
