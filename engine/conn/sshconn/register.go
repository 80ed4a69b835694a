package sshconn

import (
	"context"

	"github.com/orch-dev/orch/engine/conn"
)

func init() { conn.Register("ssh", dialHost) }

// dialHost maps an inventory host and the run's SSH settings onto Config.
// The host's own ssh args (ansible_ssh_common_args) and timeout beat the
// run's.
func dialHost(ctx context.Context, req conn.DialRequest) (conn.Conn, error) {
	h, o := req.Host, req.SSH
	cfg := Config{
		HostName:             h.Name,
		Address:              h.Address,
		Port:                 h.Port,
		User:                 h.User,
		Agent:                true,
		KnownHostsFiles:      o.KnownHosts,
		ExtraKnownHostsFiles: o.ExtraKnownHosts,
		HostKeyCheck:         o.HostKeyCheck,
		UseSSHConfig:         !o.NoSSHConfig,
		SSHConfigPath:        o.SSHConfig,
		ConnectTimeout:       o.ConnectTimeout,
		Warn:                 req.Warn,
		ProxyCommand:         h.SSH.ProxyCommand,
		ProxyJump:            h.SSH.ProxyJump,
	}
	if len(h.SSH.UserKnownHostsFiles) > 0 {
		cfg.KnownHostsFiles = h.SSH.UserKnownHostsFiles
	}
	if h.SSH.StrictHostKeyChecking != "" {
		cfg.HostKeyCheck = h.SSH.StrictHostKeyChecking
	}
	if h.ConnectTimeout > 0 {
		cfg.ConnectTimeout = h.ConnectTimeout
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
