package dockerconn

import (
	"context"

	"github.com/orch-dev/orch/engine/conn"
)

// The docker connection: the host's address is the container's name.
func init() {
	conn.Register("docker", func(ctx context.Context, req conn.DialRequest) (conn.Conn, error) {
		return Dial(ctx, req.Host.Address, Options{Host: req.DockerHost, User: req.Host.User})
	})
}
