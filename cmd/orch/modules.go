package main

import (
	"fmt"
	"io"

	"github.com/orch-dev/orch/modules"
)

// modules prints the module list, or one module's documentation, generated
// from the module definitions themselves (modules.Index and modules.Doc).
func (c *cli) modules(args []string) error {
	fs := newFlagSet("modules", c.stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(err)
	}
	switch len(pos) {
	case 0:
		_, err := io.WriteString(c.stdout, modules.Index())
		return err
	case 1:
		info, ok := modules.Lookup(pos[0])
		if !ok {
			return &usageError{msg: fmt.Sprintf("no module %q", pos[0]), hint: "run `orch modules` for the list"}
		}
		doc, err := modules.Doc(info)
		if err != nil {
			return err
		}
		_, err = io.WriteString(c.stdout, doc)
		return err
	}
	return &usageError{msg: "orch modules takes at most one module name"}
}
