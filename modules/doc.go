package modules

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Index renders the list of registered modules that `orch modules`
// prints: one line per module (ID, where it runs, the first line of its
// doc), then the arguments every host module takes.
func Index() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, info := range All() {
		where := "host"
		if !info.IsTask() {
			where = "controller"
		}
		first, _, _ := strings.Cut(info.Doc, "\n")
		fmt.Fprintf(tw, "%s\t%s\t%s\n", info.ID, where, first)
	}
	tw.Flush()
	writeCommon(&b)
	return b.String()
}

// Doc renders one module's documentation as `orch modules NAME` prints
// it: the call signature, the doc text, and every argument with its type
// and doc tag, generated from the argument struct. info need not be
// registered; the error says why its argument struct is malformed.
func Doc(info Info) (string, error) {
	if info.New == nil {
		return "", fmt.Errorf("modules: %s has no New", info.ID)
	}
	args := info.New()
	params, err := Params(args)
	if err != nil {
		return "", fmt.Errorf("modules: %s: %w", info.ID, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n%s\n\nArguments:\n", Signature(info.ID, params), strings.TrimSpace(info.Doc))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, p := range params {
		req := ""
		if p.Required {
			req = " (required)"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\t%s\n", p.Name, TypeName(p.Type), req, p.Doc)
	}
	tw.Flush()
	if _, isTask := args.(Task); isTask {
		writeCommon(&b)
	}
	return b.String(), nil
}

// writeCommon lists the arguments every host module call takes.
func writeCommon(b *strings.Builder) {
	b.WriteString("\nEvery host module also takes:\n")
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	for _, p := range Common {
		fmt.Fprintf(tw, "  %s=None\t%s\n", p.Name, p.Doc)
	}
	tw.Flush()
}
