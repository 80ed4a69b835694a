package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/orch-dev/orch/engine"
)

// renderer prints a run's events: JSON Lines with --json; otherwise plain
// lines, with a live progress line on a terminal. It ends with the recap.
type renderer struct {
	w       io.Writer // an *os.File when tty is true
	json    *json.Encoder
	verbose bool
	diff    bool
	tty     bool

	mu       sync.Mutex
	recap    map[string]*recapLine
	order    []string
	role     string
	total    int
	finished int
	working  []string // hosts started and not done, in start order
	live     bool     // a progress line is on screen
	lastDraw time.Time
	step     string            // the step running now
	guards   map[string][2]int // guard -> probes, failed
}

type recapLine struct {
	ok, changed, failed, unreachable int
	failedBefore                     int // failed when the current apply started
}

func newRenderer(w io.Writer, asJSON, verbose, diff bool) *renderer {
	r := &renderer{w: w, verbose: verbose, diff: diff, recap: map[string]*recapLine{}}
	if asJSON {
		r.json = json.NewEncoder(w)
	} else if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.tty = true
	}
	return r
}

func (r *renderer) host(name string) *recapLine {
	l := r.recap[name]
	if l == nil {
		l = &recapLine{}
		r.recap[name] = l
		r.order = append(r.order, name)
	}
	return l
}

func (r *renderer) event(e engine.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.Event {
	case "task":
		l := r.host(e.Host)
		switch e.Status {
		case engine.OK:
			l.ok++
		case engine.Changed:
			l.ok++
			l.changed++
		case engine.Failed:
			l.failed++
		}
	case "host_start":
		r.working = append(r.working, e.Host)
		r.host(e.Host).failedBefore = r.host(e.Host).failed
	case "host_done":
		l := r.host(e.Host)
		switch {
		case e.Status == engine.Unreachable:
			l.unreachable++
		case e.Status == engine.Failed && l.failed == l.failedBefore:
			l.failed++ // the host failed before any task could (its check exchange failed)
		}
		r.finished++
		r.working = slices.DeleteFunc(r.working, func(h string) bool { return h == e.Host })
	case "apply_start":
		r.role, r.total, r.finished, r.working = e.Role, e.Count, 0, nil
	case "step_start":
		r.step = e.Step
	case "step_end":
		r.step = ""
	case "guard", "guard_done":
		if r.guards == nil {
			r.guards = map[string][2]int{}
		}
		r.guards[e.Guard] = [2]int{e.Probes, e.FailedProbes}
	}
	if r.json != nil {
		r.json.Encode(e)
		return
	}
	if line := r.format(e); line != "" {
		r.clearLive()
		fmt.Fprintln(r.w, line)
	}
	r.drawLive(e.Event == "host_done")
}

// format renders one event as plain text, or "" for events not worth a line.
func (r *renderer) format(e engine.Event) string {
	switch e.Event {
	case "run_start":
		mode := ""
		if e.Check {
			mode = " (check mode: nothing will change)"
		}
		return fmt.Sprintf("run %s: %s%s", e.RunID, e.Plan, mode)
	case "apply_start":
		return fmt.Sprintf("apply %s on %d host%s", e.Role, e.Count, plural(e.Count))
	case "task":
		if e.Status == engine.OK && !r.verbose {
			return ""
		}
		line := fmt.Sprintf("  %s: %-7s %s", e.Host, e.Status, e.Task)
		if e.Msg != "" && e.Status != engine.Failed {
			line += ": " + e.Msg
		}
		if e.Status == engine.Failed {
			line += "\n    " + e.Msg
			if out := strings.TrimSpace(e.Output); out != "" {
				line += "\n    " + strings.ReplaceAll(out, "\n", "\n    ")
			}
		}
		if e.Diff != "" {
			line += "\n" + indent(e.Diff, "    ")
		}
		return line
	case "host_done":
		switch e.Status {
		case engine.Unreachable:
			return fmt.Sprintf("  %s: UNREACHABLE %s", e.Host, e.Msg)
		case engine.Failed:
			return fmt.Sprintf("  %s: FAILED %s", e.Host, e.Msg)
		}
		if r.verbose {
			return fmt.Sprintf("  %s: %s (%d tasks, %d changed, %d exchanges)", e.Host, e.Status, e.Tasks, e.TasksChanged, e.Exchanges)
		}
	case "step_start":
		note := ""
		if e.Irreversible {
			note = " (irreversible: no undo from here on)"
		}
		return fmt.Sprintf("step %s%s", e.Step, note)
	case "step_end":
		line := fmt.Sprintf("step %s: %s", e.Step, e.Status)
		if e.DurationMS > 0 {
			line += fmt.Sprintf(" in %s", (time.Duration(e.DurationMS) * time.Millisecond).Round(time.Millisecond))
		}
		if e.Msg != "" {
			line += ": " + e.Msg
		}
		return line
	case "guard":
		if e.Status != engine.Failed {
			return "" // progress, for the live line
		}
		return fmt.Sprintf("guard %s: probe failed (%d of %d so far): %s", e.Guard, e.FailedProbes, e.Probes, e.Msg)
	case "guard_done":
		return fmt.Sprintf("guard %s: %d probes, %d failed", e.Guard, e.Probes, e.FailedProbes)
	case "check":
		switch {
		case e.Status == engine.OK && !r.verbose:
			return ""
		case e.Try == 0:
			return fmt.Sprintf("  %s %s: %s", e.Module, e.Target, e.Msg)
		}
		return fmt.Sprintf("  %s %s try %d: %s: %s", e.Module, e.Target, e.Try, e.Status, e.Msg)
	case "print":
		if e.Host != "" {
			return fmt.Sprintf("  %s: %s", e.Host, e.Msg)
		}
		return e.Msg
	case "warning":
		return "warning: " + e.Msg
	case "host_key":
		return fmt.Sprintf("  %s: %s", e.Host, e.Msg)
	case "interrupted":
		return "interrupted: " + e.Msg + " (interrupt again to quit at once)"
	}
	return ""
}

// drawLive repaints the progress line on a terminal, at most 20 times a second.
func (r *renderer) drawLive(force bool) {
	if !r.tty || r.total == 0 && r.step == "" {
		return
	}
	if !force && time.Since(r.lastDraw) < 50*time.Millisecond {
		return
	}
	r.lastDraw = time.Now()
	r.clearLive()
	if r.finished >= r.total && r.step == "" {
		return
	}
	changed, failed := 0, 0
	for _, l := range r.recap {
		if l.changed > 0 {
			changed++
		}
		if l.failed > 0 || l.unreachable > 0 {
			failed++
		}
	}
	working := ""
	if n := len(r.working); n > 0 {
		working = " · working on " + strings.Join(r.working[:min(n, 4)], ", ")
		if n > 4 {
			working += fmt.Sprintf(" and %d more", n-4)
		}
	}
	text := ""
	if r.step != "" {
		text = "step " + r.step + " · "
	}
	if r.finished < r.total {
		text += fmt.Sprintf("%s: %d/%d hosts done, %d changed, %d failed%s", r.role, r.finished, r.total, changed, failed, working)
	}
	for _, g := range sortedKeys(r.guards) {
		text += fmt.Sprintf(" · guard %s: %d probes, %d failed", g, r.guards[g][0], r.guards[g][1])
	}
	line := []rune("… " + strings.TrimSuffix(text, " · "))
	if w, _, err := term.GetSize(int(r.w.(*os.File).Fd())); err == nil && len(line) >= w {
		line = line[:max(w-1, 0)] // one line only, or \r cannot erase it
	}
	fmt.Fprintf(r.w, "\x1b[2m%s\x1b[0m", string(line))
	r.live = true
}

func (r *renderer) clearLive() {
	if r.live {
		fmt.Fprint(r.w, "\r\x1b[K")
		r.live = false
	}
}

// close prints the summary and the per-host recap (human output), or
// nothing more (JSON: the summary event was the last line).
func (r *renderer) close(rep *engine.Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json != nil || rep == nil {
		return
	}
	r.clearLive()
	s := rep.Summary
	if s.Hosts == 0 && rep.RunID == "" {
		return
	}
	fmt.Fprintf(r.w, "\nhosts=%d ok=%d changed=%d failed=%d unreachable=%d tasks_changed=%d exchanges=%d in %s\n",
		s.Hosts, s.OK, s.Changed, s.Failed, s.Unreachable, s.TasksChanged, s.Exchanges,
		(time.Duration(s.DurationMS) * time.Millisecond).String())
	for _, g := range s.Guards {
		fmt.Fprintf(r.w, "guard %s: %d probes, %d failed (max_fail=%d)\n", g.Name, g.Probes, g.Failed, g.MaxFail)
	}
	names := append([]string(nil), r.order...)
	sort.Strings(names)
	for _, n := range names {
		l := r.recap[n]
		line := fmt.Sprintf("%s ok=%d changed=%d failed=%d", n, l.ok, l.changed, l.failed)
		if l.unreachable > 0 {
			line += " unreachable=1"
		}
		fmt.Fprintln(r.w, line)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func indent(s, prefix string) string {
	s = strings.TrimRight(s, "\n")
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
