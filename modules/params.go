package modules

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/orch-dev/orch/inventory"
)

// Param describes one argument of a module, read from its struct tags:
//
//	Path  string  `arg:"path,required" doc:"absolute path on the host"`
//	State string  `arg:"state" default:"file" doc:"file | directory | absent | link"`
type Param struct {
	Name     string
	Field    int // index of the struct field
	Type     reflect.Type
	Required bool
	Default  string // as written in the tag; applied before the plan's arguments
	Doc      string
}

// The Go types an argument field may have. The Starlark adapter converts
// plan values into exactly these.
var (
	typeString    = reflect.TypeFor[string]()
	typeStringPtr = reflect.TypeFor[*string]()
	typeBool      = reflect.TypeFor[bool]()
	typeBoolPtr   = reflect.TypeFor[*bool]()
	typeInt       = reflect.TypeFor[int]()
	typeIntPtr    = reflect.TypeFor[*int]()
	typeStrings   = reflect.TypeFor[[]string]()
	typeStrMap    = reflect.TypeFor[map[string]string]()
	typeAnyMap    = reflect.TypeFor[map[string]any]()
	typeDuration  = reflect.TypeFor[time.Duration]()
	typeAny       = reflect.TypeFor[any]()
	typeHost      = reflect.TypeFor[*inventory.Host]()
	typeHosts     = reflect.TypeFor[[]*inventory.Host]()
)

var supported = map[reflect.Type]string{
	typeString: "string", typeStringPtr: "string or None",
	typeBool: "bool", typeBoolPtr: "bool or None",
	typeInt: "int", typeIntPtr: "int or None",
	typeStrings: "list of strings", typeStrMap: "dict of strings",
	typeAnyMap: "dict", typeDuration: `duration ("1s", "500ms")`,
	typeAny: "any value", typeHost: "host", typeHosts: "list of hosts",
}

// TypeName is the Starlark-facing name of an argument type, for docs and errors.
func TypeName(t reflect.Type) string { return supported[t] }

// Params lists the arguments of a module's argument struct (a pointer to a
// struct, as returned by Info.New), in declaration order.
func Params(args any) ([]Param, error) {
	t := reflect.TypeOf(args)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("arguments must be a pointer to a struct, not %T", args)
	}
	t = t.Elem()
	var out []Param
	seen := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("arg")
		if !ok {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" || seen[name] {
			return nil, fmt.Errorf("field %s: empty or duplicate argument name %q", f.Name, name)
		}
		if _, ok := supported[f.Type]; !ok {
			return nil, fmt.Errorf("field %s: unsupported argument type %s", f.Name, f.Type)
		}
		seen[name] = true
		out = append(out, Param{
			Name:     name,
			Field:    i,
			Type:     f.Type,
			Required: opts == "required",
			Default:  f.Tag.Get("default"),
			Doc:      f.Tag.Get("doc"),
		})
	}
	return out, nil
}

// Signature renders a module's call signature, e.g.
// `file(path, content=None, mode=None, state="file")`.
func Signature(id string, params []Param) string {
	parts := make([]string, 0, len(params))
	for _, p := range params {
		switch {
		case p.Required:
			parts = append(parts, p.Name)
		case p.Default != "":
			if p.Type == typeString || p.Type == typeDuration {
				parts = append(parts, fmt.Sprintf("%s=%q", p.Name, p.Default))
			} else {
				parts = append(parts, p.Name+"="+p.Default)
			}
		default:
			parts = append(parts, p.Name+"="+zeroLiteral(p.Type))
		}
	}
	return id + "(" + strings.Join(parts, ", ") + ")"
}

func zeroLiteral(t reflect.Type) string {
	switch t {
	case typeBool:
		return "False"
	case typeInt:
		return "0"
	case typeStrings, typeHosts:
		return "[]"
	case typeStrMap, typeAnyMap:
		return "{}"
	}
	return "None"
}

// Common are the arguments every host module call takes besides its own.
// The Starlark adapter reads them off the call; they are not fields of the
// module's argument struct, and `orch modules` lists them once.
var Common = []Param{
	{Name: "become", Field: -1, Type: typeAny, Doc: `run with privilege: True (as root), a user name, or False; None inherits ctx.apply's and the host's become`},
	{Name: "timeout", Field: -1, Type: typeDuration, Doc: `fail the task when its change takes longer, ending its processes on the host ("30s")`},
}
