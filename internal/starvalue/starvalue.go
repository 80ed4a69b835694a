// Package starvalue is orch's one converter between Starlark values and
// plain Go data, shared by the plan host and the Starlark inventory so
// both read the same types: integers are int (int64 beyond int's range,
// which is never on 64-bit hosts), floats float64, lists []any and dicts
// map[string]any.
package starvalue

import (
	"fmt"
	"math"
	"sort"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Valuer is implemented by Starlark values of the host program (a plan's
// host values, say) that stand for a Go value of their own.
type Valuer interface {
	GoValue() any
}

// ToGo converts a Starlark data value to plain Go data. Structs become maps;
// functions and other non-data values are an error.
func ToGo(v starlark.Value) (any, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		n, ok := x.Int64()
		if !ok || n < math.MinInt || n > math.MaxInt {
			return nil, fmt.Errorf("integer %s is too large", x)
		}
		return int(n), nil
	case starlark.Float:
		return float64(x), nil
	case starlark.String:
		return string(x), nil
	case Valuer:
		return x.GoValue(), nil
	case *starlark.List, starlark.Tuple:
		out := []any{}
		it := x.(starlark.Iterable).Iterate()
		defer it.Done()
		var e starlark.Value
		for it.Next(&e) {
			g, err := ToGo(e)
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
			g, err := ToGo(kv[1])
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
			out[k] = g
		}
		return out, nil
	case *starlarkstruct.Struct:
		d := starlark.StringDict{}
		x.ToStringDict(d)
		out := make(map[string]any, len(d))
		for k, val := range d {
			g, err := ToGo(val)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", k, err)
			}
			out[k] = g
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot use a %s here (want None, a bool, number, string, list or dict)", v.Type())
}

// FromGo converts plain Go data (as decoded from JSON or YAML, or built by
// modules) to Starlark values. Dict keys come out sorted, so the result is
// the same every run.
func FromGo(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case nil:
		return starlark.None, nil
	case starlark.Value:
		return x, nil
	case bool:
		return starlark.Bool(x), nil
	case int:
		return starlark.MakeInt(x), nil
	case int64:
		return starlark.MakeInt64(x), nil
	case uint64:
		return starlark.MakeUint64(x), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return starlark.MakeInt64(int64(x)), nil // JSON numbers that are integers
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
			sv, err := FromGo(e)
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
			sv, err := FromGo(x[k])
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
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
