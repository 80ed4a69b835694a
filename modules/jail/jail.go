// Package jail is the jail module: a FreeBSD jail defined in
// /etc/jail.conf.d/NAME.conf, running, stopped or gone, and started at
// boot by rc when it runs.
package jail

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/pathfact"
)

func init() {
	modules.Register(modules.Info{ID: "jail", New: func() any { return new(Jail) }, Doc: `Defines a FreeBSD jail in /etc/jail.conf.d/NAME.conf and starts, stops or removes it.

The module renders NAME.conf in jail.conf(5) syntax from path, ip and
params (every value double-quoted, with \, ", $ and control characters
escaped; True as a bare parameter, False with jail(8)'s "no" prefix, lists
comma-separated) and writes it atomically (a temporary file, then a
rename). It owns the file: a hand edit is overwritten.

States:
- "running": the config is written, and the jail started with
  jail -f /etc/jail.conf.d/NAME.conf -c NAME; a running jail whose config
  changed is restarted (stopped with its old config, so its old exec.stop
  runs, then started with the new one), and the diff says so. It is also
  started at boot: sysrc jail_enable=YES and NAME added to jail_list
  (FreeBSD's rc.d/jail reads /etc/jail.conf.d/NAME.conf for a jail named
  in jail_list; with an empty jail_list it would start only
  /etc/jail.conf's jails).
- "stopped": the config is written, the jail stopped with jail -r, and
  NAME removed from jail_list, so it stays stopped after a reboot.
- "absent": the jail is stopped, its config removed and NAME removed from
  jail_list. Its root (path) and its dataset are left alone: remove them
  with zfs.dataset(state="absent").

A jail needs something to keep it alive: params={"persist": True}, or an
exec.start that leaves processes running ("/bin/sh /etc/rc"). A start
after which jls does not list the jail fails the task.

Validation: the arguments are checked before any host is touched (the
name, an absolute path, IPv4/IPv6 addresses, parameter names), and the
config is rendered defensively from them, so it always parses. FreeBSD's
jail -f FILE -e SEP could parse-check a file, but the lab's stand-in host
has no -e, so it is not used, to keep every path tested.

Facts: one jls -v --libxo json and one sysrc jail_enable jail_list for all
of a host's jail tasks, in the probe exchange, plus the path fact of the
config file. Effects: jail:NAME and path:/etc/jail.conf.d/NAME.conf.

Verified against recorded FreeBSD behaviour (testdata/freebsd: jail, jls,
sysrc, service; their provenance is in each file) and live against the
lab's stand-in FreeBSD host (lab/standin), not against a FreeBSD kernel.`})
}

// ConfDir is where the module keeps one config file per jail.
const ConfDir = "/etc/jail.conf.d"

// Jail is the argument struct of jail().
type Jail struct {
	Name   string         `arg:"name,required" doc:"the jail's name (letters, digits, _ and -; not only digits)"`
	Path   string         `arg:"path,required" doc:"the jail's root directory on the host"`
	IP     any            `arg:"ip" doc:"an IPv4 or IPv6 address, or a list of them (ip4.addr / ip6.addr); an address may carry an interface (\"vtnet0|192.0.2.10\") and a prefix length (\"/24\")"`
	State  string         `arg:"state" default:"running" doc:"running | stopped | absent"`
	Params map[string]any `arg:"params" doc:"other jail(8) parameters: {\"host.hostname\": \"www\", \"exec.start\": \"/bin/sh /etc/rc\", \"mount.devfs\": True, \"persist\": True}"`

	ip4, ip6 []string
	conf     []byte // the rendered config
}

var (
	_ modules.Task       = (*Jail)(nil)
	_ modules.Validator  = (*Jail)(nil)
	_ modules.FactReader = (*Jail)(nil)
	_ modules.Effector   = (*Jail)(nil)
	_ modules.Describer  = (*Jail)(nil)
)

func (j *Jail) Describe() string { return "jail " + j.Name }

// ConfPath is the jail's config file.
func (j *Jail) ConfPath() string { return ConfDir + "/" + j.Name + ".conf" }

var (
	validName  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)
	allDigits  = regexp.MustCompile(`^[0-9]+$`)
	validParam = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$`)
)

// reserved are parameters the module's own arguments set.
var reserved = map[string]string{"name": "name", "path": "path", "ip4.addr": "ip", "ip6.addr": "ip"}

func (j *Jail) Validate(*modules.Env) error {
	switch {
	case !validName.MatchString(j.Name) || len(j.Name) > 200:
		return fmt.Errorf("name %q is not a jail name (letters, digits, _ and -, at most 200)", j.Name)
	case allDigits.MatchString(j.Name):
		return fmt.Errorf("name %q is only digits, which jail(8) takes for a JID", j.Name)
	case !strings.HasPrefix(j.Path, "/") || path.Clean(j.Path) != j.Path || strings.ContainsAny(j.Path, "\n\x00"):
		return fmt.Errorf("path %q is not a clean absolute path", j.Path)
	}
	switch j.State {
	case "running", "stopped", "absent":
	default:
		return fmt.Errorf("state %q is not one of running, stopped, absent", j.State)
	}
	var ips []string
	switch v := j.IP.(type) {
	case nil:
	case string:
		ips = []string{v}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("ip: want a string or a list of strings, got an element %v (%T)", x, x)
			}
			ips = append(ips, s)
		}
	case []string:
		ips = v
	default:
		return fmt.Errorf("ip: want a string or a list of strings, got %T", j.IP)
	}
	j.ip4, j.ip6 = nil, nil
	for _, s := range ips {
		a, err := parseIP(s)
		if err != nil {
			return fmt.Errorf("ip %q: %v", s, err)
		}
		if a.Is4() {
			j.ip4 = append(j.ip4, s)
		} else {
			j.ip6 = append(j.ip6, s)
		}
	}
	for k, v := range j.Params {
		if arg, ok := reserved[k]; ok {
			return fmt.Errorf("params[%q]: set it with the %s argument", k, arg)
		}
		if !validParam.MatchString(k) {
			return fmt.Errorf("params: %q is not a jail parameter name (lower-case words joined by dots, as in host.hostname)", k)
		}
		if _, err := value(v); err != nil {
			return fmt.Errorf("params[%q]: %v", k, err)
		}
	}
	j.conf = j.render()
	return nil
}

// parseIP reads "[iface|]addr[/len]" as jail(8) takes ip4.addr items.
func parseIP(s string) (netip.Addr, error) {
	rest := s
	if i := strings.IndexByte(rest, '|'); i >= 0 {
		if i == 0 || !regexp.MustCompile(`^[a-z][a-z0-9_.]*$`).MatchString(rest[:i]) {
			return netip.Addr{}, fmt.Errorf("%q is not an interface name", rest[:i])
		}
		rest = rest[i+1:]
	}
	addr, bits, hasBits := strings.Cut(rest, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("not an IPv4 or IPv6 address")
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("a zone is not allowed; name the interface as \"IFACE|ADDR\"")
	}
	if hasBits {
		n, err := strconv.Atoi(bits)
		if err != nil || n < 0 || n > a.BitLen() {
			return netip.Addr{}, fmt.Errorf("/%s is not a prefix length", bits)
		}
	}
	return a, nil
}

// value renders a parameter's value: "" for a bare True, "no" for False
// (the caller prefixes the name), else the text after " = ".
func value(v any) (string, error) {
	switch x := v.(type) {
	case bool:
		if x {
			return "", nil
		}
		return "no", nil
	case string:
		return quote(x), nil
	case int, int64:
		return fmt.Sprint(x), nil
	case []any:
		if len(x) == 0 {
			return "", fmt.Errorf("an empty list sets nothing; leave the parameter out")
		}
		parts := make([]string, len(x))
		for i, e := range x {
			switch e.(type) {
			case string, int, int64:
			default:
				return "", fmt.Errorf("a list holds strings and numbers, not %T", e)
			}
			s, _ := value(e)
			parts[i] = s
		}
		return strings.Join(parts, ", "), nil
	case []string:
		anys := make([]any, len(x))
		for i, s := range x {
			anys[i] = s
		}
		return value(anys)
	}
	return "", fmt.Errorf("want a string, number, bool or list, got %T", v)
}

// quote is a jail.conf(5) double-quoted string: backslash escapes for \,
// " and control characters, and $ escaped so no variable is expanded.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\', '"', '$':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				// jail.conf has no numeric escapes; such bytes have no
				// place in a jail parameter.
				continue
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// render is the config file: one jail block, parameters sorted.
func (j *Jail) render() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Managed by orch (jail %s): changes made here are overwritten.\n%s {\n", j.Name, j.Name)
	fmt.Fprintf(&b, "\tpath = %s;\n", quote(j.Path))
	addrs := func(name string, ips []string) {
		if len(ips) == 0 {
			return
		}
		q := make([]string, len(ips))
		for i, ip := range ips {
			q[i] = quote(ip)
		}
		fmt.Fprintf(&b, "\t%s = %s;\n", name, strings.Join(q, ", "))
	}
	addrs("ip4.addr", j.ip4)
	addrs("ip6.addr", j.ip6)
	keys := make([]string, 0, len(j.Params))
	for k := range j.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := value(j.Params[k])
		switch v {
		case "":
			fmt.Fprintf(&b, "\t%s;\n", k)
		case "no":
			// jail(8): a boolean is false with "no" before its last
			// component (allow.nomount).
			dir, last := "", k
			if i := strings.LastIndexByte(k, '.'); i >= 0 {
				dir, last = k[:i+1], k[i+1:]
			}
			fmt.Fprintf(&b, "\t%sno%s;\n", dir, last)
		default:
			fmt.Fprintf(&b, "\t%s = %s;\n", k, v)
		}
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

// Conf returns the rendered config (after Validate).
func (j *Jail) Conf() []byte { return j.conf }

func (j *Jail) Facts() []modules.FactKey {
	return []modules.FactKey{Key(j.Name), pathfact.Key(j.ConfPath())}
}

// Effects: the jail and its config file.
func (j *Jail) Effects() []string {
	return []string{Key(j.Name).StateKey(), modules.PathKey(j.ConfPath())}
}

// diffLimit bounds the old config fetched for --diff.
const diffLimit = 64 << 10

// Probe fetches the old config, in base64, only when a diff is wanted.
func (j *Jail) Probe(req modules.ProbeRequest) string {
	if !req.Diff || j.State == "absent" {
		return ""
	}
	p := modules.Quote(j.ConfPath())
	return fmt.Sprintf("if [ -f %s ] && [ ! -L %s ] && [ \"$(wc -c < %s)\" -le %d ]; then _orch_b64e %s; fi\n", p, p, p, diffLimit, p)
}

func (j *Jail) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	if j.conf == nil {
		if err := j.Validate(nil); err != nil {
			resp.Err = err
			return
		}
	}
	st, ok := req.Facts[Key(j.Name)].(State)
	if !ok {
		resp.Err = fmt.Errorf("no jail facts gathered for %s", j.Name)
		return
	}
	cf, err := pathfact.Of(req, j.ConfPath())
	if err != nil {
		resp.Err = err
		return
	}
	if cf.Kind != "file" && cf.Kind != "absent" {
		resp.Err = fmt.Errorf("%s is a %s, not a file", j.ConfPath(), cf.Kind)
		return
	}
	confSame := cf.Kind == "file" && cf.Sum == sha256Hex(j.conf)
	cp := modules.Quote(j.ConfPath())
	n := modules.Quote(j.Name)
	var steps, script []string
	var diff strings.Builder

	writeConf := func() {
		tmp := modules.Quote(ConfDir+"/."+j.Name+".conf.") + "\"$ORCH_M\""
		script = append(script,
			"mkdir -p "+ConfDir,
			"t="+tmp,
			"trap 'rm -f \"$t\"' EXIT",
			"trap 'rm -f \"$t\"; exit 1' HUP INT TERM PIPE",
			"_orch_b64d > \"$t\" <<'ORCH_EOF'\n"+strings.TrimSuffix(base64Lines(j.conf), "\n")+"\nORCH_EOF",
			"chmod 0644 \"$t\"")
	}
	moveConf := func() {
		script = append(script, "mv -f \"$t\" "+cp, "trap - EXIT HUP INT TERM PIPE")
	}
	start := func() {
		script = append(script,
			"jail -f "+cp+" -c "+n,
			fmt.Sprintf("jls -j %s jid >/dev/null 2>&1 || { echo %s; exit 1; }", n,
				modules.Quote("jail: "+j.Name+" is not running after jail -c (a jail needs persist or an exec.start that leaves a process)")))
	}
	stop := func(conf bool) {
		if conf {
			script = append(script, "jail -f "+cp+" -r "+n)
		} else {
			script = append(script, "jail -r "+n)
		}
	}

	switch j.State {
	case "running", "stopped":
		if !confSame {
			if cf.Kind == "absent" {
				steps = append(steps, "write "+j.ConfPath())
			} else {
				steps = append(steps, "update "+j.ConfPath())
			}
			diff.WriteString(j.confDiff(req, cf.Kind))
			writeConf()
		}
		switch {
		case j.State == "running" && st.Running && !confSame:
			steps = append(steps, "restart "+j.Name+" (its config changed)")
			if cf.Kind == "file" {
				stop(true) // with the old config, whose exec.stop it runs
			} else {
				stop(false)
			}
			moveConf()
			start()
		case j.State == "running" && !st.Running:
			steps = append(steps, "start "+j.Name)
			if !confSame {
				moveConf()
			}
			start()
		case j.State == "stopped" && st.Running:
			steps = append(steps, "stop "+j.Name)
			if cf.Kind == "file" {
				stop(true)
			} else {
				stop(false)
			}
			if !confSame {
				moveConf()
			}
		default:
			if !confSame {
				moveConf()
			}
		}
		if j.State == "running" {
			if !st.EnabledAtBoot() {
				steps = append(steps, "set jail_enable=YES")
				script = append(script, "sysrc jail_enable=YES")
			}
			if !st.Listed(j.Name) {
				steps = append(steps, "add "+j.Name+" to jail_list")
				script = append(script, "sysrc jail_list+="+n)
			}
		} else if st.Listed(j.Name) {
			steps = append(steps, "remove "+j.Name+" from jail_list")
			script = append(script, "sysrc jail_list-="+n)
		}
	case "absent":
		if st.Running {
			steps = append(steps, "stop "+j.Name)
			stop(cf.Kind == "file")
		}
		if cf.Kind == "file" {
			steps = append(steps, "remove "+j.ConfPath())
			script = append(script, "rm -f "+cp)
			fmt.Fprintf(&diff, "--- %s\n+++ /dev/null\n", j.ConfPath())
		}
		if st.Listed(j.Name) {
			steps = append(steps, "remove "+j.Name+" from jail_list")
			script = append(script, "sysrc jail_list-="+n)
		}
	}
	if len(steps) == 0 {
		resp.Reason = j.Name + " " + describe(j.Name, st, cf.Kind == "file")
		return
	}
	resp.Changed = true
	resp.Reason = strings.Join(steps, ", ")
	fmt.Fprintf(&diff, "--- jail %s\n+++ jail %s\n-%s\n+%s\n", j.Name, j.Name, describe(j.Name, st, cf.Kind == "file"), strings.Join(steps, ", "))
	resp.Diff = diff.String()
	resp.Apply = strings.Join(script, "\n") + "\n"
}

// describe says how a jail stands, for reasons and diffs.
func describe(name string, st State, hasConf bool) string {
	var parts []string
	switch {
	case st.Running:
		parts = append(parts, fmt.Sprintf("is running (jid %d)", st.Jail.JID))
	case hasConf:
		parts = append(parts, "is stopped")
	default:
		parts = append(parts, "is not defined")
	}
	if st.EnabledAtBoot() && st.Listed(name) {
		parts = append(parts, "started at boot")
	} else {
		parts = append(parts, "not started at boot")
	}
	return strings.Join(parts, ", ")
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// confDiff is the unified diff of the config file, when the old one was
// fetched (--diff).
func (j *Jail) confDiff(req modules.CheckRequest, kind string) string {
	if !req.Diff {
		return ""
	}
	from := j.ConfPath()
	var old []byte
	if kind == "absent" {
		from = "/dev/null"
	} else {
		var err error
		old, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(req.Output)), ""))
		if err != nil || len(old) == 0 {
			return fmt.Sprintf("--- %s\n+++ %s\n@@ old content not fetched @@\n", from, j.ConfPath())
		}
	}
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(old)), B: difflib.SplitLines(string(j.conf)),
		FromFile: from, ToFile: j.ConfPath(), Context: 3,
	})
	return d
}

func base64Lines(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteByte('\n')
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteByte('\n')
	return b.String()
}
