package apisurface

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/orch-dev/orch/testkit/fixture"
)

const modulePath = "github.com/orch-dev/orch"

// allowed are the places outside commands that may read the environment
// or touch the process's standard streams, each a documented default of
// an option or a tool's own convention. An entry nothing uses any more
// fails the test, so the list stays true.
var allowed = map[string]string{
	"engine/conn/sshconn/auth.go: os.Getenv":                             "Config.Agent's default agent socket, $SSH_AUTH_SOCK, and IdentityAgent's $VAR, as ssh reads them",
	"engine/conn/sshconn/config.go: os.Getenv":                           "the local user name ($USER) when the user database has none, as ssh's %u",
	"engine/conn/sshconn/sshconfig.go: os.Getenv":                        "${VAR} in ssh config files, expanded as OpenSSH expands it",
	"lab/cloudproc.go: os.Environ":                                       "the lab cloud's child process inherits orch's environment",
	"lab/image/image.go: os.Getenv":                                      "ORCH_LAB_PULL, the lab image build's documented switch",
	"lab/image/mirror.go: os.Getenv":                                     "ORCH_LAB_MIRROR, the lab image build's documented mirror override",
	"lab/internal/dockercli/dockercli.go: os.Getenv":                     "DOCKER_HOST, so the lab's API calls reach the engine its docker commands reach",
	"testkit/require/require.go: os.Getenv":                              "ORCH_TEST_REQUIRE, which turns skipped tests into failures in CI",
	"modules/internal/facttest/facttest.go: os.Getenv":                   "a test helper's capture and reparse switches (ORCH_CAPTURE_*), for recording fact fixtures",
	"modules/internal/cloud/cloudtesting/cloudtesting.go: log.SetOutput": "a test helper that catches what the standard logger would print",
	"modules/internal/cloud/cloudtesting/cloudtesting.go: os.Stderr":     "a test helper restoring the standard logger's output",
}

// forbidden are the package-level names that print, exit, read flags or
// touch the environment, by import path. An empty list forbids every
// name of the package.
var forbidden = map[string][]string{
	"os":                           {"Exit", "Getenv", "LookupEnv", "Setenv", "Unsetenv", "Clearenv", "Environ", "ExpandEnv", "Stdout", "Stderr", "Stdin"},
	"syscall":                      {"Exit", "Getenv", "Setenv", "Unsetenv", "Clearenv", "Environ"},
	"fmt":                          {"Print", "Printf", "Println"},
	"log":                          {},
	"flag":                         {},
	"log/slog":                     {"Debug", "DebugContext", "Info", "InfoContext", "Warn", "WarnContext", "Error", "ErrorContext", "Log", "LogAttrs", "SetDefault"},
	"github.com/charmbracelet/log": {},
}

// TestLibraryNeitherPrintsNorExitsNorReadsTheEnvironment scans every
// non-test Go file of the module outside commands (package main).
func TestLibraryNeitherPrintsNorExitsNorReadsTheEnvironment(t *testing.T) {
	used := map[string]bool{}
	for rel, f := range sources(t, func(rel string, f *ast.File) bool { return f.Name.Name != "main" }) {
		for _, use := range forbiddenUses(f) {
			key := rel + ": " + use.name
			if _, ok := allowed[key]; ok {
				used[key] = true
				continue
			}
			t.Errorf("%s:%d: %s: only commands print, exit, parse flags or read the environment; return an error, emit an event, or take an option", rel, use.line, use.name)
		}
	}
	for key := range allowed {
		if !used[key] {
			t.Errorf("allow-list entry %q matches nothing: remove it", key)
		}
	}
}

// TestPublicAPIHasDocComments checks that every public package has a
// package doc and every exported name a doc comment. Methods that
// implement a documented interface (error, fmt.Stringer, the modules and
// conn contracts) are documented there.
func TestPublicAPIHasDocComments(t *testing.T) {
	byInterface := []string{"Error", "Unwrap", "String", "MarshalJSON", "UnmarshalJSON",
		"Probe", "Check", "Validate", "Describe", "IsSecret", "Effects", "Facts", "Reads", "Watches", "Recheck", "Call", "Script", "Parse",
		"Exec", "WriteFile", "Exchanges", "Close", "Alive"}
	pkgDoc := map[string]bool{}
	for rel, f := range sources(t, func(rel string, _ *ast.File) bool { return isPublic(filepath.ToSlash(filepath.Dir(rel))) }) {
		dir := filepath.ToSlash(filepath.Dir(rel))
		if f.Doc != nil {
			pkgDoc[dir] = true
		} else if _, seen := pkgDoc[dir]; !seen {
			pkgDoc[dir] = false
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() || d.Doc != nil || d.Recv != nil && (!exportedRecv(d.Recv) || slices.Contains(byInterface, d.Name.Name)) {
					continue
				}
				t.Errorf("%s: %s has no doc comment", rel, d.Name.Name)
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() && d.Doc == nil && s.Doc == nil {
							t.Errorf("%s: type %s has no doc comment", rel, s.Name.Name)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() && d.Doc == nil && s.Doc == nil && s.Comment == nil {
								t.Errorf("%s: %s has no doc comment", rel, n.Name)
							}
						}
					}
				}
			}
		}
	}
	for dir, ok := range pkgDoc {
		if !ok {
			t.Errorf("package %s has no package doc comment", dir)
		}
	}
}

// TestExamplesUseOnlyThePublicAPI checks the imports of the programs
// under examples/.
func TestExamplesUseOnlyThePublicAPI(t *testing.T) {
	n := 0
	for rel, f := range sources(t, func(rel string, _ *ast.File) bool { return strings.HasPrefix(rel, "examples/") }) {
		n++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if rest, ours := strings.CutPrefix(p, modulePath+"/"); ours && !isPublic(rest) {
				t.Errorf("%s imports %s, which is not public API", rel, p)
			}
		}
	}
	if n == 0 {
		t.Error("no programs under examples/")
	}
}

// isPublic reports whether a package (a path relative to the module) is
// in Public.
func isPublic(rel string) bool {
	for _, p := range Public {
		if tree, ok := strings.CutSuffix(p, "/..."); ok {
			if strings.HasPrefix(rel, tree+"/") && !slices.Contains(strings.Split(rel, "/"), "internal") {
				return true
			}
		} else if rel == p {
			return true
		}
	}
	return false
}

func exportedRecv(recv *ast.FieldList) bool {
	t := recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok {
		t = ix.X
	}
	id, ok := t.(*ast.Ident)
	return ok && id.IsExported()
}

type use struct {
	name string // "os.Getenv"
	line int
}

// forbiddenUses lists the uses of forbidden names in a file: selectors
// on an imported package (not on a local variable of the same name) and
// the print and println builtins.
func forbiddenUses(f *ast.File) []use {
	fset := fileSets[f]
	imports := map[string]string{} // local name -> import path
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		name := p[strings.LastIndex(p, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		imports[name] = p
	}
	var out []use
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			x, ok := n.X.(*ast.Ident)
			if !ok || x.Obj != nil {
				return true
			}
			p, ok := imports[x.Name]
			names, bad := forbidden[p]
			if ok && bad && (len(names) == 0 || slices.Contains(names, n.Sel.Name)) {
				out = append(out, use{x.Name + "." + n.Sel.Name, fset.Position(n.Pos()).Line})
			}
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok && id.Obj == nil && (id.Name == "print" || id.Name == "println") {
				out = append(out, use{id.Name, fset.Position(n.Pos()).Line})
			}
		}
		return true
	})
	return out
}

var fileSets = map[*ast.File]*token.FileSet{}

// sources parses the module's non-test Go files (testdata excepted) that
// keep says to, by path relative to the module root.
func sources(t *testing.T, keep func(rel string, f *ast.File) bool) map[string]*ast.File {
	t.Helper()
	root := filepath.Dir(fixture.Root(t)) // the module root holds testdata/
	out := map[string]*ast.File{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (name == "testdata" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if keep(rel, f) {
			out[rel] = f
			fileSets[f] = fset
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
