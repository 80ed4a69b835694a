package engine

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/orch-dev/orch/modules"
)

// A batch is one remote script that runs the snippets of many tasks in
// order, each in its own subshell, framed by marker lines so their output
// and exit status can be told apart. It is how a host's whole check, or its
// whole apply, costs one exchange.
type batch struct {
	marker string
	script strings.Builder
	index  []int // task index of each snippet, in order
}

func newBatch() *batch {
	var nonce [8]byte
	rand.Read(nonce[:])
	b := &batch{marker: "__orch_" + hex.EncodeToString(nonce[:])}
	fmt.Fprintf(&b.script, "ORCH_M=%s\n%s", b.marker, modules.Prelude)
	return b
}

// add appends a snippet. Strict snippets (applies) run in a subshell under
// `set -e`, and a failing one ends the script so later tasks do not run.
// Other snippets (probes) run in a { } group in the script's own shell,
// which spares a process per task; they must not exit.
func (b *batch) add(task int, snippet string, strict bool) {
	b.index = append(b.index, task)
	open, close := "{\n", "}"
	if strict {
		open, close = "(\nset -e\n", ")"
	}
	fmt.Fprintf(&b.script, "printf '\\n%%s B %d\\n' \"$ORCH_M\"\n%s", task, open)
	b.script.WriteString(snippet)
	if !strings.HasSuffix(snippet, "\n") {
		b.script.WriteByte('\n')
	}
	fmt.Fprintf(&b.script, "%s </dev/null 2>&1\nrc=$?\nprintf '\\n%%s E %d %%s\\n' \"$ORCH_M\" \"$rc\"\n", close, task)
	if strict {
		b.script.WriteString("[ \"$rc\" -eq 0 ] || exit 0\n")
	}
}

func (b *batch) empty() bool { return len(b.index) == 0 }

// section is the outcome of one snippet.
type section struct {
	output   []byte
	code     int
	ran      bool   // false when the script ended before the snippet ran
	noChange string // reason printed by modules.NoChange, if any
}

// parse splits the script's output into one section per task index.
func (b *batch) parse(out []byte) (map[int]*section, error) {
	res := make(map[int]*section, len(b.index))
	begin := []byte("\n" + b.marker + " B ")
	end := []byte("\n" + b.marker + " E ")
	rest := out
	for {
		i := bytes.Index(rest, begin)
		if i < 0 {
			break
		}
		rest = rest[i+len(begin):]
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("truncated batch output")
		}
		task, err := strconv.Atoi(string(rest[:nl]))
		if err != nil {
			return nil, fmt.Errorf("bad batch marker %q", rest[:nl])
		}
		rest = rest[nl+1:]
		j := bytes.Index(rest, end)
		if j < 0 {
			return nil, fmt.Errorf("batch output ends inside task %d", task)
		}
		body := rest[:j]
		rest = rest[j+len(end):]
		nl = bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("truncated batch output")
		}
		fields := strings.Fields(string(rest[:nl]))
		rest = rest[nl:]
		if len(fields) != 2 || fields[0] != strconv.Itoa(task) {
			return nil, fmt.Errorf("bad batch marker for task %d", task)
		}
		code, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("bad exit status %q for task %d", fields[1], task)
		}
		s := &section{code: code, ran: true}
		s.output, s.noChange = b.splitNoChange(body)
		res[task] = s
	}
	for _, t := range b.index {
		if res[t] == nil {
			res[t] = &section{}
		}
	}
	return res, nil
}

// splitNoChange removes the line modules.NoChange prints from a snippet's
// output and returns its reason.
func (b *batch) splitNoChange(body []byte) ([]byte, string) {
	prefix := []byte(b.marker + " U ")
	var out [][]byte
	reason := ""
	for _, line := range bytes.SplitAfter(body, []byte("\n")) {
		if r, ok := bytes.CutPrefix(line, prefix); ok {
			reason = strings.TrimSpace(string(r))
			continue
		}
		out = append(out, line)
	}
	return bytes.Join(out, nil), reason
}
