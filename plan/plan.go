// Package plan is orch's Starlark host: it loads plan files, checks them
// statically against the module registry, and runs main(ctx) with the
// builtins that record tasks and drive a Runner. The plans that ship with
// orch are in package plans.
package plan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/orch-dev/orch/plans"
)

// MaxSteps bounds the Starlark computation of one thread (main, a role
// evaluation or a step), so a runaway loop fails instead of hanging a run.
const MaxSteps = 100_000_000

// fileOptions are the Starlark dialect of plans.
var fileOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}

// Plan is a loaded, statically checked plan with all the files it loads.
type Plan struct {
	Path  string // as the user named it; the prefix of positions in errors
	Files fs.FS  // the plan's folder; loads and file reads cannot leave it

	name    string // path of the main file inside Files
	display string // directory prefix for positions of loaded files
	progs   map[string]*starlark.Program
	env     starlark.StringDict // the predeclared names it was compiled with
	closer  func() error
	read    *sync.Map // names of the files read through Files, for FilesRead
}

// Error is a plan error with its position, such as a syntax error or an
// unknown module argument. Every Error is found before any host is touched.
type Error struct {
	Pos syntax.Position
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Pos, e.Msg) }

// Errors is a list of plan errors reported together.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Load reads the plan at path and every file it loads, and checks its
// module calls against the registry. When no such file exists and path
// names a shipped plan ("dns-swap" or "dns-swap.star"), the shipped one is
// used. Problems in the plan come back all at once, with their positions,
// as plan.Errors (or one *Error for a syntax error or a load cycle); any
// other error names the file that cannot be read. Close the plan when done.
func Load(planPath string) (*Plan, error) {
	if _, err := os.Stat(planPath); err != nil {
		if shipped, ok := plans.Lookup(planPath); ok {
			// Positions name the shipped file as it was asked for, with
			// its suffix: "stacks" reads as stacks.star.
			display := planPath
			if !strings.HasSuffix(display, ".star") {
				display += ".star"
			}
			return load(display, plans.FS, shipped, nil)
		}
		return nil, fmt.Errorf("plan %s: %w", planPath, err)
	}
	dir, base := filepath.Split(planPath)
	if dir == "" {
		dir = "."
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", planPath, err)
	}
	p, err := load(planPath, root.FS(), base, root.Close)
	if err != nil {
		root.Close()
	}
	return p, err
}

// LoadFS reads the plan named name inside files (an embed.FS, an
// fstest.MapFS, an os.Root's FS); display is how positions name the
// file. Its errors are Load's.
func LoadFS(files fs.FS, name, display string) (*Plan, error) {
	return load(display, files, name, nil)
}

func load(display string, files fs.FS, name string, closer func() error) (*Plan, error) {
	read := &sync.Map{}
	p := &Plan{
		Path:    display,
		Files:   planFolder{files, read},
		name:    name,
		display: strings.TrimSuffix(display, path.Base(name)),
		progs:   map[string]*starlark.Program{},
		env:     predeclared(),
		closer:  closer,
		read:    read,
	}
	src, err := fs.ReadFile(p.Files, name)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", display, err)
	}
	var errs Errors
	if err := p.compile(name, src, nil, &errs); err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if _, ok := p.progs[name]; !ok {
		return nil, fmt.Errorf("plan %s did not compile", display)
	}
	return p, nil
}

// planFolder is the plan's folder as plans and modules read it. It refuses
// a path that leaves the folder (.., absolute, or through a symlink, which
// os.Root already refuses) with an error that says so, and remembers the
// files opened, so that a resumed run can tell whether they changed.
type planFolder struct {
	fs.FS
	read *sync.Map
}

var errOutsideFolder = errors.New("outside the plan's folder; plans read files only under their own folder")

func (f planFolder) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	var pe *fs.PathError
	if err != nil && (!fs.ValidPath(name) || errors.As(err, &pe) && pe.Err.Error() == "path escapes from parent") {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errOutsideFolder}
	}
	if err == nil && f.read != nil {
		if fi, serr := file.Stat(); serr == nil && fi.Mode().IsRegular() {
			f.read.Store(name, true)
		}
	}
	return file, err
}

// FilesRead lists, sorted, the files of the plan's folder read so far: the
// plan's sources, loaded when the plan was, and the files its modules read
// since (src=, template=).
func (p *Plan) FilesRead() []string {
	var names []string
	if p.read != nil {
		p.read.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
	}
	slices.Sort(names)
	return names
}

// Close releases the plan's folder.
func (p *Plan) Close() error {
	if p.closer != nil {
		return p.closer()
	}
	return nil
}

// compile parses, resolves and statically checks one file and, depth first,
// every file it loads. Static findings are appended to errs so the user
// sees them all at once; a syntax error or a load cycle stops at once.
func (p *Plan) compile(name string, src []byte, stack []string, errs *Errors) error {
	if _, done := p.progs[name]; done {
		return nil
	}
	f, prog, err := starlark.SourceProgramOptions(fileOptions, p.displayName(name), src, p.env.Has)
	if err != nil {
		var se syntax.Error
		if errors.As(err, &se) {
			return &Error{Pos: se.Pos, Msg: se.Msg}
		}
		var re resolve.ErrorList
		if errors.As(err, &re) {
			for _, e := range re {
				*errs = append(*errs, &Error{Pos: e.Pos, Msg: e.Msg})
			}
			return nil
		}
		return err
	}
	*errs = append(*errs, checkCalls(f)...)
	for i := range prog.NumLoads() {
		module, pos := prog.Load(i)
		dep, err := p.resolveLoad(name, module)
		if err != nil {
			return &Error{Pos: pos, Msg: err.Error()}
		}
		chain := append(stack[:len(stack):len(stack)], name)
		if slices.Contains(chain, dep) {
			return &Error{Pos: pos, Msg: fmt.Sprintf("load cycle: %s -> %s", strings.Join(chain, " -> "), dep)}
		}
		depSrc, err := fs.ReadFile(p.Files, dep)
		if err != nil {
			return &Error{Pos: pos, Msg: fmt.Sprintf("cannot load %q: %v", module, err)}
		}
		if err := p.compile(dep, depSrc, chain, errs); err != nil {
			return err
		}
	}
	p.progs[name] = prog
	return nil
}

// resolveLoad maps a load() argument, relative to the loading file, to a
// path inside the plan's folder.
func (p *Plan) resolveLoad(from, module string) (string, error) {
	if path.IsAbs(module) {
		return "", fmt.Errorf("cannot load %q: load paths are relative to the plan file", module)
	}
	dep := path.Join(path.Dir(from), module)
	if !fs.ValidPath(dep) {
		return "", fmt.Errorf("cannot load %q: it is outside the plan's folder", module)
	}
	return dep, nil
}

func (p *Plan) displayName(name string) string { return p.display + name }

// posError turns a Starlark evaluation error into one that leads with the
// innermost plan position, e.g. "plan.star:12:5: file: unknown argument".
func posError(err error) error {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return err
	}
	var pos syntax.Position
	for i := len(ee.CallStack) - 1; i >= 0; i-- {
		if p := ee.CallStack[i].Pos; p.Filename() != "<builtin>" && p.Line > 0 {
			pos = p
			break
		}
	}
	if pos.Line == 0 {
		return err
	}
	// An error from a role or step evaluated inside this call already has
	// its own, more precise position: lead with it, and keep the outer
	// call as context.
	var inner *RuntimeError
	if errors.As(ee.Unwrap(), &inner) {
		context := strings.TrimSuffix(strings.TrimSuffix(ee.Msg, inner.Error()), ": ")
		return &RuntimeError{Pos: inner.Pos, Msg: fmt.Sprintf("%s [%s, at %s]", inner.Msg, context, pos), Backtrace: ee.Backtrace(), err: ee}
	}
	return &RuntimeError{Pos: pos, Msg: ee.Msg, Backtrace: ee.Backtrace(), err: ee}
}

// RuntimeError is an error raised while a plan runs, at a plan position.
type RuntimeError struct {
	Pos       syntax.Position
	Msg       string
	Backtrace string
	err       error
}

func (e *RuntimeError) Error() string { return fmt.Sprintf("%s: %s", e.Pos, e.Msg) }
func (e *RuntimeError) Unwrap() error { return e.err }

// newThread makes a thread for one unit of plan work, cancelled with ctx.
func newThread(ctx context.Context, name string) (*starlark.Thread, func()) {
	th := &starlark.Thread{Name: name}
	th.SetMaxExecutionSteps(MaxSteps)
	th.OnMaxSteps = func(th *starlark.Thread) {
		// Instructions without a position of their own report their
		// function's def line: give the loop a few more steps to reach a
		// line of its body, so the error points into the loop.
		fr := th.DebugFrame(0)
		if fn, ok := fr.Callable().(*starlark.Function); ok && fr.Position() == fn.Position() && th.ExecutionSteps() < MaxSteps+1000 {
			return
		}
		th.Cancel(fmt.Sprintf("more than %d execution steps: is there an endless loop?", MaxSteps))
	}
	stop := context.AfterFunc(ctx, func() { th.Cancel(context.Cause(ctx).Error()) })
	th.SetLocal(localContext, ctx)
	return th, func() { stop() }
}
