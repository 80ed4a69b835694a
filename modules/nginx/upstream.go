// Package nginx is the nginx.upstream module: an upstream block in a file
// of its own, included from nginx's configuration, rewritten only after the
// whole configuration has passed nginx -t with the new file in it, and
// brought live with one graceful reload.
package nginx

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/orch-dev/orch/internal/nginxconf"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
)

func init() {
	modules.Register(modules.Info{ID: "nginx.upstream", New: func() any { return new(Upstream) }, Doc: `Manages an nginx upstream block (http, or stream for TCP and UDP) in a file of its own.

The file at path (default /etc/nginx/conf.d/upstream-NAME.conf, or
/etc/nginx/stream.d/NAME.conf with stream=True) holds exactly one block,
"upstream NAME { server …; }", and must be included by conf, directly or
through other includes, inside its http or stream block. servers are
nginx server lines without "server" and ";": "10.0.0.1:53",
"10.0.0.2:53 weight=2 max_fails=3", "10.0.0.3:53 backup".

Before the new file replaces the live one, the whole configuration is
tested with nginx -t against it: the new file is written beside the live
one under a temporary name, conf and every file on the include path from
conf to path are copied beside themselves with their include of path (a
literal path or a glob, expanded as nginx would) pointing at the new file
instead, and nginx -t -c runs on the copy of conf. A configuration nginx
rejects never reaches the live path; the task fails with nginx's message,
with the temporary names read back as the live ones. Because the copy of
conf sits in conf's own folder, relative paths resolve as they do live.
Which files lie on the include path is read from nginx -T in the probe
exchange, and only when the file differs from the wanted one, so a rerun
that changes nothing costs no nginx process and stays one exchange.

nginx -T and nginx -t read every file the master reads (keys and
certificates too): run the task as root (become=True).

A change queues one graceful reload of nginx (nginx -t, then nginx -s
reload: the master starts new workers and lets the old ones finish), run
once after the host's other tasks however many upstreams changed, as the
handler "service:nginx". If the host fails before it runs, the reload is
journaled and done by the next run.

Ansible has nothing that does this: template's validate= runs the
validator on the new file alone, and an upstream include is not a
complete nginx configuration, so "nginx -t -c %s" fails on it, while
validating conf instead tests the live include, not the new one
(ansible#9112, ansible#19243). The usual workarounds write the file first
and roll it back when nginx -t fails, so for a moment the live path holds
a configuration nginx rejects, and a reload by anyone else then fails.

UDP under reloads: give a DNS stream proxy's UDP listen no reuseport (old
and new workers then read the one socket the master opened, and nothing
queued on it is lost when an old worker goes) and proxy_responses 1 (an
answer ends its session, so old workers exit once their answers are out
instead of after proxy_timeout, 10m by default). A worker that shuts down
still drops the UDP sessions it has in flight (nginx's "disconnected on
shutdown"), so a query answered at that instant gets no answer and must be
sent again, as stub resolvers and check.dns do after a second. The lab's
load balancers (lab.StreamServers) are set up so, and a test proves it
against real BIND servers: resolvers over UDP and TCP see 0 failed queries
across ten switches and reloads.

Effects: path:PATH. Reads: PATH and conf's folder.`})
}

// Upstream is the argument struct of nginx.upstream().
type Upstream struct {
	Name    string   `arg:"name,required" doc:"the upstream's name, as proxy_pass names it"`
	Servers []string `arg:"servers,required" doc:"server lines without \"server\" and \";\": \"10.0.0.1:53 weight=2\""`
	Stream  bool     `arg:"stream" default:"False" doc:"a stream (TCP and UDP) upstream rather than an http one; only the default path differs"`
	Path    string   `arg:"path" doc:"the include file; default /etc/nginx/conf.d/upstream-NAME.conf, or /etc/nginx/stream.d/NAME.conf for stream"`
	Conf    string   `arg:"conf" default:"/etc/nginx/nginx.conf" doc:"nginx's main configuration file, which includes path"`

	content []byte // the file, rendered by Validate
	sum     string // its SHA-256
}

var (
	_ modules.Task      = (*Upstream)(nil)
	_ modules.Validator = (*Upstream)(nil)
	_ modules.Effector  = (*Upstream)(nil)
	_ modules.Reader    = (*Upstream)(nil)
	_ modules.Describer = (*Upstream)(nil)
)

var (
	validName   = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	validServer = regexp.MustCompile(`^[A-Za-z0-9_.:\[\]=/-]+( [A-Za-z0-9_.:=/-]+)*$`)
)

func (u *Upstream) Describe() string { return "nginx.upstream " + u.Name }

func validPath(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p && !strings.ContainsAny(p, " \t\n;|\\\"'{}$")
}

func (u *Upstream) Validate(env *modules.Env) error {
	if !validName.MatchString(u.Name) {
		return fmt.Errorf("name %q: use letters, digits and -_.", u.Name)
	}
	if len(u.Servers) == 0 {
		return fmt.Errorf("servers is empty: nginx refuses an upstream without servers")
	}
	for _, s := range u.Servers {
		if env != nil && env.Check && strings.HasPrefix(s, inventory.NotCreated) {
			continue // under --check, a server not created yet: shown as such, never applied
		}
		if !validServer.MatchString(s) {
			return fmt.Errorf("server %q is not an nginx server line (ADDRESS[:PORT] [PARAM=VALUE | backup | down]…, without \"server\" and \";\")", s)
		}
	}
	if u.Path == "" {
		u.Path = "/etc/nginx/conf.d/upstream-" + u.Name + ".conf"
		if u.Stream {
			u.Path = "/etc/nginx/stream.d/" + u.Name + ".conf"
		}
	}
	for what, p := range map[string]string{"path": u.Path, "conf": u.Conf} {
		if !validPath(p) {
			return fmt.Errorf("%s %q must be an absolute, clean path without spaces, quotes, braces, \";\", \"|\" or \"$\"", what, p)
		}
	}
	if u.Path == u.Conf {
		return fmt.Errorf("path is conf: the upstream goes in a file of its own, included by conf")
	}
	u.content = nginxconf.Upstream(u.Name, u.Servers, u.Stream)
	sum := sha256.Sum256(u.content)
	u.sum = hex.EncodeToString(sum[:])
	return nil
}

func (u *Upstream) Effects() []string { return []string{modules.PathKey(u.Path)} }

// Reads are the file and conf's folder, whose files the include path runs
// through.
func (u *Upstream) Reads() []string {
	return []string{modules.PathKey(u.Path), modules.PathKey(path.Dir(u.Conf) + "/")}
}

// Probe prints "#same" when the file has the wanted content; otherwise
// nginx -T's dump of the live configuration (every file nginx reads, each
// under a "# configuration file PATH:" line) and its status, and, when
// the dump fails, conf itself.
func (u *Upstream) Probe(modules.ProbeRequest) string {
	p, c := modules.Quote(u.Path), modules.Quote(u.Conf)
	return fmt.Sprintf(`_orch_s=
if [ -f %[1]s ]; then _orch_s=$(_orch_sha256 %[1]s); _orch_s=${_orch_s%%%% *}; fi
if [ "$_orch_s" = %[3]s ]; then echo '#same'
elif ! command -v nginx >/dev/null 2>&1; then echo '#nonginx'
else
  echo '#dump'; nginx -T -q -c %[2]s 2>&1; printf '\n#rc %%s\n' "$?"
  echo '#conf'; cat %[2]s 2>&1
  if [ -f %[1]s ]; then echo '#old'; _orch_b64e %[1]s; fi
fi
`, p, c, u.sum)
}

// probed is what the probe found.
type probed struct {
	same    bool
	dump    []file // nginx -T's files, in its order; just conf when the dump failed
	dumpErr string // nginx's message when the dump failed
	old     []byte // the live file's content, nil when it does not exist
}

type file struct {
	path    string
	content string
}

func parseProbe(out []byte, conf string) (probed, error) {
	s := string(out)
	if strings.HasPrefix(s, "#same") {
		return probed{same: true}, nil
	}
	if strings.HasPrefix(s, "#nonginx") {
		return probed{}, fmt.Errorf("nginx is not installed on the host")
	}
	body, ok := strings.CutPrefix(s, "#dump\n")
	if !ok {
		return probed{}, fmt.Errorf("unexpected probe output %q", firstLine(s))
	}
	var p probed
	if i := strings.LastIndex(body, "\n#old\n"); i >= 0 {
		old, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body[i+6:]), ""))
		if err != nil {
			return probed{}, fmt.Errorf("reading the live file: %w", err)
		}
		p.old, body = old, body[:i]
	}
	dump, confText, ok := strings.Cut(body, "\n#conf\n")
	if !ok {
		return probed{}, fmt.Errorf("unexpected probe output %q", firstLine(s))
	}
	rcAt := strings.LastIndex(dump, "\n#rc ")
	if rcAt < 0 {
		return probed{}, fmt.Errorf("unexpected probe output %q", firstLine(s))
	}
	rc := strings.TrimSpace(dump[rcAt+5:])
	dump = dump[:rcAt]
	if rc != "0" {
		p.dumpErr = strings.TrimSpace(dump)
		p.dump = []file{{path: conf, content: strings.TrimSuffix(confText, "\n")}}
		return p, nil
	}
	const header = "# configuration file "
	for _, chunk := range strings.Split("\n"+dump, "\n"+header)[1:] {
		name, content, ok := strings.Cut(chunk, ":\n")
		if !ok {
			return probed{}, fmt.Errorf("unexpected nginx -T output near %q", firstLine(chunk))
		}
		p.dump = append(p.dump, file{path: name, content: strings.TrimSuffix(content, "\n")})
	}
	if len(p.dump) == 0 || p.dump[0].path != conf {
		return probed{}, fmt.Errorf("nginx -T did not start with %s", conf)
	}
	return p, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func (u *Upstream) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	p, err := parseProbe(req.Output, u.Conf)
	if err != nil {
		resp.Err = err
		return
	}
	if p.same {
		resp.Reason = fmt.Sprintf("upstream %s in %s is up to date", u.Name, u.Path)
		return
	}
	var nonce [6]byte
	rand.Read(nonce[:])
	plan, err := planTest(p.dump, u.Conf, u.Path, "."+hex.EncodeToString(nonce[:]))
	if err != nil {
		if p.dumpErr != "" {
			err = fmt.Errorf("%w; nginx -T failed on the live configuration: %s", err, p.dumpErr)
		}
		resp.Err = err
		return
	}
	resp.Changed = true
	verb := "update"
	if p.old == nil {
		verb = "create"
	}
	resp.Reason = fmt.Sprintf("%s upstream %s in %s (%d servers)", verb, u.Name, u.Path, len(u.Servers))
	resp.Diff = u.diff(p.old)
	resp.Apply = u.applyScript(plan)
	resp.Notify = []modules.Handler{u.reloadHandler()}
}

func (u *Upstream) diff(old []byte) string {
	from := u.Path
	if old == nil {
		from = "/dev/null"
	}
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(old)), B: difflib.SplitLines(string(u.content)),
		FromFile: from, ToFile: u.Path, Context: 3,
	})
	return d
}

// testPlan is how the new file is tested: the new file's temporary name,
// and the copies of the files on the include path, conf's first.
type testPlan struct {
	newFile string
	copies  []file // path: the copy's name; content: rewritten
	names   map[string]string
}

var includeRe = regexp.MustCompile(`(?m)^([ \t]*(?:[^#\n]*[;{}][ \t]*)?)include[ \t]+("[^"]*"|'[^']*'|[^;\s]+)[ \t]*;`)

// planTest finds the files on the include path from conf to target in
// nginx's dump, and rewrites a copy of each so that it includes the new
// file (and the other copies) instead.
func planTest(dump []file, conf, target, nonce string) (testPlan, error) {
	prefix := path.Dir(conf) + "/"
	byPath := map[string]bool{}
	for _, f := range dump {
		byPath[f.path] = true
	}
	abs := func(arg string) string {
		arg = strings.Trim(arg, `"'`)
		if !strings.HasPrefix(arg, "/") {
			arg = prefix + arg
		}
		return path.Clean(arg)
	}
	// expand lists what an include names, as nginx reads it: a glob's
	// matches in sorted order (with target among them when it matches but
	// does not exist yet), or the path itself.
	expand := func(arg string) []string {
		a := abs(arg)
		if !strings.ContainsAny(a, "*?[") {
			return []string{a}
		}
		var out []string
		for _, f := range dump {
			if ok, _ := path.Match(a, f.path); ok {
				out = append(out, f.path)
			}
		}
		if ok, _ := path.Match(a, target); ok && !byPath[target] {
			out = append(out, target)
		}
		sort.Strings(out)
		return out
	}
	contents := map[string]string{}
	for _, f := range dump {
		contents[f.path] = f.content
	}
	leads := map[string]bool{} // a file that includes target, directly or not
	var visit func(p string, depth int) bool
	visit = func(p string, depth int) bool {
		if v, ok := leads[p]; ok || depth > 20 {
			return v
		}
		leads[p] = false
		for _, m := range includeRe.FindAllStringSubmatch(contents[p], -1) {
			for _, inc := range expand(m[2]) {
				if inc == target || (byPath[inc] && visit(inc, depth+1)) {
					leads[p] = true
				}
			}
		}
		return leads[p]
	}
	if !visit(conf, 0) {
		return testPlan{}, fmt.Errorf("%s is not included from %s (directly or through its includes): nginx would never read it", target, conf)
	}
	tmpName := func(p string) string { return path.Join(path.Dir(p), ".orch-test."+path.Base(p)+nonce) }
	tp := testPlan{newFile: path.Join(path.Dir(target), ".orch."+path.Base(target)+nonce), names: map[string]string{}}
	tp.names[tp.newFile] = target
	rename := func(p string) string {
		switch {
		case p == target:
			return tp.newFile
		case leads[p]:
			return tmpName(p)
		}
		return p
	}
	for _, f := range dump {
		if !leads[f.path] {
			continue
		}
		rewritten := includeRe.ReplaceAllStringFunc(f.content, func(directive string) string {
			m := includeRe.FindStringSubmatch(directive)
			files := expand(m[2])
			touched := false
			for _, inc := range files {
				if rename(inc) != inc {
					touched = true
				}
			}
			if !touched {
				return directive
			}
			var b strings.Builder
			b.WriteString(m[1])
			for i, inc := range files {
				if i > 0 {
					b.WriteString(" ")
				}
				fmt.Fprintf(&b, "include %s;", rename(inc))
			}
			return b.String()
		})
		name := tmpName(f.path)
		tp.names[name] = f.path
		tp.copies = append(tp.copies, file{path: name, content: rewritten + "\n"})
	}
	for p := range tp.names {
		if strings.ContainsAny(p, "|\n\\&") {
			return testPlan{}, fmt.Errorf("cannot test the configuration: %q holds characters the test cannot carry", tp.names[p])
		}
	}
	return tp, nil
}

// applyScript writes the new file and the test copies, runs nginx -t on
// the copy of conf, and only then renames the new file over the live one.
func (u *Upstream) applyScript(tp testPlan) string {
	q := modules.Quote
	var b strings.Builder
	all := []string{tp.newFile}
	for _, c := range tp.copies {
		all = append(all, c.path)
	}
	quoted := make([]string, len(all))
	for i, p := range all {
		quoted[i] = q(p)
	}
	rmAll := "rm -f " + strings.Join(quoted, " ")
	fmt.Fprintf(&b, "trap %s EXIT\ntrap %s HUP INT TERM\n", q(rmAll), q(rmAll+"; exit 1"))
	fmt.Fprintf(&b, "mkdir -p %s\n", q(path.Dir(u.Path)))
	write := func(p string, data []byte) {
		fmt.Fprintf(&b, "_orch_b64d > %s <<'ORCH_EOF'\n%sORCH_EOF\n", q(p), base64Lines(data))
	}
	write(tp.newFile, u.content)
	b.WriteString(fmt.Sprintf("chmod 0644 %s\n", q(tp.newFile)))
	for _, c := range tp.copies {
		write(c.path, []byte(c.content))
	}
	// nginx's message names the temporary files: read them back as the live ones.
	var sed strings.Builder
	for _, tmp := range sortedKeys(tp.names) {
		fmt.Fprintf(&sed, "s|%s|%s|g;", tmp, tp.names[tmp])
	}
	fmt.Fprintf(&b, "if ! _orch_v=$(nginx -t -q -c %s 2>&1 </dev/null); then\n  printf 'nginx -t rejected the configuration with the new %%s:\\n' %s\n  printf '%%s\\n' \"$_orch_v\" | sed %s\n  exit 1\nfi\n",
		q(tp.copies[0].path), q(u.Path), q(sed.String()))
	fmt.Fprintf(&b, "mv -f %s %s\n", q(tp.newFile), q(u.Path))
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// reloadHandler tests the live configuration and reloads nginx gracefully,
// then waits (up to 10 s) until the workers that ran the old configuration
// have finished their sessions and exited. So when the handler is done, no
// request goes to the old servers any more, and a plan may delete them.
func (u *Upstream) reloadHandler() modules.Handler {
	c := modules.Quote(u.Conf)
	script := fmt.Sprintf(`if ! _orch_v=$(nginx -t -q -c %[1]s 2>&1 </dev/null); then printf 'nginx -t failed; not reloading:\n%%s\n' "$_orch_v"; exit 1; fi
_orch_old=
if _orch_m=$(pgrep -o -x nginx 2>/dev/null); then _orch_old=$(pgrep -P "$_orch_m" 2>/dev/null); fi
if ! _orch_v=$(nginx -s reload -c %[1]s 2>&1 </dev/null); then
  case $_orch_v in
    *'No such file'*|*'invalid PID'*) echo 'nginx is not running: nothing to reload'; _orch_old= ;;
    *) printf '%%s\n' "$_orch_v"; exit 1 ;;
  esac
fi
_orch_i=0
while [ "$_orch_i" -lt 100 ]; do
  _orch_left=
  for _orch_p in $_orch_old; do kill -0 "$_orch_p" 2>/dev/null && _orch_left=1; done
  [ -n "$_orch_left" ] || break
  sleep 0.1; _orch_i=$((_orch_i + 1))
done
if [ -n "$_orch_left" ]; then echo 'old nginx workers still finish their sessions after 10s'; fi
`, c)
	return modules.Handler{ID: "service:nginx", Level: 1, Action: "reload nginx", Script: script}
}

func base64Lines(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	if enc != "" {
		b.WriteString(enc + "\n")
	}
	return b.String()
}
