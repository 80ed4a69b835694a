package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/orch-dev/orch/modules"
)

// modules prints the module list, or one module's documentation, generated
// from the module definitions themselves.
func (c *cli) modules(args []string) error {
	fs := newFlagSet("modules", c.stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(err)
	}
	switch len(pos) {
	case 0:
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, info := range modules.All() {
			where := "host"
			if !info.IsTask() {
				where = "controller"
			}
			first, _, _ := strings.Cut(info.Doc, "\n")
			fmt.Fprintf(tw, "%s\t%s\t%s\n", info.ID, where, first)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		return c.commonArgs()
	case 1:
		info, ok := modules.Lookup(pos[0])
		if !ok {
			return &usageError{msg: fmt.Sprintf("no module %q", pos[0]), hint: "run `orch modules` for the list"}
		}
		params, err := modules.Params(info.New())
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s\n\n%s\n\nArguments:\n", modules.Signature(info.ID, params), strings.TrimSpace(info.Doc))
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, p := range params {
			req := ""
			if p.Required {
				req = " (required)"
			}
			fmt.Fprintf(tw, "  %s\t%s%s\t%s\n", p.Name, modules.TypeName(p.Type), req, p.Doc)
		}
		if err := tw.Flush(); err != nil || !info.IsTask() {
			return err
		}
		return c.commonArgs()
	}
	return &usageError{msg: "orch modules takes at most one module name"}
}

// commonArgs lists the arguments every host module call takes.
func (c *cli) commonArgs() error {
	fmt.Fprintf(c.stdout, "\nEvery host module also takes:\n")
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, p := range modules.Common {
		fmt.Fprintf(tw, "  %s=None\t%s\n", p.Name, p.Doc)
	}
	return tw.Flush()
}
