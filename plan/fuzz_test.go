package plan

import (
	"errors"
	"io/fs"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"go.starlark.net/starlark"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/plans"
)

// The plan package's fuzz targets, with seeds in testdata/fuzz/Fuzz*/.

// FuzzLoad loads a plan that may load a second file. For any input: no
// panic, and every error line leads with a file, a line and a column.
func FuzzLoad(f *testing.F) {
	quickstart, err := fs.ReadFile(plans.FS, "quickstart.star")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(quickstart, []byte(""))
	f.Add([]byte(stepsPlan), []byte(""))
	f.Add([]byte("load(\"lib.star\", \"x\")\n"), []byte("load(\"plan.star\", \"y\")\n"))
	f.Add([]byte(eventPlan), []byte(""))
	f.Add([]byte("load(\"lib.star\", \"web\")\ndef main(ctx):\n    ctx.apply(\"all\", web)\n"),
		[]byte("def web(h):\n    file(path = \"/etc/motd\", contnet = \"hi\")\n"))
	positioned := regexp.MustCompile(`^(plan|lib)\.star:\d+:\d+: `)
	f.Fuzz(func(t *testing.T, planSrc, libSrc []byte) {
		files := fstest.MapFS{
			"plan.star":           {Data: planSrc},
			"lib.star":            {Data: libSrc},
			"templates/motd.tmpl": {Data: []byte("hi\n")},
		}
		p, err := LoadFS(files, "plan.star", "plan.star")
		if err == nil {
			if p.progs["plan.star"] == nil {
				t.Fatal("loaded without compiling plan.star")
			}
			return
		}
		var one *Error
		var many Errors
		if !errors.As(err, &one) && !errors.As(err, &many) {
			t.Errorf("error of type %T, not a plan Error: %v", err, err)
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !positioned.MatchString(line) {
				t.Errorf("error line without a position: %q", line)
			}
		}
	})
}

// FuzzFill calls the argument adapter of every module (and of a struct with
// every argument type) with fuzzed arguments, written as the inside of a
// call: `"/etc/motd", mode = "0644"`. For any input: no panic; an error
// names the module; an unknown argument name is always refused; and on
// success every required argument was given and every string, bool, int
// and list of strings given reached its field unchanged.
func FuzzFill(f *testing.F) {
	for _, s := range []string{
		`path = "/etc/motd", content = "hi", mode = "0644"`,
		`"/etc/motd", None, "motd.tmpl"`,
		`cmd = "make", creates = "/usr/bin/app", env = {"A": 1, "B": True}`,
		`name = "n", maybe = "m", flag = False, opt_int = 7, list = ("a", "b"), wait = "250ms", any = {"x": [1, None]}`,
		`name = "n", flg = True`,
		`name = "n", name = "m"`,
		`labels = ["ns1", "ns2"], region = "eu", type = "g6", image = "debian", tags = ["dns"]`,
		`path = 1`,
	} {
		for i := range uint8(4) {
			f.Add(i, s)
		}
	}
	infos := modules.All()
	f.Fuzz(func(t *testing.T, which uint8, call string) {
		args, kwargs, ok := evalCall(call)
		if !ok {
			return // not a call's arguments: nothing for the adapter to see
		}
		id, v := "every", any(new(every)) // which 0; then the modules in ID order
		if which > 0 {
			info := infos[int(which-1)%len(infos)]
			id, v = info.ID, info.New()
		}
		params, err := modules.Params(v)
		if err != nil {
			t.Fatal(err)
		}
		err = fill(id, params, v, args, kwargs)
		if err != nil {
			if !strings.HasPrefix(err.Error(), id+": ") {
				t.Errorf("error does not name the module %s: %v", id, err)
			}
			return
		}
		given := map[string]starlark.Value{}
		for i, a := range args {
			given[params[i].Name] = a
		}
		for _, kv := range kwargs {
			name := string(kv[0].(starlark.String))
			if _, known := param(params, name); !known {
				t.Fatalf("unknown argument %q accepted", name)
			}
			if _, twice := given[name]; twice {
				t.Fatalf("argument %q given twice, accepted", name)
			}
			given[name] = kv[1]
		}
		rv := reflect.ValueOf(v).Elem()
		for _, p := range params {
			val, ok := given[p.Name]
			if p.Required && !ok {
				t.Fatalf("required argument %q missing, yet accepted", p.Name)
			}
			want, comparable := expected(p.Type, val)
			if !ok || !comparable {
				continue
			}
			field := rv.Field(p.Field)
			if field.Kind() == reflect.Pointer {
				field = field.Elem()
			}
			if got := field.Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("argument %q: field holds %#v, want %#v", p.Name, got, want)
			}
		}
	})
}

// evalCall evaluates the arguments of a call, under a step limit.
func evalCall(call string) (args starlark.Tuple, kwargs []starlark.Tuple, ok bool) {
	th := &starlark.Thread{Name: "fuzz"}
	th.SetMaxExecutionSteps(10_000)
	capture := starlark.NewBuiltin("capture", func(_ *starlark.Thread, _ *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		args, kwargs = a, kw
		return starlark.None, nil
	})
	env := starlark.StringDict{"capture": capture, "h": &hostValue{host: &inventory.Host{Name: "web1"}}}
	_, err := starlark.EvalOptions(fileOptions, th, "call", "capture("+call+"\n)", env)
	return args, kwargs, err == nil
}

// expected is the Go value a string, bool, int or list of strings argument
// must become, for fields of those types (or pointers to them).
func expected(t reflect.Type, v starlark.Value) (any, bool) {
	if v == nil || v == starlark.None {
		return nil, false
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case reflect.TypeFor[string]():
		s, ok := v.(starlark.String)
		return string(s), ok
	case reflect.TypeFor[bool]():
		b, ok := v.(starlark.Bool)
		return bool(b), ok
	case reflect.TypeFor[int]():
		var n int
		return n, starlark.AsInt(v, &n) == nil
	case reflect.TypeFor[[]string]():
		if _, isString := v.(starlark.String); isString {
			return nil, false
		}
		iter, ok := v.(starlark.Iterable)
		if !ok {
			return nil, false
		}
		out := []string{}
		it := iter.Iterate()
		defer it.Done()
		var x starlark.Value
		for it.Next(&x) {
			s, ok := x.(starlark.String)
			if !ok {
				return nil, false
			}
			out = append(out, string(s))
		}
		return out, true
	}
	return nil, false
}
