package plan

import (
	"strings"
	"testing"
)

// json is predeclared beside the module groups (linode, digitalocean): the
// static check must not take json.encode for an unknown module.
func TestJSONIsNotAModuleGroup(t *testing.T) {
	r := newRunner()
	if err := run(t, "def main(ctx):\n    print(json.encode({\"a\": [1, None]}), json.decode('{\"b\": true}')[\"b\"])\n", r); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.out, "|"); got != `{"a":[1,null]} True` {
		t.Errorf("print = %q", got)
	}
	// An unknown member of a real module group is still reported.
	if err := run(t, "def main(ctx):\n    linode.instnces()\n", r); err == nil || !strings.Contains(err.Error(), "plan.star:2:5: linode.instnces is not a module") {
		t.Errorf("err = %v", err)
	}
}
