package sshconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// hop is one resolved SSH connection: the target or a jump host.
type hop struct {
	name     string // for messages: the inventory name or the ProxyJump entry
	host     string // what to dial
	port     int
	user     string
	keyFiles []string
	keysMust int    // the first keysMust keyFiles were given explicitly, so they must exist
	jump     string // ProxyJump spec; "" or "none" for a direct connection
	// proxyCommand is run to reach the host when it is not reached through
	// a jump host; "" or "none" for a TCP connection.
	proxyCommand   string
	certFiles      []string // CertificateFile, plus KEY-cert.pub beside each key
	identitiesOnly bool
	hostKeyAlias   string
	agentSock      string // "" for $SSH_AUTH_SOCK, "none" for no agent

	settings *sshSettings // for known hosts and HashKnownHosts
}

func (h hop) addr() string { return net.JoinHostPort(h.host, strconv.Itoa(h.port)) }

// knownAs is the name the host's key is looked up by in known_hosts.
func (h hop) knownAs() string {
	if h.hostKeyAlias != "" {
		return net.JoinHostPort(h.hostKeyAlias, strconv.Itoa(h.port))
	}
	return h.addr()
}

// dialer holds what Dial resolves once and shares between hops.
type dialer struct {
	ctx     context.Context
	cfg     Config
	env     cfgEnv
	configs []*cfgFile

	agentConn net.Conn // open during Dial only
	agentKeys []agentKey

	warnMu sync.Mutex
	warned map[string]bool // messages already given to cfg.Warn
}

func newDialer(cfg Config) (*dialer, error) {
	switch cfg.HostKeyCheck {
	case "":
		cfg.HostKeyCheck = AcceptNew
	case Strict, AcceptNew, Off:
	default:
		return nil, fmt.Errorf("ssh %s: unknown host key check %q (want strict, accept-new or off)", cfg.HostName, cfg.HostKeyCheck)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.Warn == nil {
		cfg.Warn = func(string) {}
	}
	d := &dialer{ctx: context.Background(), cfg: cfg}
	d.env.home, _ = os.UserHomeDir()
	if u, err := user.Current(); err == nil {
		d.env.localUser, d.env.uid = u.Username, u.Uid
	} else {
		d.env.localUser, d.env.uid = os.Getenv("USER"), strconv.Itoa(os.Getuid())
	}
	d.env.hostname, _ = os.Hostname()
	d.env.warn = d.warnOnce
	if len(d.cfg.KnownHostsFiles) == 0 && d.env.home == "" {
		return nil, errors.New("ssh: no known_hosts file given and no home directory")
	}
	if cfg.UseSSHConfig {
		type source struct {
			path    string
			userDir bool
		}
		sources := []source{{cfg.SSHConfigPath, true}}
		if cfg.SSHConfigPath == "" {
			sources = []source{{filepath.Join(d.env.home, ".ssh", "config"), true}, {"/etc/ssh/ssh_config", false}}
		}
		for _, s := range sources {
			c, err := readCfgFile(s.path, s.userDir)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("ssh config: %w", err)
			}
			d.configs = append(d.configs, c)
		}
	}
	return d, nil
}

// warnOnce gives a warning to cfg.Warn once per Dial, however many hops
// and config evaluations raise it; the engine keeps each message to one
// per run, whatever the number of hosts.
func (d *dialer) warnOnce(msg string) {
	d.warnMu.Lock()
	dup := d.warned[msg]
	if d.warned == nil {
		d.warned = map[string]bool{}
	}
	d.warned[msg] = true
	d.warnMu.Unlock()
	if !dup {
		d.cfg.Warn(msg)
	}
}

// resolve evaluates the ssh config for hostArg, with o given as on ssh's
// command line, and reports the keywords it ignores.
func (d *dialer) resolve(name, hostArg string, o sshOverrides) (hop, error) {
	s, err := resolveSSHConfig(d.ctx, d.configs, hostArg, o, d.env)
	if err != nil {
		return hop{}, err
	}
	if len(s.ignored) > 0 {
		d.warnOnce("ssh config: orch does not support, and ignores: " + strings.Join(s.ignored, ", "))
	}
	ev := &cfgEval{s: s, env: d.env, hostArg: hostArg}
	h := hop{
		name: name, host: s.HostName, port: s.Port, user: s.User,
		jump: s.ProxyJump, proxyCommand: s.ProxyCommand, identitiesOnly: s.IdentitiesOnly,
		hostKeyAlias: s.HostKeyAlias, agentSock: s.IdentityAgent, settings: s,
		keysMust: len(o.IdentityFiles),
	}
	for _, f := range s.IdentityFiles {
		h.keyFiles = append(h.keyFiles, ev.expand(f))
	}
	for _, f := range s.CertificateFiles {
		h.certFiles = append(h.certFiles, ev.expand(f))
	}
	for _, f := range h.keyFiles {
		h.certFiles = append(h.certFiles, f+"-cert.pub")
	}
	if h.proxyCommand != "" && h.proxyCommand != "none" {
		h.proxyCommand = expandProxyCommand(h.proxyCommand, s, hostArg)
	}
	return h, nil
}

// expandProxyCommand applies the tokens ssh allows in ProxyCommand: %h,
// %n, %p, %r and %%.
func expandProxyCommand(cmd string, s *sshSettings, hostArg string) string {
	var b strings.Builder
	for i := 0; i < len(cmd); i++ {
		if cmd[i] == '%' && i+1 < len(cmd) {
			i++
			switch cmd[i] {
			case '%':
				b.WriteByte('%')
			case 'h':
				b.WriteString(s.HostName)
			case 'n':
				b.WriteString(hostArg)
			case 'p':
				b.WriteString(strconv.Itoa(s.Port))
			case 'r':
				b.WriteString(s.User)
			default:
				b.WriteByte('%')
				b.WriteByte(cmd[i])
			}
			continue
		}
		b.WriteByte(cmd[i])
	}
	return b.String()
}

// targetHop resolves the inventory host. As with ssh, the config is
// evaluated for the name ssh would be given: the address when the
// inventory sets one, else the inventory name.
func (d *dialer) targetHop() (hop, error) {
	cfg := d.cfg
	hostArg := cfg.HostName
	if cfg.Address != "" {
		hostArg = cfg.Address
	}
	name := cfg.HostName
	if name == "" {
		name = hostArg
	}
	return d.resolve(name, hostArg, sshOverrides{
		User: cfg.User, Port: cfg.Port, IdentityFiles: cfg.KeyFiles,
		ProxyJump: cfg.ProxyJump, ProxyCommand: cfg.ProxyCommand,
	})
}

// jumpHop resolves one ProxyJump entry, "[ssh://][user@]host[:port]".
func (d *dialer) jumpHop(spec string) (hop, error) {
	s := strings.TrimPrefix(spec, "ssh://")
	var o sshOverrides
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		o.User, s = s[:i], s[i+1:]
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 {
			return hop{}, fmt.Errorf("bad port in ProxyJump %q", spec)
		}
		s, o.Port = host, p
	}
	if s == "" {
		return hop{}, fmt.Errorf("bad ProxyJump %q", spec)
	}
	h, err := d.resolve(spec, s, o)
	if err != nil {
		return hop{}, err
	}
	// The inventory's keys usually open the jump host too (one lab key,
	// one bastion key); offering them after the jump host's own is harmless.
	ev := &cfgEval{s: h.settings, env: d.env, hostArg: s}
	for _, k := range d.cfg.KeyFiles {
		h.keyFiles = append(h.keyFiles, ev.expand(k))
	}
	return h, nil
}

// chain lists the hops to dial in order, jump hosts first and h last.
// "ProxyJump a,b" reaches a (through a's own ProxyJump, if it has one), then b
// through a, then h through b, as ssh -J does.
func (d *dialer) chain(h hop, depth int) ([]hop, error) {
	if h.jump == "" || strings.EqualFold(h.jump, "none") {
		return []hop{h}, nil
	}
	if depth > 8 {
		return nil, fmt.Errorf("ProxyJump chain too deep (a loop?) at %s", h.name)
	}
	var out []hop
	for i, spec := range strings.Split(h.jump, ",") {
		j, err := d.jumpHop(strings.TrimSpace(spec))
		if err != nil {
			return nil, err
		}
		if i > 0 {
			j.jump = "" // reached through the previous entry
		}
		sub, err := d.chain(j, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return append(out, h), nil
}
