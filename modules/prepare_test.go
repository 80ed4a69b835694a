package modules_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orch-dev/orch/modules"
)

// args is an argument struct with every kind of default.
type args struct {
	Name  string        `arg:"name,required"`
	State string        `arg:"state" default:"present"`
	Tries int           `arg:"tries" default:"3"`
	Wait  time.Duration `arg:"wait" default:"2s"`
	Force bool          `arg:"force" default:"True"`
}

func (a *args) Validate(*modules.Env) error {
	if a.State == "broken" {
		return errors.New("state broken")
	}
	return nil
}

func TestPrepare(t *testing.T) {
	a := &args{Name: "x", Tries: 5}
	if err := modules.Prepare(a, &modules.Env{}); err != nil {
		t.Fatal(err)
	}
	if a.State != "present" || a.Tries != 5 || a.Wait != 2*time.Second || !a.Force {
		t.Errorf("after Prepare: %+v", a)
	}
	if err := modules.Prepare(&args{}, nil); err == nil || !strings.Contains(err.Error(), `missing argument "name"`) {
		t.Errorf("missing name: %v", err)
	}
	if err := modules.Prepare(&args{Name: "x", State: "broken"}, nil); err == nil || err.Error() != "state broken" {
		t.Errorf("Validate's error: %v", err)
	}
	if err := modules.Prepare(args{}, nil); err == nil {
		t.Error("a struct that is not a pointer was accepted")
	}
}

func TestIDOf(t *testing.T) {
	if id, ok := modules.IDOf(new(Line)); !ok || id != "acme.line" {
		t.Errorf("IDOf(*Line) = %q, %v", id, ok)
	}
	if _, ok := modules.IDOf(new(args)); ok {
		t.Error("an unregistered struct has an ID")
	}
	defer func() {
		if recover() == nil {
			t.Error("a second module with Line's argument struct registered")
		}
	}()
	modules.Register(modules.Info{ID: "acme.line2", New: func() any { return new(Line) }})
}
