package plan

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"go.starlark.net/lib/json"
	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/orch-dev/orch/internal/starvalue"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
)

// predeclared is the environment plan files see: one builtin per
// registered module (dotted IDs become members of a module value), plus
// struct and json. It is built again when modules were registered since,
// so that a module an embedder registers late is seen by the plans loaded
// after it; each plan keeps the environment it was compiled with.
func predeclared() starlark.StringDict {
	all := modules.All()
	envMu.Lock()
	defer envMu.Unlock()
	if env == nil || envModules != len(all) {
		env, envModules = buildPredeclared(all), len(all)
	}
	return env
}

var (
	envMu      sync.Mutex
	env        starlark.StringDict
	envModules int // how many modules env was built with; the registry only grows
)

func buildPredeclared(all []modules.Info) starlark.StringDict {
	env := starlark.StringDict{
		"struct": starlark.NewBuiltin("struct", starlarkstruct.Make),
		"json":   json.Module,
	}
	groups := map[string]starlark.StringDict{}
	for _, info := range all {
		b := moduleBuiltin(info)
		if group, member, dotted := strings.Cut(info.ID, "."); dotted {
			if groups[group] == nil {
				groups[group] = starlark.StringDict{}
			}
			groups[group][member] = b
		} else {
			env[info.ID] = b
		}
	}
	for name, members := range groups {
		if _, clash := env[name]; clash {
			panic(fmt.Sprintf("plans: module group %q clashes with module %q", name, name))
		}
		env[name] = &starlarkstruct.Module{Name: name, Members: members}
	}
	env.Freeze()
	return env
}

// moduleBuiltin is the one adapter from a module's argument struct to a
// Starlark builtin. A host task is recorded on the role being evaluated; a
// controller-side call runs at once.
func moduleBuiltin(info modules.Info) *starlark.Builtin {
	params, err := modules.Params(info.New())
	if err != nil {
		panic(err) // modules.Register already rejected this
	}
	return starlark.NewBuiltin(info.ID, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		v := info.New()
		_, isTask := v.(modules.Task)
		kwargs, common, err := splitCommon(info.ID, isTask, kwargs)
		if err != nil {
			return nil, err
		}
		if err := fill(info.ID, params, v, args, kwargs); err != nil {
			return nil, err
		}
		switch impl := v.(type) {
		case modules.Task:
			role, _ := th.Local(localRole).(*roleState)
			if role == nil {
				return nil, fmt.Errorf("%s: records a host task; call it inside a role run by ctx.apply", info.ID)
			}
			if val, ok := impl.(modules.Validator); ok {
				if err := val.Validate(role.env); err != nil {
					return nil, fmt.Errorf("%s: %w", info.ID, err)
				}
			}
			task := Task{Module: info.ID, Pos: th.CallFrame(1).Pos, Impl: impl}
			if err := common.apply(&task); err != nil {
				return nil, fmt.Errorf("%s: %w", info.ID, err)
			}
			role.tasks = append(role.tasks, task)
			return starlark.None, nil
		case modules.Call:
			rs := runFromThread(th)
			if rs == nil {
				return nil, fmt.Errorf("%s: can only be called while a plan runs", info.ID)
			}
			if th.Local(localRole) != nil {
				return nil, fmt.Errorf("%s: acts from the controller; call it in main or a step, not inside a role", info.ID)
			}
			env := rs.env(nil)
			if val, ok := impl.(modules.Validator); ok {
				if err := val.Validate(env); err != nil {
					return nil, fmt.Errorf("%s: %w", info.ID, err)
				}
			}
			if !rs.opts.Check {
				rs.runner.Touch()
			}
			res, err := impl.Call(contextFromThread(th), env)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", info.ID, err)
			}
			return rs.toStarlark(res)
		}
		return nil, fmt.Errorf("%s: %T is neither a task nor a call", info.ID, v)
	})
}

// commonArgs are the arguments every host module call takes (modules.Common).
type commonArgs struct {
	become  starlark.Value
	timeout starlark.Value
}

// splitCommon takes become= and timeout= off a host module call's keyword
// arguments.
func splitCommon(id string, isTask bool, kwargs []starlark.Tuple) ([]starlark.Tuple, commonArgs, error) {
	var c commonArgs
	if !isTask {
		return kwargs, c, nil
	}
	rest := kwargs[:0:0]
	for _, kv := range kwargs {
		switch string(kv[0].(starlark.String)) {
		case "become":
			c.become = kv[1]
		case "timeout":
			c.timeout = kv[1]
		default:
			rest = append(rest, kv)
		}
	}
	return rest, c, nil
}

func (c commonArgs) apply(t *Task) error {
	if c.become != nil && c.become != starlark.None {
		b, err := becomeArg(c.become)
		if err != nil {
			return fmt.Errorf("argument \"become\": %w", err)
		}
		t.Become = b
	}
	if c.timeout != nil && c.timeout != starlark.None {
		d, err := toGo(c.timeout, reflect.TypeFor[time.Duration]())
		if err != nil {
			return fmt.Errorf("argument \"timeout\": %w", err)
		}
		if t.Timeout = d.Interface().(time.Duration); t.Timeout <= 0 {
			return fmt.Errorf("argument \"timeout\": must be positive")
		}
	}
	return nil
}

// becomeArg reads become=: True (as the host's become_user, else root), a
// user name, or False.
func becomeArg(v starlark.Value) (*Become, error) {
	switch x := v.(type) {
	case starlark.Bool:
		return &Become{Enabled: bool(x)}, nil
	case starlark.String:
		if x == "" {
			return nil, fmt.Errorf("want True, False or a user name, got an empty string")
		}
		return &Become{Enabled: true, User: string(x)}, nil
	}
	return nil, fmt.Errorf("want True, False or a user name, got %s", v.Type())
}

// fill sets the fields of the argument struct v from Starlark arguments.
func fill(id string, params []modules.Param, v any, args starlark.Tuple, kwargs []starlark.Tuple) error {
	if err := modules.SetDefaults(v); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	rv := reflect.ValueOf(v).Elem()
	if len(args) > len(params) {
		return fmt.Errorf("%s: got %d positional arguments, want at most %d (%s)", id, len(args), len(params), names(params))
	}
	set := make(map[string]bool, len(args)+len(kwargs))
	assign := func(p modules.Param, val starlark.Value) error {
		if set[p.Name] {
			return fmt.Errorf("%s: argument %q given twice", id, p.Name)
		}
		set[p.Name] = true
		if val == starlark.None && !nullable(p.Type) {
			return nil // None means "not given"
		}
		gv, err := toGo(val, p.Type)
		if err != nil {
			return fmt.Errorf("%s: argument %q: %w", id, p.Name, err)
		}
		rv.Field(p.Field).Set(gv)
		return nil
	}
	for i, a := range args {
		if err := assign(params[i], a); err != nil {
			return err
		}
	}
	for _, kv := range kwargs {
		name := string(kv[0].(starlark.String))
		p, ok := param(params, name)
		if !ok {
			return fmt.Errorf("%s: %s", id, unknownArg(name, params))
		}
		if err := assign(p, kv[1]); err != nil {
			return err
		}
	}
	for _, p := range params {
		if p.Required && !set[p.Name] {
			return fmt.Errorf("%s: missing argument %q", id, p.Name)
		}
	}
	return nil
}

func param(params []modules.Param, name string) (modules.Param, bool) {
	for _, p := range params {
		if p.Name == name {
			return p, true
		}
	}
	return modules.Param{}, false
}

func names(params []modules.Param) string {
	ns := make([]string, len(params))
	for i, p := range params {
		ns[i] = p.Name
	}
	return strings.Join(ns, ", ")
}

// unknownArg explains an unknown argument name and suggests the nearest one.
func unknownArg(name string, params []modules.Param) string {
	msg := fmt.Sprintf("unknown argument %q", name)
	best, bestDist := "", 3
	for _, p := range params {
		if d := editDistance(name, p.Name); d < bestDist {
			best, bestDist = p.Name, d
		}
	}
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg + "; it takes " + names(params)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// nullable reports whether None is a value of its own for the type, rather
// than "not given".
func nullable(t reflect.Type) bool { return t.Kind() == reflect.Interface }

// toGo converts a Starlark value to the Go type of an argument field.
func toGo(v starlark.Value, t reflect.Type) (reflect.Value, error) {
	want := func() error { return fmt.Errorf("want %s, got %s", modules.TypeName(t), v.Type()) }
	switch t {
	case reflect.TypeFor[time.Duration]():
		switch x := v.(type) {
		case starlark.String:
			d, err := time.ParseDuration(string(x))
			if err != nil {
				return reflect.Value{}, fmt.Errorf("%q is not a duration like \"1s\" or \"500ms\"", string(x))
			}
			return reflect.ValueOf(d), nil
		case starlark.Int:
			n, ok := x.Int64()
			if !ok {
				return reflect.Value{}, want()
			}
			return reflect.ValueOf(time.Duration(n) * time.Second), nil
		}
		return reflect.Value{}, want()
	case reflect.TypeFor[*inventory.Host]():
		h, ok := v.(*hostValue)
		if !ok {
			return reflect.Value{}, want()
		}
		return reflect.ValueOf(h.host), nil
	case reflect.TypeFor[[]*inventory.Host]():
		hosts, err := hostList(v)
		if err != nil {
			return reflect.Value{}, err
		}
		return reflect.ValueOf(hosts), nil
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := starlark.AsString(v)
		if !ok {
			return reflect.Value{}, want()
		}
		return reflect.ValueOf(s), nil
	case reflect.Bool:
		b, ok := v.(starlark.Bool)
		if !ok {
			return reflect.Value{}, want()
		}
		return reflect.ValueOf(bool(b)), nil
	case reflect.Int:
		var n int
		if err := starlark.AsInt(v, &n); err != nil {
			return reflect.Value{}, want()
		}
		return reflect.ValueOf(n), nil
	case reflect.Pointer:
		elem, err := toGo(v, t.Elem())
		if err != nil {
			return reflect.Value{}, fmt.Errorf("want %s, got %s", modules.TypeName(t), v.Type())
		}
		ptr := reflect.New(t.Elem())
		ptr.Elem().Set(elem)
		return ptr, nil
	case reflect.Slice: // []string
		iter, ok := v.(starlark.Iterable)
		if _, isStr := v.(starlark.String); !ok || isStr {
			return reflect.Value{}, want()
		}
		out := reflect.MakeSlice(t, 0, 0)
		it := iter.Iterate()
		defer it.Done()
		var x starlark.Value
		for it.Next(&x) {
			s, ok := starlark.AsString(x)
			if !ok {
				return reflect.Value{}, fmt.Errorf("want a list of strings, got an element of type %s", x.Type())
			}
			out = reflect.Append(out, reflect.ValueOf(s))
		}
		return out, nil
	case reflect.Map:
		d, ok := v.(*starlark.Dict)
		if !ok {
			return reflect.Value{}, want()
		}
		out := reflect.MakeMapWithSize(t, d.Len())
		for _, kv := range d.Items() {
			k, ok := starlark.AsString(kv[0])
			if !ok {
				return reflect.Value{}, fmt.Errorf("dict keys must be strings, got %s", kv[0].Type())
			}
			var val reflect.Value
			if t.Elem().Kind() == reflect.String {
				s, err := scalarString(kv[1])
				if err != nil {
					return reflect.Value{}, fmt.Errorf("key %q: %w", k, err)
				}
				val = reflect.ValueOf(s)
			} else {
				g, err := starvalue.ToGo(kv[1])
				if err != nil {
					return reflect.Value{}, fmt.Errorf("key %q: %w", k, err)
				}
				val = reflect.ValueOf(&g).Elem()
			}
			out.SetMapIndex(reflect.ValueOf(k), val)
		}
		return out, nil
	case reflect.Interface:
		g, err := starvalue.ToGo(v)
		if err != nil {
			return reflect.Value{}, err
		}
		return reflect.ValueOf(&g).Elem(), nil
	}
	return reflect.Value{}, want()
}

// scalarString accepts strings, and numbers and bools written as strings,
// for string-valued dicts such as env.
func scalarString(v starlark.Value) (string, error) {
	switch x := v.(type) {
	case starlark.String:
		return string(x), nil
	case starlark.Int:
		return x.String(), nil
	case starlark.Bool:
		if x {
			return "true", nil
		}
		return "false", nil
	}
	return "", fmt.Errorf("want a string, got %s", v.Type())
}

// checkCalls finds module calls with unknown arguments, too many positional
// arguments or unknown members, before anything runs.
func checkCalls(f *syntax.File) Errors {
	var errs Errors
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok {
			return true
		}
		id, known := calleeID(call.Fn)
		if id == "" {
			return true
		}
		if !known {
			start, _ := call.Fn.Span()
			errs = append(errs, &Error{Pos: start, Msg: fmt.Sprintf("%s is not a module; run `orch modules` for the list", id)})
			return true
		}
		info, _ := modules.Lookup(id)
		params, _ := modules.Params(info.New())
		named := params
		if info.IsTask() {
			named = append(params[:len(params):len(params)], modules.Common...)
		}
		positional := 0
		for _, arg := range call.Args {
			switch a := arg.(type) {
			case *syntax.BinaryExpr:
				if a.Op != syntax.EQ {
					positional++
					continue
				}
				name := a.X.(*syntax.Ident)
				if _, ok := param(named, name.Name); !ok {
					errs = append(errs, &Error{Pos: name.NamePos, Msg: fmt.Sprintf("%s: %s", id, unknownArg(name.Name, named))})
				}
			case *syntax.UnaryExpr:
				if a.Op == syntax.STAR || a.Op == syntax.STARSTAR {
					return true // *args and **kwargs are checked when the call runs
				}
				positional++
			default:
				positional++
			}
		}
		if positional > len(params) {
			start, _ := call.Span()
			errs = append(errs, &Error{Pos: start, Msg: fmt.Sprintf("%s: got %d positional arguments, want at most %d (%s)", id, positional, len(params), names(params))})
		}
		return true
	})
	return errs
}

// calleeID names the module a call expression calls, if it calls one of ours:
// `file` or `zfs.dataset`, where the name is the predeclared one (not shadowed).
// known is false for an unknown member of a module group, such as zfs.datset.
func calleeID(fn syntax.Expr) (id string, known bool) {
	var name string
	switch x := fn.(type) {
	case *syntax.Ident:
		if !predeclaredIdent(x) {
			return "", false
		}
		name = x.Name
	case *syntax.DotExpr:
		group, ok := x.X.(*syntax.Ident)
		if !ok || !predeclaredIdent(group) {
			return "", false
		}
		if !isModuleGroup(group.Name) { // json.encode is no module call
			return "", false
		}
		name = group.Name + "." + x.Name.Name
	default:
		return "", false
	}
	if _, ok := modules.Lookup(name); ok {
		return name, true
	}
	if strings.Contains(name, ".") {
		return name, false
	}
	return "", false
}

// isModuleGroup reports whether name is the group of dotted module IDs.
func isModuleGroup(name string) bool {
	for _, info := range modules.All() {
		if strings.HasPrefix(info.ID, name+".") {
			return true
		}
	}
	return false
}

func predeclaredIdent(id *syntax.Ident) bool {
	b, ok := id.Binding.(*resolve.Binding)
	return ok && b.Scope == resolve.Predeclared
}
