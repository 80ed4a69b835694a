// Package file is the file module: files with content, directories,
// symlinks and absent paths, written atomically.
package file

import (
	"bytes"
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
)

func init() {
	modules.Register(modules.Info{
		ID: "file",
		Doc: `Manages a file, directory, symlink or absent path.

With state="file" the content comes from exactly one of content, src (a file
in the plan's folder) or template (a Go text/template in the plan's folder,
rendered with the host's vars, then vars, and .host). Content is compared by
SHA-256 on the host, so an unchanged file costs no transfer. Writes go to a
temporary file in the same directory, then rename over the target, so a
failed or killed run never leaves a half-written file. mode, owner and group
are enforced when given; an existing file keeps its own otherwise, and a new
one gets 0644 (0755 for directories). secret=True keeps the content out of
every diff, event and journal.`,
		New: func() any { return new(File) },
	})
}

// File is the argument struct of file().
type File struct {
	Path     string         `arg:"path,required" doc:"absolute path on the host"`
	Content  *string        `arg:"content" doc:"the file's content"`
	Src      string         `arg:"src" doc:"a file in the plan's folder whose bytes become the content"`
	Template string         `arg:"template" doc:"a Go text/template in the plan's folder"`
	Vars     map[string]any `arg:"vars" doc:"extra template variables"`
	Mode     string         `arg:"mode" doc:"octal permissions, e.g. \"0644\""`
	Owner    string         `arg:"owner" doc:"user name that owns the path"`
	Group    string         `arg:"group" doc:"group name that owns the path"`
	State    string         `arg:"state" default:"file" doc:"file | directory | absent | link"`
	Target   string         `arg:"target" doc:"what a link points to (state=\"link\")"`
	Secret   bool           `arg:"secret" default:"False" doc:"mask the content in all output"`

	data []byte // the wanted content, resolved by Validate
	mode uint32 // parsed Mode, valid when Mode != ""
}

var (
	_ modules.Task      = (*File)(nil)
	_ modules.Validator = (*File)(nil)
	_ modules.Pather    = (*File)(nil)
	_ modules.Secret    = (*File)(nil)
	_ modules.Describer = (*File)(nil)
)

func (f *File) Describe() string { return "file " + f.Path }
func (f *File) Paths() []string  { return []string{f.Path} }
func (f *File) IsSecret() bool   { return f.Secret }

// Validate checks the arguments and resolves the wanted content on the
// controller, so that a bad template fails before any host is touched.
func (f *File) Validate(env *modules.Env) error {
	if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
		return fmt.Errorf("path %q must be absolute and clean", f.Path)
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

// Probe prints: kind; then "mode owner group" if the path exists; then the
// SHA-256 (files) or link target (links); then, for --diff, the old
// content in base64. It costs two processes for a file and one otherwise.
func (f *File) Probe(req modules.ProbeRequest) string {
	p := modules.Quote(f.Path)
	var b strings.Builder
	fmt.Fprintf(&b, "_orch_kind %s\n", p)
	fmt.Fprintf(&b, "if [ -e %s ] || [ -L %s ]; then _orch_stat %s; fi\n", p, p, p)
	fmt.Fprintf(&b, "if [ -L %s ]; then readlink %s; elif [ -f %s ]; then _orch_sha256 %s; fi\n", p, p, p, p)
	if req.Diff && f.State == "file" && f.hasContent() && !f.Secret {
		fmt.Fprintf(&b, "if [ -f %s ] && [ ! -L %s ] && [ \"$(wc -c < %s)\" -le %d ]; then _orch_b64e %s; fi\n", p, p, p, diffLimit, p)
	}
	return b.String()
}

// facts is the parsed probe output.
type facts struct {
	kind         string // file | directory | link | other | absent
	mode         uint32
	owner, group string
	sum, target  string
	old          []byte // old content, when fetched for --diff
}

func parseFacts(out []byte) (facts, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	var ft facts
	if len(lines) == 0 || lines[0] == "" {
		return ft, fmt.Errorf("empty probe output")
	}
	ft.kind = lines[0]
	if ft.kind == "absent" {
		return ft, nil
	}
	if len(lines) < 2 {
		return ft, fmt.Errorf("probe output %q lacks the mode line", out)
	}
	fields := strings.Fields(lines[1])
	if len(fields) != 3 {
		return ft, fmt.Errorf("unexpected stat output %q", lines[1])
	}
	m, err := strconv.ParseUint(fields[0], 8, 32)
	if err != nil {
		return ft, fmt.Errorf("unexpected mode %q", fields[0])
	}
	ft.mode, ft.owner, ft.group = uint32(m), fields[1], fields[2]
	switch ft.kind {
	case "file":
		// sha256sum and sha256 -r print "HASH NAME"; only the hash matters.
		if len(lines) < 3 || len(strings.Fields(lines[2])) == 0 || len(strings.Fields(lines[2])[0]) != 64 {
			return ft, fmt.Errorf("probe output lacks the SHA-256 of the file")
		}
		ft.sum = strings.Fields(lines[2])[0]
		if len(lines) > 3 {
			old, err := base64.StdEncoding.DecodeString(strings.Join(lines[3:], ""))
			if err != nil {
				return ft, fmt.Errorf("old content: %w", err)
			}
			ft.old = old
		}
	case "link":
		if len(lines) >= 3 {
			ft.target = lines[2]
		}
	}
	return ft, nil
}

func (f *File) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	ft, err := parseFacts(req.Facts)
	if err != nil {
		resp.Err = fmt.Errorf("reading %s: %w", f.Path, err)
		return
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
	if ft.kind == "absent" {
		resp.Reason = f.Path + " is absent"
		return
	}
	resp.Changed, resp.Reason = true, "remove "+ft.kind+" "+f.Path
	resp.Diff = fmt.Sprintf("--- %s (%s)\n+++ %s (absent)\n", f.Path, ft.kind, f.Path)
	resp.Apply = "rm -rf " + modules.Quote(f.Path)
}

func (f *File) checkDirectory(ft facts, resp *modules.CheckResponse) {
	p := modules.Quote(f.Path)
	switch ft.kind {
	case "directory":
		f.checkAttrs(ft, resp)
		if !resp.Changed {
			resp.Reason = "directory " + f.Path + " is up to date"
		}
		return
	case "absent":
	default:
		resp.Err = fmt.Errorf("%s exists as a %s, not a directory", f.Path, ft.kind)
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
	if ft.kind == "link" && ft.target == f.Target {
		resp.Reason = f.Path + " points to " + f.Target
		return
	}
	if ft.kind != "link" && ft.kind != "absent" && ft.kind != "file" {
		resp.Err = fmt.Errorf("%s exists as a %s; refusing to replace it with a link", f.Path, ft.kind)
		return
	}
	resp.Changed, resp.Reason = true, "link "+f.Path+" -> "+f.Target
	resp.Diff = fmt.Sprintf("--- %s -> %s\n+++ %s -> %s\n", f.Path, ft.target, f.Path, f.Target)
	// A new link beside the old one, renamed over it, so the path is never missing.
	tmp := modules.Quote(path.Join(path.Dir(f.Path), ".orch-link."+path.Base(f.Path)))
	resp.Apply = fmt.Sprintf("rm -f %s\nln -s %s %s\nmv -f %s %s\n", tmp, modules.Quote(f.Target), tmp, tmp, modules.Quote(f.Path))
}

func (f *File) checkFile(ft facts, wantDiff bool, resp *modules.CheckResponse) {
	switch ft.kind {
	case "file", "absent":
	default:
		resp.Err = fmt.Errorf("%s exists as a %s, not a file", f.Path, ft.kind)
		return
	}
	if ft.kind == "absent" && !f.hasContent() {
		resp.Err = fmt.Errorf("%s does not exist and no content, src or template was given", f.Path)
		return
	}
	sum := sha256.Sum256(f.data)
	contentChanged := f.hasContent() && (ft.kind == "absent" || ft.sum != hex.EncodeToString(sum[:]))
	if !contentChanged {
		f.checkAttrs(ft, resp)
		if !resp.Changed {
			resp.Reason = f.Path + " is up to date"
		}
		return
	}
	resp.Changed = true
	if ft.kind == "absent" {
		resp.Reason = fmt.Sprintf("create %s (%d bytes)", f.Path, len(f.data))
	} else {
		resp.Reason = fmt.Sprintf("update %s (%d bytes)", f.Path, len(f.data))
	}
	if wantDiff {
		resp.Diff = f.contentDiff(ft)
	}
	resp.Apply = f.writeScript(ft)
}

// checkAttrs compares mode, owner and group of an existing path.
func (f *File) checkAttrs(ft facts, resp *modules.CheckResponse) {
	p := modules.Quote(f.Path)
	var changes []string
	var script strings.Builder
	if f.Mode != "" && ft.mode != f.mode {
		changes = append(changes, fmt.Sprintf("mode %04o -> %04o", ft.mode, f.mode))
		fmt.Fprintf(&script, "chmod %04o %s\n", f.mode, p)
	}
	if (f.Owner != "" && f.Owner != ft.owner) || (f.Group != "" && f.Group != ft.group) {
		changes = append(changes, fmt.Sprintf("owner %s:%s -> %s:%s", ft.owner, ft.group, or(f.Owner, ft.owner), or(f.Group, ft.group)))
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
func (f *File) writeScript(ft facts) string {
	p := modules.Quote(f.Path)
	mode := f.mode
	if f.Mode == "" {
		mode = 0o644
		if ft.kind == "file" {
			mode = ft.mode // keep the mode of a file we only rewrite
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "t=$(mktemp %s)\n", modules.Quote(path.Join(path.Dir(f.Path), ".orch."+path.Base(f.Path)+".XXXXXX")))
	b.WriteString("trap 'rm -f \"$t\"' EXIT\n")
	b.WriteString("_orch_b64d > \"$t\" <<'ORCH_EOF'\n")
	b.WriteString(base64Lines(f.data))
	b.WriteString("ORCH_EOF\n")
	fmt.Fprintf(&b, "chmod %04o \"$t\"\n", mode)
	switch {
	case f.Owner != "" || f.Group != "":
		b.WriteString(f.chownLine(`"$t"`))
	case ft.kind == "file":
		// Keep the owner of a file we only rewrite; only root may give files away.
		fmt.Fprintf(&b, "chown %s:%s \"$t\" 2>/dev/null || true\n", modules.Quote(ft.owner), modules.Quote(ft.group))
	}
	fmt.Fprintf(&b, "mv -f \"$t\" %s\ntrap - EXIT\n", p)
	return b.String()
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
	if ft.kind == "absent" {
		from = "/dev/null"
	}
	if !isText(ft.old) || !isText(f.data) {
		return fmt.Sprintf("--- %s\n+++ %s\n@@ binary content differs @@\n", from, f.Path)
	}
	if ft.kind == "file" && ft.old == nil && len(f.data) > 0 {
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
