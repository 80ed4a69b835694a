// Package file is the file module: files with content, directories,
// symlinks and absent paths, written atomically.
package file

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"text/template"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/pathfact"
)

func init() {
	modules.Register(modules.Info{
		ID: "file",
		Doc: `Manages a file, directory, symlink or absent path.

With state="file" the content comes from exactly one of content, src (a file
in the plan's folder) or template (a Go text/template in the plan's folder,
rendered with the host's vars, then vars, and .host). Content is compared by
SHA-256 on the host, so an unchanged file costs no transfer. Writes go to a
temporary file in the same directory (content over 1 MiB travels by SFTP),
then rename over the target, so a failed or killed run never leaves a
half-written file. mode, owner and group
are enforced when given; an existing file keeps its own otherwise, and a new
one gets 0644 (0755 for directories). secret=True keeps the content out of
every diff, event and journal.

validate= checks the new content before it goes live: the command runs on
the temporary file (%s stands for its path, e.g. "nginx -t -c %s",
"named-checkzone example.test %s", "visudo -cf %s"), and only when it
succeeds is the file renamed over the target. When it fails, the live file
is untouched and the task fails with the validator's output.

Effects: path:PATH (path:PATH/ for absent and link, which replace a tree).`,
		New: func() any { return new(File) },
	})
}

// File is the argument struct of file().
type File struct {
	Path      string         `arg:"path,required" doc:"absolute path on the host"`
	Content   *string        `arg:"content" doc:"the file's content"`
	Src       string         `arg:"src" doc:"a file in the plan's folder whose bytes become the content"`
	Template  string         `arg:"template" doc:"a Go text/template in the plan's folder"`
	Vars      map[string]any `arg:"vars" doc:"extra template variables"`
	Mode      string         `arg:"mode" doc:"octal permissions, e.g. \"0644\""`
	Owner     string         `arg:"owner" doc:"user name that owns the path"`
	Group     string         `arg:"group" doc:"group name that owns the path"`
	State     string         `arg:"state" default:"file" doc:"file | directory | absent | link"`
	Target    string         `arg:"target" doc:"what a link points to (state=\"link\")"`
	Secret    bool           `arg:"secret" default:"False" doc:"mask the content in all output"`
	Validator string         `arg:"validate" doc:"command that checks the new content before it goes live; %s is the temporary file"`

	data []byte // the wanted content, resolved by Validate
	mode uint32 // parsed Mode, valid when Mode != ""
}

var (
	_ modules.Task       = (*File)(nil)
	_ modules.Validator  = (*File)(nil)
	_ modules.Effector   = (*File)(nil)
	_ modules.Secret     = (*File)(nil)
	_ modules.Describer  = (*File)(nil)
	_ modules.FactReader = (*File)(nil)
)

func (f *File) Describe() string { return "file " + f.Path }

// Effects is the file's path; removing a path or replacing it with a link
// changes everything under it too.
func (f *File) Effects() []string {
	if f.State == "absent" || f.State == "link" {
		return []string{modules.PathKey(strings.TrimSuffix(f.Path, "/") + "/")}
	}
	return []string{modules.PathKey(f.Path)}
}
func (f *File) IsSecret() bool { return f.Secret }

// Validate checks the arguments and resolves the wanted content on the
// controller, so that a bad template fails before any host is touched.
func (f *File) Validate(env *modules.Env) error {
	if err := f.validate(env); err != nil {
		return err
	}
	if f.Validator != "" {
		if f.State != "file" || !f.hasContent() {
			return fmt.Errorf("validate goes with content, src or template")
		}
		if !strings.Contains(f.Validator, "%s") {
			return fmt.Errorf("validate %q: use %%s where the new file's path goes, e.g. \"nginx -t -c %%s\"", f.Validator)
		}
	}
	return nil
}

func (f *File) validate(env *modules.Env) error {
	if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || strings.ContainsAny(f.Path, "\n\x00") {
		return fmt.Errorf("path %q must be absolute and clean, without newlines", f.Path)
	}
	if f.Mode != "" {
		m, err := strconv.ParseUint(f.Mode, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("mode %q is not an octal permission like \"0644\"", f.Mode)
		}
		f.mode = uint32(m)
	}
	sources := 0
	for _, set := range []bool{f.Content != nil, f.Src != "", f.Template != ""} {
		if set {
			sources++
		}
	}
	switch f.State {
	case "file":
		if sources > 1 {
			return fmt.Errorf("give only one of content, src and template")
		}
	case "directory", "absent", "link":
		if sources > 0 {
			return fmt.Errorf("content, src and template need state=\"file\", not %q", f.State)
		}
	default:
		return fmt.Errorf("state %q is not one of file, directory, absent, link", f.State)
	}
	if (f.State == "link") != (f.Target != "") {
		return fmt.Errorf("target goes with state=\"link\", and state=\"link\" needs a target")
	}
	if f.Vars != nil && f.Template == "" {
		return fmt.Errorf("vars goes with template")
	}
	switch {
	case f.Content != nil:
		f.data = []byte(*f.Content)
	case f.Src != "":
		b, err := fs.ReadFile(env.Files, f.Src)
		if err != nil {
			return fmt.Errorf("src: %w", err)
		}
		f.data = b
	case f.Template != "":
		b, err := render(env, f.Template, f.Vars)
		if err != nil {
			return err
		}
		f.data = b
	}
	return nil
}

func render(env *modules.Env, name string, vars map[string]any) ([]byte, error) {
	text, err := fs.ReadFile(env.Files, name)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	tmpl, err := template.New(name).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	data := map[string]any{}
	if h := env.Host; h != nil {
		for k, v := range h.Vars {
			data[k] = v
		}
		data["host"] = map[string]any{"name": h.Name, "address": h.Address, "groups": h.Groups}
	}
	for k, v := range vars {
		data[k] = v
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, data); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return out.Bytes(), nil
}

// hasContent reports whether the task manages the file's bytes, not just its
// existence and attributes.
func (f *File) hasContent() bool { return f.Content != nil || f.Src != "" || f.Template != "" }

// diffLimit bounds the old content fetched for --diff.
const diffLimit = 1 << 20

// Facts asks for the state of the path: the engine gathers it for all of a
// host's paths with one stat and one hash process.
func (f *File) Facts() []modules.FactKey { return []modules.FactKey{pathfact.Key(f.Path)} }

// Probe fetches the old content, in base64, only when a diff is wanted;
// everything else comes from the shared path fact.
func (f *File) Probe(req modules.ProbeRequest) string {
	if !req.Diff || f.State != "file" || !f.hasContent() || f.Secret {
		return ""
	}
	p := modules.Quote(f.Path)
	return fmt.Sprintf("if [ -f %s ] && [ ! -L %s ] && [ \"$(wc -c < %s)\" -le %d ]; then _orch_b64e %s; fi\n", p, p, p, diffLimit, p)
}

// facts is what Check knows of the path.
type facts struct {
	pathfact.State
	old []byte // old content, when fetched for --diff
}

func (f *File) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	st, err := pathfact.Of(req, f.Path)
	if err != nil {
		resp.Err = err
		return
	}
	ft := facts{State: st}
	if len(req.Output) > 0 {
		old, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(req.Output)), ""))
		if err != nil {
			resp.Err = fmt.Errorf("reading the old content of %s: %w", f.Path, err)
			return
		}
		ft.old = old
	}
	switch f.State {
	case "absent":
		f.checkAbsent(ft, resp)
	case "directory":
		f.checkDirectory(ft, resp)
	case "link":
		f.checkLink(ft, resp)
	default:
		f.checkFile(ft, req.Diff, resp)
	}
}

func (f *File) checkAbsent(ft facts, resp *modules.CheckResponse) {
	if ft.Kind == "absent" {
		resp.Reason = f.Path + " is absent"
		return
	}
	resp.Changed, resp.Reason = true, "remove "+ft.Kind+" "+f.Path
	resp.Diff = fmt.Sprintf("--- %s (%s)\n+++ %s (absent)\n", f.Path, ft.Kind, f.Path)
	resp.Apply = "rm -rf " + modules.Quote(f.Path)
}

func (f *File) checkDirectory(ft facts, resp *modules.CheckResponse) {
	p := modules.Quote(f.Path)
	switch ft.Kind {
	case "directory":
		f.checkAttrs(ft, resp)
		if !resp.Changed {
			resp.Reason = "directory " + f.Path + " is up to date"
		}
		return
	case "absent":
	default:
		resp.Err = fmt.Errorf("%s exists as a %s, not a directory", f.Path, ft.Kind)
		return
	}
	resp.Changed, resp.Reason = true, "create directory "+f.Path
	resp.Diff = fmt.Sprintf("--- %s (absent)\n+++ %s (directory)\n", f.Path, f.Path)
	mode := f.mode
	if f.Mode == "" {
		mode = 0o755
	}
	resp.Apply = fmt.Sprintf("mkdir -p %s\nchmod %04o %s\n", p, mode, p) + f.chownLine(p)
}

func (f *File) checkLink(ft facts, resp *modules.CheckResponse) {
	if ft.Kind == "link" && ft.Target == f.Target {
		resp.Reason = f.Path + " points to " + f.Target
		return
	}
	if ft.Kind != "link" && ft.Kind != "absent" && ft.Kind != "file" {
		resp.Err = fmt.Errorf("%s exists as a %s; refusing to replace it with a link", f.Path, ft.Kind)
		return
	}
	resp.Changed, resp.Reason = true, "link "+f.Path+" -> "+f.Target
	resp.Diff = fmt.Sprintf("--- %s -> %s\n+++ %s -> %s\n", f.Path, ft.Target, f.Path, f.Target)
	// A new link beside the old one, renamed over it, so the path is never missing.
	tmp := modules.Quote(path.Join(path.Dir(f.Path), ".orch-link."+path.Base(f.Path)))
	resp.Apply = fmt.Sprintf("rm -f %s\nln -s %s %s\n_orch_mvlink %s %s\n", tmp, modules.Quote(f.Target), tmp, tmp, modules.Quote(f.Path))
}

func (f *File) checkFile(ft facts, wantDiff bool, resp *modules.CheckResponse) {
	switch ft.Kind {
	case "file", "absent":
	default:
		resp.Err = fmt.Errorf("%s exists as a %s, not a file", f.Path, ft.Kind)
		return
	}
	if ft.Kind == "absent" && !f.hasContent() {
		resp.Err = fmt.Errorf("%s does not exist and no content, src or template was given", f.Path)
		return
	}
	sum := sha256.Sum256(f.data)
	contentChanged := f.hasContent() && (ft.Kind == "absent" || ft.Sum != hex.EncodeToString(sum[:]))
	if !contentChanged {
		f.checkAttrs(ft, resp)
		if !resp.Changed {
			resp.Reason = f.Path + " is up to date"
		}
		return
	}
	resp.Changed = true
	if ft.Kind == "absent" {
		resp.Reason = fmt.Sprintf("create %s (%d bytes)", f.Path, len(f.data))
	} else {
		resp.Reason = fmt.Sprintf("update %s (%d bytes)", f.Path, len(f.data))
	}
	if wantDiff {
		resp.Diff = f.contentDiff(ft)
	}
	resp.Apply, resp.Upload = f.writeScript(ft)
}

// checkAttrs compares mode, owner and group of an existing path.
func (f *File) checkAttrs(ft facts, resp *modules.CheckResponse) {
	p := modules.Quote(f.Path)
	var changes []string
	var script strings.Builder
	if f.Mode != "" && ft.Mode != f.mode {
		changes = append(changes, fmt.Sprintf("mode %04o -> %04o", ft.Mode, f.mode))
		fmt.Fprintf(&script, "chmod %04o %s\n", f.mode, p)
	}
	if (f.Owner != "" && f.Owner != ft.Owner) || (f.Group != "" && f.Group != ft.Group) {
		changes = append(changes, fmt.Sprintf("owner %s:%s -> %s:%s", ft.Owner, ft.Group, or(f.Owner, ft.Owner), or(f.Group, ft.Group)))
		script.WriteString(f.chownLine(p))
	}
	if len(changes) == 0 {
		return
	}
	resp.Changed = true
	resp.Reason = f.Path + ": " + strings.Join(changes, ", ")
	resp.Diff = fmt.Sprintf("--- %s\n+++ %s\n@@ %s @@\n", f.Path, f.Path, strings.Join(changes, ", "))
	resp.Apply = script.String()
}

func (f *File) chownLine(quoted string) string {
	switch {
	case f.Owner != "" && f.Group != "":
		return fmt.Sprintf("chown %s:%s %s\n", modules.Quote(f.Owner), modules.Quote(f.Group), quoted)
	case f.Owner != "":
		return fmt.Sprintf("chown %s %s\n", modules.Quote(f.Owner), quoted)
	case f.Group != "":
		return fmt.Sprintf("chgrp %s %s\n", modules.Quote(f.Group), quoted)
	}
	return ""
}

// writeScript writes the content to a temporary file beside the target,
// sets its attributes, and renames it over the target.
func (f *File) writeScript(ft facts) (string, *modules.Upload) {
	p := modules.Quote(f.Path)
	mode := f.mode
	if f.Mode == "" {
		mode = 0o644
		if ft.Kind == "file" {
			mode = ft.Mode // keep the mode of a file we only rewrite
		}
	}
	base := path.Base(f.Path)
	if len(base) > 100 {
		base = base[:100]
	}
	if len(f.data) > uploadAbove {
		return f.uploadScript(ft, base, mode)
	}
	// The temporary file is named by the run's nonce ($ORCH_M) and created
	// with noclobber, which spares a mktemp process per file.
	var b strings.Builder
	fmt.Fprintf(&b, "t=%s.\"$ORCH_M\"\n", modules.Quote(path.Join(path.Dir(f.Path), ".orch."+base)))
	// dash runs no EXIT trap when a signal kills it, so trap those too;
	// PIPE as well: once the session is gone, dash's own "Terminated"
	// notice for a validator the watchdog ended would kill it unawares.
	b.WriteString("trap 'rm -f \"$t\"' EXIT\ntrap 'rm -f \"$t\"; exit 1' HUP INT TERM PIPE\n")
	// A file without x or special bits is created with its mode under a
	// umask, which spares a chmod process, unless an ACL may override the
	// umask. The umask stays set for the rest of the task's own subshell.
	byUmask := ft.UmaskApplies && mode&^0o666 == 0
	if byUmask {
		fmt.Fprintf(&b, "umask %04o\n", 0o777&^mode)
	}
	b.WriteString("set -C\n")
	if bytes.IndexByte(f.data, 0) < 0 {
		// The printf builtin spares a base64 process; the sh word holds
		// any bytes but NUL. dash's printf reports a full disk as "I/O
		// error": _orch_werr finds out the real reason.
		fmt.Fprintf(&b, "printf %%s %s > \"$t\" || _orch_werr \"$t\"\n", modules.Quote(string(f.data)))
	} else {
		b.WriteString("_orch_b64d > \"$t\" <<'ORCH_EOF'\n")
		b.WriteString(base64Lines(f.data))
		b.WriteString("ORCH_EOF\n")
	}
	b.WriteString("set +C\n")
	if !byUmask {
		fmt.Fprintf(&b, "chmod %04o \"$t\"\n", mode)
	}
	b.WriteString(f.keepOwner(ft))
	b.WriteString(f.validateLine())
	fmt.Fprintf(&b, "mv -f \"$t\" %s\ntrap - EXIT HUP INT TERM PIPE\n", p)
	return b.String(), nil
}

// validateLine runs validate= on the temporary file "$t"; when it fails,
// its output is the task's output and the exit ends the snippet before the
// rename, so the trap removes the temporary file and the live one stays.
func (f *File) validateLine() string {
	if f.Validator == "" {
		return ""
	}
	cmd := strings.ReplaceAll(f.Validator, "%s", `"$t"`)
	return fmt.Sprintf("if ! _orch_v=$( { %s\n} 2>&1 </dev/null ); then printf 'validate failed: %%s\\n%%s\\n' %s \"$_orch_v\"; exit 1; fi\n",
		cmd, modules.Quote(f.Validator))
}

// keepOwner is the chown of the temporary file: the wanted owner, or the
// one of the file it replaces.
func (f *File) keepOwner(ft facts) string {
	switch {
	case f.Owner != "" || f.Group != "":
		return f.chownLine(`"$t"`)
	case ft.Kind == "file":
		// By number: the name may not resolve. Only root may give files
		// away, so others keep theirs.
		return fmt.Sprintf("chown %d:%d \"$t\" 2>/dev/null || true\n", ft.UID, ft.GID)
	}
	return ""
}

// uploadAbove is the size above which content goes over SFTP rather than
// inside the apply script, which would hold it in memory, base64-encoded.
const uploadAbove = 1 << 20

// uploadScript has the engine write the content to a temporary file beside
// the target over SFTP; the script then sets its attributes and renames it
// over the target.
func (f *File) uploadScript(ft facts, base string, mode uint32) (string, *modules.Upload) {
	var nonce [8]byte
	rand.Read(nonce[:])
	tmp := path.Join(path.Dir(f.Path), ".orch."+base+".upload-"+hex.EncodeToString(nonce[:]))
	var b strings.Builder
	fmt.Fprintf(&b, "t=%s\n", modules.Quote(tmp))
	b.WriteString("trap 'rm -f \"$t\" \"$ORCH_UPLOAD\"' EXIT\ntrap 'rm -f \"$t\" \"$ORCH_UPLOAD\"; exit 1' HUP INT TERM PIPE\n")
	// Under become the engine uploads to a private file of the login user:
	// copy it beside the target, as the become user.
	b.WriteString("if [ \"$ORCH_UPLOAD\" != \"$t\" ]; then set -C; cat \"$ORCH_UPLOAD\" > \"$t\"; set +C; rm -f \"$ORCH_UPLOAD\"; fi\n")
	fmt.Fprintf(&b, "chmod %04o \"$t\"\n", mode)
	b.WriteString(f.keepOwner(ft))
	b.WriteString(f.validateLine())
	fmt.Fprintf(&b, "mv -f \"$t\" %s\ntrap - EXIT HUP INT TERM PIPE\n", modules.Quote(f.Path))
	return b.String(), &modules.Upload{Path: tmp, Data: f.data, Mode: mode}
}

func base64Lines(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteByte('\n')
		enc = enc[76:]
	}
	if enc != "" {
		b.WriteString(enc)
		b.WriteByte('\n')
	}
	return b.String()
}

func (f *File) contentDiff(ft facts) string {
	if f.Secret {
		return fmt.Sprintf("--- %s\n+++ %s\n@@ content hidden: secret @@\n", f.Path, f.Path)
	}
	from := f.Path
	if ft.Kind == "absent" {
		from = "/dev/null"
	}
	if !isText(ft.old) || !isText(f.data) {
		return fmt.Sprintf("--- %s\n+++ %s\n@@ binary content differs @@\n", from, f.Path)
	}
	if ft.Kind == "file" && ft.old == nil && len(f.data) > 0 {
		return fmt.Sprintf("--- %s\n+++ %s\n@@ old content not fetched (over %d bytes) @@\n", from, f.Path, diffLimit)
	}
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        splitLines(ft.old),
		B:        splitLines(f.data),
		FromFile: from,
		ToFile:   f.Path,
		Context:  3,
	})
	return d
}

// splitLines splits text into lines that keep their "\n"; a last line
// without one is marked as such, as diff(1) does.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	lines := strings.SplitAfter(string(b), "\n")
	if last := lines[len(lines)-1]; last == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] = last + "\n\\ No newline at end of file\n"
	}
	return lines
}

func isText(b []byte) bool { return !bytes.ContainsRune(b, 0) }

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
