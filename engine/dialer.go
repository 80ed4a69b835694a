package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/orch-dev/orch/engine/conn"
	_ "github.com/orch-dev/orch/engine/conn/dockerconn" // the docker connection
	_ "github.com/orch-dev/orch/engine/conn/sshconn"    // the ssh connection
	"github.com/orch-dev/orch/inventory"
)

// UnreachableError is the error of a host that could not be reached.
type UnreachableError = conn.UnreachableError

// SSHOptions are the run-wide SSH settings.
type SSHOptions = conn.SSHSettings

// DefaultDialer connects by each host's connection type (ssh when unset),
// through the dialers registered with conn.Register. Keys orch pinned for
// hosts it created (pinnedKeys) are trusted alongside the known_hosts files.
// parent reaches another host's connection, for connections layered on one.
func DefaultDialer(o SSHOptions, pinnedKeys string, warn func(string), parent func(context.Context, string) (conn.Conn, error)) func(context.Context, *inventory.Host) (conn.Conn, error) {
	return func(ctx context.Context, h *inventory.Host) (conn.Conn, error) {
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
		settings := o
		if pinnedKeys != "" {
			settings.ExtraKnownHosts = append(settings.ExtraKnownHosts[:len(settings.ExtraKnownHosts):len(settings.ExtraKnownHosts)], pinnedKeys)
		}
		return dial(ctx, conn.DialRequest{Host: h, SSH: settings, Warn: warn, Parent: parent})
	}
}
