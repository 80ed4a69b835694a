package standintest

import (
	"strings"
	"testing"
)

// TestStartAndTemplate boots a host and makes a jail root from its
// template: the clone holds the base system's stand-ins.
func TestStartAndTemplate(t *testing.T) {
	h := Start(t, "orch-jail-sit")
	root := h.Jail("t1", h.Template())
	if out := h.Must("ls " + root + "/bin/sh " + root + "/usr/bin/mktemp"); !strings.Contains(out, root+"/usr/bin/mktemp") {
		t.Errorf("the jail root lacks the base system: %q", out)
	}
}
