package plan

import (
	"encoding/json"
	"fmt"
	"sort"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/orch-dev/orch/internal/starvalue"
	"github.com/orch-dev/orch/inventory"
)

// hostValue is a host as plans see it: h.name, h.address, h.groups, h.vars
// and h.fact(name).
type hostValue struct {
	host *inventory.Host
	rs   *runState
}

var (
	_ starlark.HasAttrs   = (*hostValue)(nil)
	_ starvalue.Valuer    = (*hostValue)(nil)
	_ starlark.Comparable = (*hostValue)(nil)
)

func (rs *runState) hostValue(h *inventory.Host) *hostValue { return &hostValue{host: h, rs: rs} }

func (h *hostValue) String() string        { return fmt.Sprintf("host(%q)", h.host.Name) }
func (h *hostValue) Type() string          { return "host" }
func (h *hostValue) Freeze()               {}
func (h *hostValue) Truth() starlark.Bool  { return true }
func (h *hostValue) Hash() (uint32, error) { return starlark.String(h.host.Name).Hash() }
func (h *hostValue) GoValue() any          { return h.host }
func (h *hostValue) AttrNames() []string {
	return []string{"address", "fact", "groups", "name", "vars"}
}

func (h *hostValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(h.host.Name), nil
	case "address":
		return starlark.String(h.host.Address), nil
	case "groups":
		groups := append([]string(nil), h.host.Groups...)
		sort.Strings(groups)
		v, _ := starvalue.FromGo(groups)
		v.Freeze()
		return v, nil
	case "vars":
		v, err := starvalue.FromGo(h.host.Vars)
		if err != nil || h.host.Vars == nil {
			v = starlark.NewDict(0)
		}
		v.Freeze()
		return v, nil
	case "fact":
		return starlark.NewBuiltin("fact", h.fact), nil
	}
	return nil, nil
}

// fact is h.fact(name, key=""): a host fact, or one key of a keyed fact
// (h.fact("path", "/etc/motd")).
func (h *hostValue) fact(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, key string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "key?", &key); err != nil {
		return nil, err
	}
	v, err := h.rs.runner.Fact(contextFromThread(th), h.host, name, key)
	if err != nil {
		return nil, fmt.Errorf("fact %q of %s: %w", name, h.host.Name, err)
	}
	sv, err := starvalue.FromGo(v)
	if err != nil {
		// A fact of a module's own type (pathfact.State) comes out as its
		// JSON form.
		sv, err = viaJSON(v)
	}
	if err != nil {
		return nil, fmt.Errorf("fact %q of %s: %w", name, h.host.Name, err)
	}
	sv.Freeze()
	return sv, nil
}

// CompareSameType lets plans compare hosts with == and sort them by name.
func (h *hostValue) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	return starlark.CompareDepth(op, starlark.String(h.host.Name), starlark.String(y.(*hostValue).host.Name), depth)
}

// viaJSON converts a Go value with a JSON form to plain Starlark data.
func viaJSON(v any) (starlark.Value, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot convert %T to a Starlark value: %w", v, err)
	}
	var plain any
	if err := json.Unmarshal(data, &plain); err != nil {
		return nil, err
	}
	return starvalue.FromGo(plain)
}
