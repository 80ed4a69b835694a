package sshconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
)

// hop is one resolved SSH connection: the target or a jump host.
type hop struct {
	name     string // for messages: the inventory name or the ProxyJump entry
	host     string // what to dial
	port     int
	user     string
	keyFiles []string
	keysMust bool   // keyFiles were given explicitly, so they must exist
	jump     string // ProxyJump spec; "" or "none" for a direct connection
}

func (h hop) addr() string { return net.JoinHostPort(h.host, strconv.Itoa(h.port)) }

// dialer holds what Dial resolves once and shares between hops.
type dialer struct {
	cfg     Config
	home    string
	local   string // current user name
	configs []*ssh_config.Config
	warned  map[string]bool

	agentConn net.Conn // open during Dial only
	agentKeys []ssh.Signer
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
	d := &dialer{cfg: cfg, warned: map[string]bool{}}
	d.home, _ = os.UserHomeDir()
	if u, err := user.Current(); err == nil {
		d.local = u.Username
	} else {
		d.local = os.Getenv("USER")
	}
	if len(d.cfg.KnownHostsFiles) == 0 {
		if d.home == "" {
			return nil, errors.New("ssh: no known_hosts file given and no home directory")
		}
		d.cfg.KnownHostsFiles = []string{filepath.Join(d.home, ".ssh", "known_hosts")}
	}
	if cfg.UseSSHConfig {
		paths := []string{cfg.SSHConfigPath}
		if cfg.SSHConfigPath == "" {
			paths = []string{filepath.Join(d.home, ".ssh", "config"), "/etc/ssh/ssh_config"}
		}
		for _, p := range paths {
			c, err := loadSSHConfig(p)
			if err != nil {
				// The parser rejects some valid OpenSSH syntax (Match exec, …);
				// better to connect without the file than not at all.
				d.warnOnce("sshconfig:"+p, fmt.Sprintf("ignoring ssh config %s: %v", p, err))
				continue
			}
			if c != nil {
				d.configs = append(d.configs, c)
			}
		}
	}
	return d, nil
}

func (d *dialer) warnOnce(key, msg string) {
	if !d.warned[key] {
		d.warned[key] = true
		d.cfg.Warn(msg)
	}
}

// sshConfigCache keeps parsed ssh config files, so dialling hundreds of hosts
// parses each file once. Entries are keyed by path and modification time.
var sshConfigCache sync.Map // string -> sshConfigEntry

type sshConfigEntry struct {
	cfg *ssh_config.Config
	err error
}

func loadSSHConfig(path string) (*ssh_config.Config, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", path, fi.ModTime().UnixNano(), fi.Size())
	if e, ok := sshConfigCache.Load(key); ok {
		return e.(sshConfigEntry).cfg, e.(sshConfigEntry).err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := ssh_config.Decode(f)
	sshConfigCache.Store(key, sshConfigEntry{c, err})
	return c, err
}

// lookup returns the first value of key for the first alias that has one,
// like ssh's "first obtained value wins".
func (d *dialer) lookup(key string, aliases ...string) string {
	for _, alias := range aliases {
		for _, c := range d.configs {
			if v, err := c.Get(alias, key); err == nil && v != "" {
				return unquote(v)
			}
		}
	}
	return ""
}

// lookupAll returns every value of key (IdentityFile accumulates in ssh).
func (d *dialer) lookupAll(key string, aliases ...string) []string {
	var out []string
	for _, alias := range aliases {
		for _, c := range d.configs {
			vs, _ := c.GetAll(alias, key)
			for _, v := range vs {
				out = append(out, unquote(v))
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// targetHop resolves the inventory host. The ssh config is matched against
// the inventory name, then against the address.
func (d *dialer) targetHop() hop {
	cfg := d.cfg
	aliases := []string{cfg.HostName}
	explicitAddr := cfg.Address != "" && cfg.Address != cfg.HostName
	if explicitAddr {
		aliases = append(aliases, cfg.Address)
	}
	alias := cfg.HostName
	if alias == "" {
		alias = cfg.Address
	}
	h := hop{name: alias, host: alias, port: cfg.Port, user: cfg.User, jump: cfg.ProxyJump}
	if explicitAddr {
		h.host = cfg.Address
	} else if v := d.lookup("HostName", aliases...); v != "" {
		h.host = d.expand(v, alias, 0, "")
	}
	d.fill(&h, aliases)
	if len(cfg.KeyFiles) > 0 {
		h.keyFiles, h.keysMust = d.expandAll(cfg.KeyFiles, h), true
	}
	return h
}

// jumpHop resolves one ProxyJump entry, "[ssh://][user@]host[:port]".
func (d *dialer) jumpHop(spec string) (hop, error) {
	s := strings.TrimPrefix(spec, "ssh://")
	h := hop{name: spec}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		h.user, s = s[:i], s[i+1:]
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 {
			return hop{}, fmt.Errorf("bad port in ProxyJump %q", spec)
		}
		s, h.port = host, p
	}
	if s == "" {
		return hop{}, fmt.Errorf("bad ProxyJump %q", spec)
	}
	h.host = s
	if v := d.lookup("HostName", s); v != "" {
		h.host = d.expand(v, s, 0, "")
	}
	d.fill(&h, []string{s})
	// The inventory's keys usually open the jump host too (one lab key,
	// one bastion key); offering them after the jump host's own is harmless.
	for _, k := range d.cfg.KeyFiles {
		h.keyFiles = append(h.keyFiles, d.expand(k, s, h.port, h.user))
	}
	return h, nil
}

// fill sets the port, user, keys and jump that are still unset from the ssh
// config, then from the defaults.
func (d *dialer) fill(h *hop, aliases []string) {
	if h.port == 0 {
		if p, err := strconv.Atoi(d.lookup("Port", aliases...)); err == nil && p > 0 && p <= 65535 {
			h.port = p
		} else {
			h.port = 22
		}
	}
	if h.user == "" {
		if h.user = d.lookup("User", aliases...); h.user == "" {
			h.user = d.local
		}
	}
	if h.jump == "" {
		h.jump = d.lookup("ProxyJump", aliases...)
	}
	if files := d.lookupAll("IdentityFile", aliases...); len(files) > 0 {
		h.keyFiles = d.expandAll(files, *h)
	} else if d.home != "" {
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			h.keyFiles = append(h.keyFiles, filepath.Join(d.home, ".ssh", name))
		}
	}
}

func (d *dialer) expandAll(paths []string, h hop) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = d.expand(p, h.host, h.port, h.user)
	}
	return out
}

// expand applies the ssh_config tokens orch supports: a leading ~, %h (remote
// host), %p (port), %r (remote user), %u (local user), %d (home) and %%.
func (d *dialer) expand(v, host string, port int, remoteUser string) string {
	if v == "~" || strings.HasPrefix(v, "~/") {
		v = d.home + v[1:]
	}
	if !strings.Contains(v, "%") {
		return v
	}
	r := strings.NewReplacer("%%", "%", "%h", host, "%p", strconv.Itoa(port), "%r", remoteUser, "%u", d.local, "%d", d.home)
	return r.Replace(v)
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
