package starvalue

import (
	"math"
	"reflect"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

func TestRoundTrip(t *testing.T) {
	src := `{"a": [1, 2.5, "x", None, True], "b": {"c": 9223372036854775807}}`
	v, err := starlark.EvalOptions(&syntax.FileOptions{}, &starlark.Thread{}, "t", src, starlark.StringDict{"None": starlark.None, "True": starlark.True})
	if err != nil {
		t.Fatal(err)
	}
	g, err := ToGo(v)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": []any{1, 2.5, "x", nil, true}, "b": map[string]any{"c": math.MaxInt}}
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("ToGo = %#v, want %#v", g, want)
	}
	back, err := FromGo(g)
	if err != nil {
		t.Fatal(err)
	}
	if eq, err := starlark.Equal(back, v); err != nil || !eq {
		t.Fatalf("FromGo(ToGo(v)) = %s, want %s", back, v)
	}
}

func TestErrors(t *testing.T) {
	huge, _ := starlark.EvalOptions(&syntax.FileOptions{}, &starlark.Thread{}, "t", "1 << 70", nil)
	if _, err := ToGo(huge); err == nil || err.Error() != "integer 1180591620717411303424 is too large" {
		t.Errorf("huge int: %v", err)
	}
	if _, err := ToGo(starlark.NewBuiltin("f", nil)); err == nil {
		t.Error("a builtin converted")
	}
	d := starlark.NewDict(1)
	d.SetKey(starlark.MakeInt(1), starlark.None)
	if _, err := ToGo(d); err == nil {
		t.Error("a dict with an int key converted")
	}
	if _, err := FromGo(struct{}{}); err == nil {
		t.Error("a struct converted")
	}
}
