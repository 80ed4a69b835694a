package plan

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.starlark.net/lib/json"
	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
)

// predeclared is the environment every plan file sees: one builtin per
// registered module (dotted IDs become members of a module value), plus
// struct and json.
var predeclared = sync.OnceValue(func() starlark.StringDict {
	env := starlark.StringDict{
		"struct": starlark.NewBuiltin("struct", starlarkstruct.Make),
		"json":   json.Module,
	}
	groups := map[string]starlark.StringDict{}
	for _, info := range modules.All() {
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
})

func isPredeclared(name string) bool { return predeclared().Has(name) }

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
			role.tasks = append(role.tasks, Task{Module: info.ID, Pos: th.CallFrame(1).Pos, Impl: impl})
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

// fill sets the fields of the argument struct v from Starlark arguments.
func fill(id string, params []modules.Param, v any, args starlark.Tuple, kwargs []starlark.Tuple) error {
	rv := reflect.ValueOf(v).Elem()
	for _, p := range params {
		if p.Default == "" {
			continue
		}
		def, err := parseDefault(p)
		if err != nil {
			return fmt.Errorf("%s: default of %s: %w", id, p.Name, err)
		}
		rv.Field(p.Field).Set(def)
	}
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

func parseDefault(p modules.Param) (reflect.Value, error) {
	switch p.Type.Kind() {
	case reflect.String:
		return reflect.ValueOf(p.Default), nil
	case reflect.Bool:
		return reflect.ValueOf(p.Default == "True"), nil
	case reflect.Int:
		n, err := strconv.Atoi(p.Default)
		return reflect.ValueOf(n), err
	case reflect.Int64: // time.Duration
		d, err := time.ParseDuration(p.Default)
		return reflect.ValueOf(d), err
	}
	return reflect.Value{}, fmt.Errorf("no default for type %s", p.Type)
}

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
				g, err := plainGo(kv[1])
				if err != nil {
					return reflect.Value{}, fmt.Errorf("key %q: %w", k, err)
				}
				val = reflect.ValueOf(&g).Elem()
			}
			out.SetMapIndex(reflect.ValueOf(k), val)
		}
		return out, nil
	case reflect.Interface:
		g, err := plainGo(v)
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

// plainGo converts any Starlark data value to plain Go values.
func plainGo(v starlark.Value) (any, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		n, ok := x.Int64()
		if !ok {
			return nil, fmt.Errorf("integer %s is too large", x)
		}
		return n, nil
	case starlark.Float:
		return float64(x), nil
	case starlark.String:
		return string(x), nil
	case *hostValue:
		return x.host, nil
	case *starlark.List, starlark.Tuple:
		var out []any
		it := x.(starlark.Iterable).Iterate()
		defer it.Done()
		var e starlark.Value
		for it.Next(&e) {
			g, err := plainGo(e)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	case *starlark.Dict:
		out := make(map[string]any, x.Len())
		for _, kv := range x.Items() {
			k, ok := starlark.AsString(kv[0])
			if !ok {
				return nil, fmt.Errorf("dict keys must be strings, got %s", kv[0].Type())
			}
			g, err := plainGo(kv[1])
			if err != nil {
				return nil, err
			}
			out[k] = g
		}
		return out, nil
	case *starlarkstruct.Struct:
		d := starlark.StringDict{}
		x.ToStringDict(d)
		out := make(map[string]any, len(d))
		for k, val := range d {
			g, err := plainGo(val)
			if err != nil {
				return nil, err
			}
			out[k] = g
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot use a %s here", v.Type())
}

// plainStarlark converts plain Go data (as decoded from JSON or YAML) to
// Starlark values.
func plainStarlark(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case nil:
		return starlark.None, nil
	case bool:
		return starlark.Bool(x), nil
	case int:
		return starlark.MakeInt(x), nil
	case int64:
		return starlark.MakeInt64(x), nil
	case uint64:
		return starlark.MakeUint64(x), nil
	case float64:
		if x == float64(int64(x)) {
			return starlark.MakeInt64(int64(x)), nil
		}
		return starlark.Float(x), nil
	case string:
		return starlark.String(x), nil
	case []string:
		l := make([]starlark.Value, len(x))
		for i, s := range x {
			l[i] = starlark.String(s)
		}
		return starlark.NewList(l), nil
	case []any:
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			sv, err := plainStarlark(e)
			if err != nil {
				return nil, err
			}
			l[i] = sv
		}
		return starlark.NewList(l), nil
	case map[string]string:
		d := starlark.NewDict(len(x))
		for _, k := range sortedKeys(x) {
			d.SetKey(starlark.String(k), starlark.String(x[k]))
		}
		return d, nil
	case map[string]any:
		d := starlark.NewDict(len(x))
		for _, k := range sortedKeys(x) {
			sv, err := plainStarlark(x[k])
			if err != nil {
				return nil, err
			}
			d.SetKey(starlark.String(k), sv)
		}
		return d, nil
	}
	return nil, fmt.Errorf("cannot convert %T to a Starlark value", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
		positional := 0
		for _, arg := range call.Args {
			switch a := arg.(type) {
			case *syntax.BinaryExpr:
				if a.Op != syntax.EQ {
					positional++
					continue
				}
				name := a.X.(*syntax.Ident)
				if _, ok := param(params, name.Name); !ok {
					errs = append(errs, &Error{Pos: name.NamePos, Msg: fmt.Sprintf("%s: %s", id, unknownArg(name.Name, params))})
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
