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

// A script is one remote exchange: the snippets of many tasks (their
// facts, probes, applies and handlers) in one POSIX sh script, framed by
// marker lines so that each snippet's output and exit status can be told
// apart. It is how a host's whole check, or its whole apply, costs one
// exchange.
//
// Every section prints "\n<marker> B <kind> <id>" before and
// "\n<marker> E <kind> <id> <status>" after its body; inside, a line
// "<marker> U <reason>" says a guard found nothing to do, "<marker> R" that
// a recheck found the task's facts stale, and "<marker> T" that the task
// timed out. The marker holds a random nonce, so output that looks like
// another script's markers stays output.
type script struct {
	marker string
	b      strings.Builder
}

// Section kinds.
const (
	kindFact    = 'f' // a shared fact's script
	kindProbe   = 'p' // a task's probe
	kindApply   = 'a' // a task's apply, recheck or guard
	kindHandler = 'h' // a handler
)

func newScript() *script {
	var nonce [8]byte
	rand.Read(nonce[:])
	s := &script{marker: "__orch_" + hex.EncodeToString(nonce[:])}
	fmt.Fprintf(&s.b, "ORCH_M=%s\n%s_orch_c=' '\n_orch_stop=\n_orch_stale=\n", s.marker, modules.Prelude)
	return s
}

func (s *script) String() string { return s.b.String() }

// take returns the script's text and forgets it; the script then only
// parses the output. The text can so be freed once the connection has sent
// it, rather than held for the whole exchange, which with a thousand hosts
// in flight at once held a check script (8 KiB for 21 file tasks) each.
func (s *script) take() string {
	text := s.b.String()
	s.b = strings.Builder{}
	return text
}

func (s *script) open(kind byte, id int) {
	fmt.Fprintf(&s.b, "printf '\\n%%s B %c %d\\n' \"$ORCH_M\"\n", kind, id)
}

func (s *script) close(kind byte, id int, status string) {
	fmt.Fprintf(&s.b, "printf '\\n%%s E %c %d %%s\\n' \"$ORCH_M\" %s\n", kind, id, status)
}

// read adds a fact or probe snippet, run in a { } group of the script's own
// shell (which spares a process per task), so it must not exit.
func (s *script) read(kind byte, id int, snippet string) {
	s.open(kind, id)
	fmt.Fprintf(&s.b, "{\n%s\n} </dev/null 2>&1\n_orch_rc=$?\n", snippet)
	s.close(kind, id, `"$_orch_rc"`)
}

// applyEntry is one task's part of an apply script.
type applyEntry struct {
	id      int
	recheck string          // a condition that holds while the task's facts do; "" when not at risk
	unless  []modules.Guard // re-checked guards
	apply   string          // "" for a task that only rechecks
	fail    bool            // the task's check failed: stop here, unless the recheck finds it stale
	timeout float64         // seconds; 0 for none
	upload  string          // $ORCH_UPLOAD for the apply
}

// apply adds a task. Once a task fails or is found stale, the sections after
// it are skipped: _orch_stop holds its id (and _orch_stale, for a stale one).
func (s *script) apply(e applyEntry) {
	fmt.Fprintf(&s.b, "if [ -z \"$_orch_stop\" ]; then\n")
	s.open(kindApply, e.id)
	s.b.WriteString("_orch_rc=0\n")
	kw := "if"
	if e.recheck != "" {
		fmt.Fprintf(&s.b, "if ! %s >/dev/null 2>&1; then printf '%%s R\\n' \"$ORCH_M\"; _orch_stop=%d; _orch_stale=%d\n", e.recheck, e.id, e.id)
		kw = "elif"
	}
	for _, g := range e.unless {
		fmt.Fprintf(&s.b, "%s %s; then printf '%%s U %%s\\n' \"$ORCH_M\" %s\n", kw, g.Test, modules.Quote(g.Reason))
		kw = "elif"
	}
	body := ":\n"
	switch {
	case e.fail:
		body = fmt.Sprintf("_orch_stop=%d\n", e.id)
	case e.apply != "":
		body = s.run(e.apply, e.timeout, e.upload) +
			fmt.Sprintf("if [ \"$_orch_rc\" -eq 0 ]; then _orch_c=\"${_orch_c}%d \"; else _orch_stop=%d; fi\n", e.id, e.id)
	}
	if kw == "if" {
		s.b.WriteString(body)
	} else {
		fmt.Fprintf(&s.b, "else\n%sfi\n", body)
	}
	s.close(kindApply, e.id, `"$_orch_rc"`)
	s.b.WriteString("fi\n")
}

// run is sh that runs a snippet in a subshell under set -e, or under a
// timeout in a shell of its own (which takes the prelude along), leaving
// its exit status in _orch_rc.
func (s *script) run(snippet string, timeout float64, upload string) string {
	var b strings.Builder
	if upload != "" {
		fmt.Fprintf(&b, "ORCH_UPLOAD=%s\n", modules.Quote(upload))
	}
	if timeout <= 0 {
		fmt.Fprintf(&b, "(\nset -e\n%s\n) </dev/null 2>&1\n_orch_rc=$?\n", snippet)
		return b.String()
	}
	inner := "ORCH_M=$1; ORCH_UPLOAD=$2\n" + modules.Prelude + "set -e\n" + snippet + "\n"
	fmt.Fprintf(&b, "_orch_timeout %s /bin/sh -c %s sh \"$ORCH_M\" \"${ORCH_UPLOAD:-}\" </dev/null 2>&1\n_orch_rc=$?\n",
		strconv.FormatFloat(timeout, 'f', -1, 64), modules.Quote(inner))
	b.WriteString("case $_orch_rc in 124|137) printf '%s T\\n' \"$ORCH_M\";; esac\n")
	return b.String()
}

// stopStatic makes the script skip everything after this point and mark
// the tasks from id on for a fresh check, for a task whose staleness
// cannot be tested on the host.
func (s *script) stopStatic(id int) {
	fmt.Fprintf(&s.b, "if [ -z \"$_orch_stop\" ]; then _orch_stop=%d; _orch_stale=%d; fi\n", id, id)
}

// handler adds a handler, run when the script got this far and one of the
// triggers (task ids) changed, or always when known is set.
func (s *script) handler(id int, h modules.Handler, known bool, triggers []int) {
	cond := "true"
	if !known {
		if len(triggers) == 0 {
			return
		}
		var pats []string
		for _, t := range triggers {
			pats = append(pats, fmt.Sprintf(`*" %d "*`, t))
		}
		cond = fmt.Sprintf("case \"$_orch_c\" in %s) true;; *) false;; esac", strings.Join(pats, "|"))
	}
	fmt.Fprintf(&s.b, "if [ -z \"$_orch_stop\" ] && %s; then\n", cond)
	s.open(kindHandler, id)
	s.b.WriteString(s.run(h.Script, 0, ""))
	s.close(kindHandler, id, `"$_orch_rc"`)
	fmt.Fprintf(&s.b, "[ \"$_orch_rc\" -eq 0 ] || _orch_stop=h%d\nfi\n", id)
}

// ifStale wraps reads that run only when a task was found stale.
func (s *script) ifStale(body func()) {
	s.b.WriteString("if [ -n \"$_orch_stale\" ]; then\n")
	body()
	s.b.WriteString("fi\n")
}

// section is the outcome of one snippet.
type section struct {
	output   []byte
	code     int
	noChange string // a guard's reason
	stale    bool   // a recheck failed
	timedOut bool
}

type sectionID struct {
	kind byte
	id   int
}

// parse splits the script's output into its sections. A section missing
// from the map did not run.
func (s *script) parse(out []byte) (map[sectionID]*section, error) {
	res := map[sectionID]*section{}
	begin := []byte("\n" + s.marker + " B ")
	end := []byte("\n" + s.marker + " E ")
	rest := out
	for {
		i := bytes.Index(rest, begin)
		if i < 0 {
			break
		}
		rest = rest[i+len(begin):]
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("truncated script output")
		}
		head := string(rest[:nl])
		id, err := parseSectionID(head)
		if err != nil {
			return nil, err
		}
		rest = rest[nl+1:]
		j := bytes.Index(rest, end)
		if j < 0 {
			return nil, fmt.Errorf("script output ends inside section %s", head)
		}
		body := rest[:j]
		rest = rest[j+len(end):]
		nl = bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("truncated script output")
		}
		tail := strings.Fields(string(rest[:nl]))
		rest = rest[nl:]
		if len(tail) != 3 || tail[0]+" "+tail[1] != head {
			return nil, fmt.Errorf("bad end marker for section %s", head)
		}
		code, err := strconv.Atoi(tail[2])
		if err != nil {
			return nil, fmt.Errorf("bad exit status %q for section %s", tail[2], head)
		}
		sec := &section{code: code}
		sec.output = s.markerLines(body, sec)
		res[id] = sec
	}
	return res, nil
}

func parseSectionID(head string) (sectionID, error) {
	kind, num, ok := strings.Cut(head, " ")
	id, err := strconv.Atoi(num)
	if !ok || len(kind) != 1 || err != nil {
		return sectionID{}, fmt.Errorf("bad section marker %q", head)
	}
	return sectionID{kind: kind[0], id: id}, nil
}

// markerLines takes the U, R and T lines out of a section's output.
func (s *script) markerLines(body []byte, sec *section) []byte {
	prefix := []byte(s.marker + " ")
	var out [][]byte
	for _, line := range bytes.SplitAfter(body, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, prefix)
		if !ok {
			out = append(out, line)
			continue
		}
		switch {
		case bytes.HasPrefix(rest, []byte("U ")):
			sec.noChange = strings.TrimSpace(string(rest[2:]))
		case bytes.Equal(bytes.TrimSpace(rest), []byte("R")):
			sec.stale = true
		case bytes.Equal(bytes.TrimSpace(rest), []byte("T")):
			sec.timedOut = true
		default:
			out = append(out, line)
		}
	}
	return bytes.Join(out, nil)
}
