package inventory

import (
	"errors"
	"fmt"

	"go.starlark.net/starlark"

	"github.com/orch-dev/orch/internal/starvalue"
	"go.starlark.net/syntax"
)

// maxStarlarkSteps bounds an inventory script, so that a runaway loop fails
// instead of hanging the CLI. Generating thousands of hosts takes far fewer.
const maxStarlarkSteps = 10_000_000

const starBuilderKey = "orch.inventory"

// starBuilder is the per-run state the builtins record into.
type starBuilder struct {
	inv      *Inventory
	declared map[string]string // "host NAME" or "group NAME" -> where
	children []childRef
}

type childRef struct{ parent, child, at string }

func parseStarlark(filename string, src []byte) (*Inventory, error) {
	b := &starBuilder{inv: New(), declared: map[string]string{}}
	thread := &starlark.Thread{
		Name:  "inventory " + filename,
		Print: func(*starlark.Thread, string) {}, // the library never prints
		Load: func(*starlark.Thread, string) (starlark.StringDict, error) {
			return nil, errors.New("load() is not available in inventory files")
		},
	}
	thread.SetMaxExecutionSteps(maxStarlarkSteps)
	thread.SetLocal(starBuilderKey, b)
	predeclared := starlark.StringDict{
		"host":  starlark.NewBuiltin("host", starHost),
		"group": starlark.NewBuiltin("group", starGroup),
	}
	// Top-level loops make generating hosts natural; while is safe under the
	// step limit.
	opts := &syntax.FileOptions{TopLevelControl: true, While: true, Set: true, GlobalReassign: true}
	if _, err := starlark.ExecFileOptions(opts, thread, filename, src, predeclared); err != nil {
		return nil, starError(err)
	}
	for _, c := range b.children {
		if _, ok := b.inv.groups[c.child]; !ok {
			return nil, fmt.Errorf("%s: group %q: child group %q is not declared", c.at, c.parent, c.child)
		}
	}
	return b.inv, nil
}

// starError puts the position of the failing call first, where
// EvalError.Error() would give only the message.
func starError(err error) error {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return err // syntax and resolve errors already carry file:line:col
	}
	for i := len(ee.CallStack) - 1; i >= 0; i-- {
		if pos := ee.CallStack[i].Pos; pos.IsValid() && pos.Filename() != "<builtin>" {
			return fmt.Errorf("%s: %s", pos, ee.Msg)
		}
	}
	return err
}

// host(name, address=None, port=None, user=None, key=None, connection=None, groups=[], vars={})
func starHost(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	b := thread.Local(starBuilderKey).(*starBuilder)
	var name string
	var address, port, user, key, connection starlark.Value = starlark.None, starlark.None, starlark.None, starlark.None, starlark.None
	var groups starlark.Value = starlark.NewList(nil)
	vars := &starlark.Dict{}
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"name", &name, "address?", &address, "port?", &port, "user?", &user, "key?", &key,
		"connection?", &connection, "groups?", &groups, "vars?", &vars); err != nil {
		return nil, err
	}
	at := thread.CallFrame(1).Pos.String()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("host %q: %s", name, fmt.Sprintf(format, args...))
	}
	if err := checkName("host", name); err != nil {
		return nil, fmt.Errorf("host: %v", err)
	}
	if prev, dup := b.declared["host "+name]; dup {
		return nil, fail("already declared at %s", prev)
	}
	b.declared["host "+name] = at

	d := b.inv.host(name)
	d.fixedAt = at
	var err error
	for _, f := range []struct {
		arg  string
		v    starlark.Value
		dest *string
	}{{"address", address, &d.fixed.Address}, {"user", user, &d.fixed.User}, {"key", key, &d.fixed.Key}, {"connection", connection, &d.fixed.Connection}} {
		if *f.dest, err = optString(f.v); err != nil {
			return nil, fail("%s: %v", f.arg, err)
		}
	}
	if d.fixed.Connection, err = normalizeConnection(d.fixed.Connection); err != nil {
		return nil, fail("%v", err)
	}
	if port != starlark.None {
		p, ok := port.(starlark.Int)
		n, exact := p.Int64()
		if !ok || !exact || n < 1 || n > 65535 {
			return nil, fail("port %s is not a port number (1-65535)", port)
		}
		d.fixed.Port = int(n)
	}
	names, err := stringList(groups)
	if err != nil {
		return nil, fail("groups: %v", err)
	}
	for _, g := range names {
		if err := checkName("group", g); err != nil {
			return nil, fail("groups: %v", err)
		}
		if g == All || g == Ungrouped {
			return nil, fail("groups: %q is implicit and cannot be listed", g)
		}
		b.inv.group(g, at).addHost(name)
	}
	if err := setStarVars(&d.vars, vars, at); err != nil {
		return nil, fail("vars: %v", err)
	}
	// Returning the name lets a script write group("web", hosts=[host(...), ...]).
	return starlark.String(name), nil
}

// group(name, hosts=[], children=[], vars={})
func starGroup(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	b := thread.Local(starBuilderKey).(*starBuilder)
	var name string
	var hosts, children starlark.Value = starlark.NewList(nil), starlark.NewList(nil)
	vars := &starlark.Dict{}
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"name", &name, "hosts?", &hosts, "children?", &children, "vars?", &vars); err != nil {
		return nil, err
	}
	at := thread.CallFrame(1).Pos.String()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("group %q: %s", name, fmt.Sprintf(format, args...))
	}
	if err := checkName("group", name); err != nil {
		return nil, fmt.Errorf("group: %v", err)
	}
	if prev, dup := b.declared["group "+name]; dup {
		return nil, fail("already declared at %s", prev)
	}
	b.declared["group "+name] = at

	g := b.inv.group(name, at)
	g.at = at
	hostNames, err := stringList(hosts)
	if err != nil {
		return nil, fail("hosts: %v", err)
	}
	childNames, err := stringList(children)
	if err != nil {
		return nil, fail("children: %v", err)
	}
	if (name == All || name == Ungrouped) && len(hostNames)+len(childNames) > 0 {
		return nil, fail("the group is implicit: only its vars can be set")
	}
	for _, h := range hostNames {
		if err := checkName("host", h); err != nil {
			return nil, fail("hosts: %v", err)
		}
		b.inv.host(h)
		g.addHost(h)
	}
	for _, c := range childNames {
		g.addChild(c)
		b.children = append(b.children, childRef{parent: name, child: c, at: at})
	}
	if err := setStarVars(&g.vars, vars, at); err != nil {
		return nil, fail("vars: %v", err)
	}
	return starlark.String(name), nil
}

func optString(v starlark.Value) (string, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return "", nil
	case starlark.String:
		return string(v), nil
	}
	return "", fmt.Errorf("got %s, want string", v.Type())
}

func stringList(v starlark.Value) ([]string, error) {
	iter, ok := v.(starlark.Iterable)
	if !ok {
		return nil, fmt.Errorf("got %s, want a list of strings", v.Type())
	}
	it := iter.Iterate()
	defer it.Done()
	var out []string
	var x starlark.Value
	for it.Next(&x) {
		s, ok := x.(starlark.String)
		if !ok {
			return nil, fmt.Errorf("got %s in list, want string", x.Type())
		}
		out = append(out, string(s))
	}
	return out, nil
}

func setStarVars(into *varSet, d *starlark.Dict, at string) error {
	for _, item := range d.Items() {
		k, ok := item[0].(starlark.String)
		if !ok {
			return fmt.Errorf("key %s is not a string", item[0])
		}
		v, err := starvalue.ToGo(item[1])
		if err != nil {
			return fmt.Errorf("%s: %v", string(k), err)
		}
		into.set(string(k), v, at)
	}
	return nil
}
