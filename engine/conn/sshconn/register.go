package sshconn

import (
	"context"
	"os"
	"path/filepath"

	"github.com/orch-dev/orch/engine/conn"
)

func init() { conn.Register("ssh", dialHost) }

// dialHost maps an inventory host and the run's SSH settings onto Config.
func dialHost(ctx context.Context, req conn.DialRequest) (conn.Conn, error) {
	h, o := req.Host, req.SSH
	known := o.KnownHosts
	if len(known) == 0 {
		home, _ := os.UserHomeDir()
		known = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	cfg := Config{
		HostName:        h.Name,
		Address:         h.Address,
		Port:            h.Port,
		User:            h.User,
		Agent:           true,
		KnownHostsFiles: known,
		HostKeyCheck:    o.HostKeyCheck,
		UseSSHConfig:    !o.NoSSHConfig,
		SSHConfigPath:   o.SSHConfig,
		ConnectTimeout:  o.ConnectTimeout,
		Warn:            req.Warn,
	}
	if h.Key != "" {
		cfg.KeyFiles = []string{h.Key}
	} else {
		cfg.KeyFiles = o.IdentityFiles
	}
	return Dial(ctx, cfg)
}

// Alive reports whether the connection still stands: false once the
// transport ended (a reboot, a missed keepalive) or Close was called.
func (c *Conn) Alive() bool {
	select {
	case <-c.gone:
		return false
	case <-c.done:
		return false
	default:
		return true
	}
}
