package sshconn

import (
	"context"

	"github.com/orch-dev/orch/engine/conn"
)

func init() { conn.Register("ssh", dialHost) }

// dialHost is the ssh connection: the host's Config, dialled.
func dialHost(ctx context.Context, req conn.DialRequest) (conn.Conn, error) {
	return Dial(ctx, ConfigFor(req))
}

// jumpPoolKey is the key of a run's JumpPool in conn.Shared.
type jumpPoolKey struct{}

// ConfigFor maps an inventory host and the run's SSH settings onto the
// Config the ssh connection dials: the host's own ssh args
// (ansible_ssh_common_args) and timeout beat the run's, and the run's
// connections share their jump hosts. A dialer of its own starts from it
// and changes what it needs, such as DialContext.
func ConfigFor(req conn.DialRequest) Config {
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
		Jumps:                req.Shared.Get(jumpPoolKey{}, func() any { return new(JumpPool) }).(*JumpPool),
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
	return cfg
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
