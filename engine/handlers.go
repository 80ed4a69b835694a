package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/orch-dev/orch/modules"
)

// handlerPlan lists the handlers due for identity as (any identity when as
// is nil), each once: those triggered by changes already applied, or
// pending from an earlier run (known), and those the tasks of the script
// being built (inScript) would trigger. A handler queued twice runs once,
// at the higher level (a restart covers a reload). Watchers react to tasks
// whose declared effects overlap what they watch; an opaque command never
// triggers them (it would restart a service on every run).
func (hr *hostRun) handlerPlan(inScript map[int]bool, as *identity) []*queuedHandler {
	byID := map[string]*queuedHandler{}
	var order []*queuedHandler
	add := func(h modules.Handler, who identity, known bool, source int) {
		q := byID[h.ID]
		if q == nil {
			q = &queuedHandler{Handler: h, as: who}
			byID[h.ID] = q
			order = append(order, q)
		} else if h.Level > q.Level {
			q.Handler, q.as = h, who
		}
		if known {
			q.known = true
		} else {
			q.sources = append(q.sources, source)
		}
	}
	// changing: whether it changed already (known) or may change in the
	// script being built; false when neither.
	changing := func(it *item) (known, ok bool) {
		switch {
		case it.changed:
			return true, true
		case inScript[it.id] && it.resp.Changed:
			return false, true
		}
		return false, false
	}
	for _, p := range hr.pending {
		add(p.handler(), p.identity(), true, -1)
	}
	for _, it := range hr.items {
		if known, ok := changing(it); ok {
			for _, n := range it.resp.Notify {
				add(n, it.as, known, it.id)
			}
		}
	}
	for _, w := range hr.items {
		wa, isWatcher := w.Impl.(modules.Watcher)
		if !isWatcher || w.resp.OnWatch == nil || w.resp.Err != nil {
			continue
		}
		var keys []string
		for _, k := range wa.Watches() {
			keys = append(keys, modules.WatchKey(k))
		}
		for _, it := range hr.items {
			if known, ok := changing(it); ok && it != w && modules.OverlapAny(effectsOf(it), keys) {
				add(*w.resp.OnWatch, w.as, known, it.id)
			}
		}
	}
	out := order[:0]
	for _, q := range order {
		if !hr.ran[q.ID] && (as == nil || q.as == *as) {
			out = append(out, q)
		}
	}
	return out
}

// handlersRan reports the handlers of a script that ran, and returns the
// failure of one that failed.
func (hr *hostRun) handlersRan(handlers []*queuedHandler, sections map[sectionID]*section) string {
	for i, q := range handlers {
		s := sections[sectionID{kindHandler, i}]
		if s == nil {
			continue // none of its triggers changed after all
		}
		if s.code != 0 {
			msg := fmt.Sprintf("handler %q on %s: %v", q.Action, hr.host.Name, withOutput(fmt.Errorf("exit status %d", s.code), s.output, &item{}))
			hr.handlerEvent(q, Failed, msg, string(s.output))
			return msg
		}
		hr.ran[q.ID] = true
		hr.done.TasksChanged++
		hr.handlerEvent(q, Changed, q.Action, string(s.output))
	}
	return ""
}

// runHandlers runs, in an exchange of their own, the handlers that are due
// but did not run at the end of the last apply (one with a become
// identity of its own, or triggered when the last segment changed nothing).
func (hr *hostRun) runHandlers(ctx context.Context) string {
	if hr.r.opts.Check {
		return ""
	}
	due := hr.handlerPlan(nil, nil)
	for len(due) > 0 {
		as := due[0].as
		sc := newScript()
		var batch []*queuedHandler
		rest := due[:0:0]
		for _, q := range due {
			if q.as != as || !q.known {
				if q.known {
					rest = append(rest, q)
				}
				continue
			}
			sc.handler(len(batch), q.Handler, true, nil)
			batch = append(batch, q)
		}
		due = rest
		if len(batch) == 0 {
			continue
		}
		sections, err := hr.exec(ctx, sc, as)
		if err != nil {
			return fmt.Sprintf("handlers on %s: %v", hr.host.Name, err)
		}
		if failure := hr.handlersRan(batch, sections); failure != "" {
			return failure
		}
	}
	return ""
}

func (hr *hostRun) handlerEvent(q *queuedHandler, status Status, msg, output string) {
	e := Event{Event: "task", Role: hr.role, Host: hr.host.Name, Task: "handler: " + q.Action, Module: "handler", Status: status, Msg: msg}
	if status == Failed {
		e.Output = output
	}
	hr.r.emit(e)
}

// pendingHandler is a handler journaled for a host's next run: its change
// was applied but the host failed before the handler ran.
type pendingHandler struct {
	ID     string `json:"id"`
	Level  int    `json:"level,omitempty"`
	Action string `json:"action"`
	Script string `json:"script"`
	User   string `json:"become_user,omitempty"`
	Method string `json:"become_method,omitempty"`
}

func (p pendingHandler) handler() modules.Handler {
	return modules.Handler{ID: p.ID, Level: p.Level, Action: p.Action, Script: p.Script}
}

func (p pendingHandler) identity() identity { return identity{user: p.User, method: p.Method} }

func (hr *hostRun) pendingFile() string {
	return filepath.Join(hr.r.state, "handlers", safeName(hr.host.Name)+".json")
}

// loadPending reads the handlers an earlier run left for this host.
func (hr *hostRun) loadPending() {
	b, err := os.ReadFile(hr.pendingFile())
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			hr.r.warn(fmt.Sprintf("%s: reading pending handlers: %v", hr.host.Name, err))
		}
		return
	}
	if err := json.Unmarshal(b, &hr.pending); err != nil {
		hr.r.warn(fmt.Sprintf("%s: pending handlers in %s are unreadable: %v", hr.host.Name, hr.pendingFile(), err))
	}
}

// savePending journals the handlers that are due but did not run, so the
// host's next run carries them out even if nothing changes then.
func (hr *hostRun) savePending() {
	if hr.r.opts.Check {
		return
	}
	var due []pendingHandler
	for _, q := range hr.handlerPlan(nil, nil) {
		if q.known {
			due = append(due, pendingHandler{ID: q.ID, Level: q.Level, Action: q.Action, Script: q.Script, User: q.as.user, Method: q.as.method})
		}
	}
	if len(due) == 0 {
		return
	}
	b, _ := json.MarshalIndent(due, "", "  ")
	err := os.MkdirAll(filepath.Dir(hr.pendingFile()), 0o700)
	if err == nil {
		err = writeFileAtomic(hr.pendingFile(), b)
	}
	if err != nil {
		hr.r.warn(fmt.Sprintf("%s: could not journal pending handlers (%v): run them by hand: %v", hr.host.Name, err, due))
		return
	}
	hr.r.warn(fmt.Sprintf("%s: %d handlers did not run (%s); the next run on this host runs them", hr.host.Name, len(due), due[0].Action))
}

// clearPending forgets the handlers an earlier run left, now done.
func (hr *hostRun) clearPending() {
	if hr.r.opts.Check || len(hr.pending) == 0 {
		return
	}
	os.Remove(hr.pendingFile())
}
