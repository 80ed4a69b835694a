package plan

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
)

// every is an argument struct with one field of each supported type.
type every struct {
	Name   string            `arg:"name,required" doc:"a name"`
	Maybe  *string           `arg:"maybe"`
	Flag   bool              `arg:"flag" default:"True"`
	Count  int               `arg:"count" default:"3"`
	OptInt *int              `arg:"opt_int"`
	List   []string          `arg:"list"`
	Env    map[string]string `arg:"env"`
	Vars   map[string]any    `arg:"vars"`
	Wait   time.Duration     `arg:"wait" default:"1s"`
	Any    any               `arg:"any"`
	Host   *inventory.Host   `arg:"host"`
	Hosts  []*inventory.Host `arg:"hosts"`
	//lint:ignore U1000 an untagged field must not become an argument (TestSignature)
	ignored string
}

func eval(t *testing.T, expr string) starlark.Value {
	t.Helper()
	h := &hostValue{host: &inventory.Host{Name: "web1"}}
	v, err := starlark.EvalOptions(fileOptions, &starlark.Thread{}, "expr", expr, starlark.StringDict{"h": h})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fillFrom(t *testing.T, kwargs string) (*every, error) {
	t.Helper()
	params, err := modules.Params(new(every))
	if err != nil {
		t.Fatal(err)
	}
	d := eval(t, "dict("+kwargs+")").(*starlark.Dict)
	var kw []starlark.Tuple
	for _, item := range d.Items() {
		kw = append(kw, starlark.Tuple{item[0], item[1]})
	}
	v := new(every)
	return v, fill("every", params, v, nil, kw)
}

func TestFillConvertsEveryType(t *testing.T) {
	got, err := fillFrom(t, `name = "n", maybe = "m", flag = False, opt_int = 7, list = ("a", "b"),
		env = {"A": "x", "N": 1, "B": True}, vars = {"k": [1, "two", None, {"x": 1.5}]}, wait = "250ms",
		any = {"nested": (1, 2)}, host = h, hosts = [h, h]`)
	if err != nil {
		t.Fatal(err)
	}
	m, seven := "m", 7
	want := &every{
		Name: "n", Maybe: &m, Flag: false, Count: 3, OptInt: &seven, List: []string{"a", "b"},
		Env:  map[string]string{"A": "x", "N": "1", "B": "true"},
		Vars: map[string]any{"k": []any{1, "two", nil, map[string]any{"x": 1.5}}},
		Wait: 250 * time.Millisecond, Any: map[string]any{"nested": []any{1, 2}},
	}
	host := got.Host
	if host == nil || host.Name != "web1" || len(got.Hosts) != 2 || got.Hosts[1] != host {
		t.Fatalf("hosts: %+v %+v", got.Host, got.Hosts)
	}
	got.Host, got.Hosts = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestFillDefaultsAndNone(t *testing.T) {
	got, err := fillFrom(t, `name = "n", maybe = None, wait = 2`)
	if err != nil {
		t.Fatal(err)
	}
	if got.Maybe != nil || !got.Flag || got.Count != 3 || got.Wait != 2*time.Second {
		t.Fatalf("got %+v", got)
	}
}

func TestFillErrors(t *testing.T) {
	cases := map[string]string{
		`count = 1`:                       `every: missing argument "name"`,
		`name = 1`:                        `every: argument "name": want string, got int`,
		`name = "n", flg = True`:          `every: unknown argument "flg" (did you mean "flag"?); it takes name, maybe, flag`,
		`name = "n", list = "abc"`:        `argument "list": want list of strings, got string`,
		`name = "n", list = [1]`:          `argument "list": want a list of strings, got an element of type int`,
		`name = "n", env = {"A": [1]}`:    `argument "env": key "A": want a string, got list`,
		`name = "n", vars = {1: "x"}`:     `argument "vars": dict keys must be strings, got int`,
		`name = "n", wait = "soon"`:       `argument "wait": "soon" is not a duration`,
		`name = "n", host = "web1"`:       `argument "host": want host, got string`,
		`name = "n", any = lambda: 1`:     `argument "any": cannot use a function here`,
		`name = "n", opt_int = "seven"`:   `argument "opt_int": want int or None, got string`,
		`name = "n", hosts = ["a", "b"]`:  `argument "hosts": want hosts, got an element of type string`,
		`name = "n", flag = "yes"`:        `argument "flag": want bool, got string`,
		`name = "n", unknownthing = True`: `unknown argument "unknownthing"; it takes`,
	}
	for kwargs, want := range cases {
		_, err := fillFrom(t, kwargs)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("fill(%s) = %v\nwant error containing %q", kwargs, err, want)
		}
	}
}

func TestFillPositional(t *testing.T) {
	params, _ := modules.Params(new(every))
	v := new(every)
	if err := fill("every", params, v, starlark.Tuple{starlark.String("n"), starlark.String("m")}, nil); err != nil {
		t.Fatal(err)
	}
	if v.Name != "n" || *v.Maybe != "m" {
		t.Errorf("got %+v", v)
	}
	err := fill("every", params, new(every), starlark.Tuple{starlark.String("n")}, []starlark.Tuple{{starlark.String("name"), starlark.String("x")}})
	if err == nil || !strings.Contains(err.Error(), `argument "name" given twice`) {
		t.Errorf("duplicate: %v", err)
	}
}

func TestSignature(t *testing.T) {
	params, _ := modules.Params(new(every))
	want := `every(name, maybe=None, flag=True, count=3, opt_int=None, list=[], env={}, vars={}, wait="1s", any=None, host=None, hosts=[])`
	if got := modules.Signature("every", params); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
