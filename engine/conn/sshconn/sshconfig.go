package sshconn

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file reads ssh_config as OpenSSH 9 does (readconf.c): the first
// value obtained for a keyword wins, except IdentityFile and
// CertificateFile, which accumulate; Host and Match blocks are evaluated
// in order, Match with every criterion ssh has (all, canonical, final,
// exec, host, originalhost, user, localuser); a Match final or canonical
// makes a second pass after HostName is applied, as ssh does; Include
// reads files conditionally, relative to ~/.ssh for user configs and
// /etc/ssh for the system one. Keywords orch does not honour are named in
// a warning, never silently dropped.

// MatchExecTimeout bounds each `Match exec` command. ssh waits for ever; a
// command that hangs here counts as not matching, with a warning.
const MatchExecTimeout = 5 * time.Second

// supportedKeywords are the ssh_config keywords orch honours.
var supportedKeywords = map[string]bool{
	"host": true, "match": true, "include": true, "hostname": true, "port": true, "user": true,
	"identityfile": true, "identitiesonly": true, "proxyjump": true, "proxycommand": true,
	"userknownhostsfile": true, "globalknownhostsfile": true, "certificatefile": true,
	"identityagent": true, "hostkeyalias": true, "hashknownhosts": true,
}

// cfgLine is one keyword line of an ssh config file.
type cfgLine struct {
	at   string // file:line
	name string // keyword as written
	key  string // keyword, lower-cased
	args []string
	rest string // the raw text after the keyword, for ProxyCommand
}

type cfgFile struct {
	lines   []cfgLine
	userDir bool // Include paths are relative to ~/.ssh (else /etc/ssh)
}

// cfgCache keeps each parsed file by path, with the modification time and
// size it was parsed at: a file that changed since is parsed again and
// replaces its entry, so the cache holds one entry per config file.
var cfgCache sync.Map // path and userDir -> cfgCacheEntry

type cfgCacheEntry struct {
	stamp string
	file  *cfgFile
}

func readCfgFile(path string, userDir bool) (*cfgFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s\x00%v", path, userDir)
	stamp := fmt.Sprintf("%d\x00%d", fi.ModTime().UnixNano(), fi.Size())
	if e, ok := cfgCache.Load(key); ok && e.(cfgCacheEntry).stamp == stamp {
		return e.(cfgCacheEntry).file, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cf, err := parseCfg(f, path, userDir)
	if err != nil {
		return nil, err
	}
	cfgCache.Store(key, cfgCacheEntry{stamp: stamp, file: cf})
	return cf, nil
}

// parseCfg reads the keyword lines of an ssh config file; errors name
// path and line.
func parseCfg(r io.Reader, path string, userDir bool) (*cfgFile, error) {
	cf := &cfgFile{userDir: userDir}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(strings.TrimSpace(sc.Text()), "\f")
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, " \t=")
		if end < 0 {
			end = len(line)
		}
		name := line[:end]
		key := strings.ToLower(name)
		rest := strings.TrimLeft(line[end:], " \t")
		if strings.HasPrefix(rest, "=") {
			rest = strings.TrimLeft(rest[1:], " \t")
		}
		at := fmt.Sprintf("%s:%d", path, n)
		args, err := splitArgs(rest)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", at, err)
		}
		cf.lines = append(cf.lines, cfgLine{at: at, name: name, key: key, args: args, rest: rest})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cf, nil
}

// splitArgs splits a config line's arguments as OpenSSH's argv_split does:
// blanks separate, single and double quotes group, a backslash escapes a
// quote or backslash, and a word starting with # ends the line.
func splitArgs(s string) ([]string, error) {
	var out []string
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		if s[i] == '#' {
			break
		}
		var w strings.Builder
		var quote byte
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '"' || s[i+1] == '\\' || (quote == 0 && s[i+1] == ' ')):
				i++
				w.WriteByte(s[i])
				continue
			case quote != 0 && c == quote:
				quote = 0
				continue
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
				continue
			case quote == 0 && (c == ' ' || c == '\t'):
			default:
				w.WriteByte(c)
				continue
			}
			break
		}
		if quote != 0 {
			return nil, errors.New("unterminated quote")
		}
		out = append(out, w.String())
	}
	return out, nil
}

// sshSettings is what the ssh config (and the settings given directly,
// which come first, as ssh's command line does) say about one host. Paths
// are as written, except the known hosts files and IdentityAgent, which
// ssh -G also shows expanded.
type sshSettings struct {
	HostName              string
	Port                  int
	User                  string
	IdentityFiles         []string
	CertificateFiles      []string
	IdentitiesOnly        bool
	ProxyJump             string
	ProxyCommand          string
	UserKnownHostsFiles   []string
	GlobalKnownHostsFiles []string
	IdentityAgent         string
	HostKeyAlias          string
	HashKnownHosts        bool

	set     map[string]bool
	ignored []string // "Keyword (file:line)" of unsupported keywords in force
}

// sshOverrides are the settings given directly, which beat the config.
type sshOverrides struct {
	User          string
	Port          int
	IdentityFiles []string
	ProxyJump     string
	ProxyCommand  string
}

// cfgEnv is what token expansion and Match need to know of the machine.
type cfgEnv struct {
	home, localUser, uid, hostname string
	warn                           func(string)
	// sandbox (for fuzzing) evaluates the config without touching the
	// machine: Match exec runs nothing and does not match, and Include
	// reads no file.
	sandbox bool
}

// resolveSSHConfig evaluates files (in order: user config, then system
// config) for the host ssh would be given as hostArg.
func resolveSSHConfig(ctx context.Context, files []*cfgFile, hostArg string, o sshOverrides, env cfgEnv) (*sshSettings, error) {
	s := &sshSettings{set: map[string]bool{}}
	if o.User != "" {
		s.User, s.set["user"] = o.User, true
	}
	if o.Port != 0 {
		s.Port, s.set["port"] = o.Port, true
	}
	s.IdentityFiles = append(s.IdentityFiles, o.IdentityFiles...)
	if o.ProxyJump != "" {
		s.ProxyJump, s.set["proxyjump"] = o.ProxyJump, true
	} else if o.ProxyCommand != "" {
		s.ProxyCommand, s.set["proxycommand"] = o.ProxyCommand, true
	}
	ev := &cfgEval{s: s, env: env, hostArg: hostArg, ctx: ctx}
	for _, f := range files {
		if err := ev.file(f, true, false, 0); err != nil {
			return nil, err
		}
	}
	// As ssh does after the first pass: the host is the expanded HostName,
	// lower-cased; a Match final asks for a second pass.
	host := hostArg
	if s.HostName != "" {
		host = strings.ReplaceAll(strings.ReplaceAll(s.HostName, "%%", "\x00"), "%h", hostArg)
		host = strings.ReplaceAll(host, "\x00", "%")
	}
	s.HostName = strings.ToLower(host)
	s.set["hostname"] = true
	if ev.wantFinal {
		ev.final = true
		for _, f := range files {
			if err := ev.file(f, true, false, 0); err != nil {
				return nil, err
			}
		}
	}
	if s.Port == 0 {
		s.Port = 22
	}
	if s.User == "" {
		s.User = env.localUser
	}
	if len(s.IdentityFiles) == 0 {
		for _, n := range []string{"id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"} {
			s.IdentityFiles = append(s.IdentityFiles, "~/.ssh/"+n)
		}
	}
	if s.UserKnownHostsFiles == nil {
		s.UserKnownHostsFiles = []string{"~/.ssh/known_hosts", "~/.ssh/known_hosts2"}
	}
	if s.GlobalKnownHostsFiles == nil {
		s.GlobalKnownHostsFiles = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
	}
	for i, p := range s.UserKnownHostsFiles {
		s.UserKnownHostsFiles[i] = ev.expand(p)
	}
	for i, p := range s.GlobalKnownHostsFiles {
		s.GlobalKnownHostsFiles[i] = ev.expand(p)
	}
	if s.IdentityAgent != "" && s.IdentityAgent != "none" && s.IdentityAgent != "SSH_AUTH_SOCK" {
		s.IdentityAgent = ev.expand(s.IdentityAgent)
	}
	return s, nil
}

type cfgEval struct {
	ctx       context.Context
	s         *sshSettings
	env       cfgEnv
	hostArg   string
	final     bool // the second pass
	wantFinal bool
}

// file evaluates one file's lines. active is whether the including line
// was in force; neverMatch keeps Host and Match from switching blocks on
// inside a file included from an inactive block.
func (ev *cfgEval) file(f *cfgFile, active, neverMatch bool, depth int) error {
	if depth > 16 {
		return errors.New("ssh config: Include nested too deeply")
	}
	for _, l := range f.lines {
		switch l.key {
		case "host":
			active = !neverMatch && ev.matchHost(l.args)
			continue
		case "match":
			if neverMatch {
				active = false
				continue
			}
			m, err := ev.match(l)
			if err != nil {
				return err
			}
			active = m
			continue
		}
		if !active {
			continue
		}
		if l.key == "include" {
			for _, pattern := range l.args {
				p := ev.tilde(pattern)
				if !filepath.IsAbs(p) {
					base := "/etc/ssh"
					if f.userDir {
						base = filepath.Join(ev.env.home, ".ssh")
					}
					p = filepath.Join(base, p)
				}
				var matches []string
				if !ev.env.sandbox {
					matches, _ = filepath.Glob(p)
				}
				sort.Strings(matches)
				for _, m := range matches {
					inc, err := readCfgFile(m, f.userDir)
					if err != nil {
						return fmt.Errorf("%s: Include %s: %v", l.at, m, err)
					}
					if err := ev.file(inc, active, neverMatch || !active, depth+1); err != nil {
						return err
					}
				}
			}
			continue
		}
		if err := ev.apply(l); err != nil {
			return err
		}
	}
	return nil
}

// matchHost is the Host keyword: any pattern matching, and no negated one.
func (ev *cfgEval) matchHost(patterns []string) bool {
	host := ev.hostArg
	if ev.final {
		host = ev.s.HostName
	}
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		if matchPattern(host, strings.TrimPrefix(p, "!")) {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// matchPatternList is OpenSSH's match_pattern_list: comma-separated
// patterns, any positive match and no negated one.
func matchPatternList(s, list string, fold bool) bool {
	if fold {
		s = strings.ToLower(s)
	}
	matched := false
	for _, p := range strings.Split(list, ",") {
		if fold {
			p = strings.ToLower(p)
		}
		neg := strings.HasPrefix(p, "!")
		if matchPattern(s, strings.TrimPrefix(p, "!")) {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// matchPattern is ssh's glob: * and ? only. It matches as OpenSSH's
// recursive match_pattern does, but backtracks only to the last star, so a
// pattern with many stars takes linear time, not exponential (found by
// FuzzSSHConfig: "*a*a*a*a*a*a*a*a*b" took seconds on a 40-byte name).
func matchPattern(s, p string) bool {
	si, pi := 0, 0
	star, mark := -1, 0 // the last star seen in p, and where in s it began matching
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]) && p[pi] != '*':
			si, pi = si+1, pi+1
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			mark++
			si, pi = mark, star+1
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// match evaluates a Match line as match_cfg_line does.
func (ev *cfgEval) match(l cfgLine) (bool, error) {
	s := ev.s
	host := ev.hostArg
	if ev.final {
		host = s.HostName
	} else if s.HostName != "" {
		host = strings.ReplaceAll(s.HostName, "%h", ev.hostArg)
	}
	ruser := s.User
	if ruser == "" {
		ruser = ev.env.localUser
	}
	result := true
	args := l.args
	if len(args) == 0 {
		return false, fmt.Errorf("%s: Match needs a criterion", l.at)
	}
	for i := 0; i < len(args); i++ {
		attr := args[i]
		neg := strings.HasPrefix(attr, "!")
		attr = strings.ToLower(strings.TrimPrefix(attr, "!"))
		check := func(r bool) {
			if r == neg {
				result = false
			}
		}
		switch attr {
		case "all":
			if len(args) > 1 {
				return false, fmt.Errorf("%s: Match all cannot be combined with other criteria", l.at)
			}
			return !neg, nil
		case "canonical", "final":
			if attr == "final" && !neg {
				ev.wantFinal = true
			}
			check(ev.final)
			continue
		}
		if i+1 >= len(args) {
			return false, fmt.Errorf("%s: Match %s needs an argument", l.at, attr)
		}
		i++
		arg := args[i]
		switch attr {
		case "host":
			check(matchPatternList(host, arg, true))
		case "originalhost":
			check(matchPatternList(ev.hostArg, arg, true))
		case "user":
			check(matchPatternList(ruser, arg, false))
		case "localuser":
			check(matchPatternList(ev.env.localUser, arg, false))
		case "exec":
			if !result {
				continue // ssh runs no command once a criterion failed
			}
			check(ev.exec(l, ev.expandWith(arg, host, ruser)))
		default:
			ev.ignore(l, "Match "+attr)
			return false, nil
		}
	}
	return result, nil
}

// exec runs a Match exec command with /bin/sh, bounded by MatchExecTimeout.
func (ev *cfgEval) exec(l cfgLine, cmd string) bool {
	if ev.env.sandbox {
		return false
	}
	ctx, cancel := context.WithTimeout(ev.ctx, MatchExecTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.WaitDelay = time.Second
	err := c.Run()
	if ctx.Err() != nil {
		ev.env.warn(fmt.Sprintf("%s: Match exec %q did not finish within %v: treated as not matching", l.at, cmd, MatchExecTimeout))
		return false
	}
	return err == nil
}

func (ev *cfgEval) ignore(l cfgLine, what string) {
	ev.s.ignored = append(ev.s.ignored, fmt.Sprintf("%s (%s)", what, l.at))
}

// apply sets one keyword, unless an earlier line already did.
func (ev *cfgEval) apply(l cfgLine) error {
	s := ev.s
	if !supportedKeywords[l.key] {
		ev.ignore(l, canonicalKeyword(l))
		return nil
	}
	if l.key != "proxycommand" && len(l.args) == 0 {
		return fmt.Errorf("%s: %s needs a value", l.at, canonicalKeyword(l))
	}
	first := func(key string) bool {
		if s.set[key] {
			return false
		}
		s.set[key] = true
		return true
	}
	flag := func() (bool, error) {
		switch strings.ToLower(l.args[0]) {
		case "yes", "true":
			return true, nil
		case "no", "false":
			return false, nil
		}
		return false, fmt.Errorf("%s: %s %q: want yes or no", l.at, canonicalKeyword(l), l.args[0])
	}
	switch l.key {
	case "hostname":
		if first("hostname") {
			s.HostName = l.args[0]
		}
	case "port":
		p, err := strconv.Atoi(l.args[0])
		if err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("%s: bad port %q", l.at, l.args[0])
		}
		if first("port") {
			s.Port = p
		}
	case "user":
		if first("user") {
			s.User = l.args[0]
		}
	case "identityfile":
		s.IdentityFiles = append(s.IdentityFiles, l.args[0])
	case "certificatefile":
		s.CertificateFiles = append(s.CertificateFiles, l.args[0])
	case "identitiesonly", "hashknownhosts":
		v, err := flag()
		if err != nil {
			return err
		}
		if first(l.key) {
			if l.key == "identitiesonly" {
				s.IdentitiesOnly = v
			} else {
				s.HashKnownHosts = v
			}
		}
	case "proxyjump":
		// ProxyJump and ProxyCommand exclude each other: the first one set wins.
		if !s.set["proxycommand"] && first("proxyjump") {
			s.ProxyJump = l.args[0]
		}
	case "proxycommand":
		if !s.set["proxyjump"] && first("proxycommand") {
			s.ProxyCommand = l.rest
		}
	case "userknownhostsfile":
		if first(l.key) {
			s.UserKnownHostsFiles = l.args
		}
	case "globalknownhostsfile":
		if first(l.key) {
			s.GlobalKnownHostsFiles = l.args
		}
	case "identityagent":
		if first(l.key) {
			s.IdentityAgent = l.args[0]
		}
	case "hostkeyalias":
		if first(l.key) {
			s.HostKeyAlias = l.args[0]
		}
	}
	return nil
}

// canonicalKeyword is the keyword as the file spells it.
func canonicalKeyword(l cfgLine) string { return l.name }

func (ev *cfgEval) tilde(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		return ev.env.home + p[1:]
	}
	return p
}

// expand applies ~, ${VAR} and ssh's % tokens for the host as resolved.
func (ev *cfgEval) expand(p string) string {
	return ev.expandWith(p, ev.s.HostName, ev.s.User)
}

func (ev *cfgEval) expandWith(p, host, ruser string) string {
	s := ev.s
	p = ev.tilde(p)
	p = os.Expand(strings.ReplaceAll(p, "$$", "\x00"), func(v string) string { return os.Getenv(v) })
	p = strings.ReplaceAll(p, "\x00", "$")
	if !strings.Contains(p, "%") {
		return p
	}
	port := strconv.Itoa(max(s.Port, 0))
	if s.Port == 0 {
		port = "22"
	}
	short, _, _ := strings.Cut(ev.env.hostname, ".")
	alias := s.HostKeyAlias
	if alias == "" {
		alias = host
	}
	sum := sha1.Sum([]byte(ev.env.hostname + host + port + ruser))
	tokens := map[byte]string{
		'%': "%", 'h': host, 'n': ev.hostArg, 'p': port, 'r': ruser, 'u': ev.env.localUser,
		'd': ev.env.home, 'i': ev.env.uid, 'l': ev.env.hostname, 'L': short, 'k': alias,
		'C': hex.EncodeToString(sum[:]),
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+1 < len(p) {
			if v, ok := tokens[p[i+1]]; ok {
				b.WriteString(v)
				i++
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
