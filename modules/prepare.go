package modules

import (
	"fmt"
	"reflect"
	"strconv"
	"time"
)

// Prepare readies an argument struct built in Go (&file.File{Path: …}) the
// way the Starlark adapter readies one built from a plan call, so that the
// engine can run it: every zero field whose tag has a default gets it
// (State "" becomes "file"), every required field must be set, and then the
// module's Validate runs, with env as the run shows it to the module (Host
// is the host the task is for). args must be a pointer to a module's
// argument struct. The error names the missing argument, or is Validate's.
//
// Prepare fills args in place: give each host its own copy.
func Prepare(args any, env *Env) error {
	params, err := Params(args)
	if err != nil {
		return err
	}
	rv := reflect.ValueOf(args).Elem()
	for _, p := range params {
		f := rv.Field(p.Field)
		if !f.IsZero() {
			continue
		}
		if p.Required {
			return fmt.Errorf("missing argument %q", p.Name)
		}
		if p.Default != "" {
			def, err := p.DefaultValue()
			if err != nil {
				return err
			}
			f.Set(def)
		}
	}
	if v, ok := args.(Validator); ok {
		return v.Validate(env)
	}
	return nil
}

// SetDefaults sets every argument of args, a pointer to an argument struct,
// to its tag's default, as a call that gives no arguments has them.
func SetDefaults(args any) error {
	params, err := Params(args)
	if err != nil {
		return err
	}
	rv := reflect.ValueOf(args).Elem()
	for _, p := range params {
		if p.Default == "" {
			continue
		}
		def, err := p.DefaultValue()
		if err != nil {
			return err
		}
		rv.Field(p.Field).Set(def)
	}
	return nil
}

// DefaultValue is the parameter's default tag as a value of its type. It
// fails for a type that cannot have a default or a tag that does not parse.
func (p Param) DefaultValue() (reflect.Value, error) {
	var v reflect.Value
	var err error
	switch p.Type {
	case typeString:
		v = reflect.ValueOf(p.Default)
	case typeBool:
		v = reflect.ValueOf(p.Default == "True")
		if p.Default != "True" && p.Default != "False" {
			err = fmt.Errorf("want True or False")
		}
	case typeInt:
		var n int
		n, err = strconv.Atoi(p.Default)
		v = reflect.ValueOf(n)
	case typeDuration:
		var d time.Duration
		d, err = time.ParseDuration(p.Default)
		v = reflect.ValueOf(d)
	default:
		err = fmt.Errorf("no default for type %s", TypeName(p.Type))
	}
	if err != nil {
		return reflect.Value{}, fmt.Errorf("default %q of %s: %w", p.Default, p.Name, err)
	}
	return v, nil
}
