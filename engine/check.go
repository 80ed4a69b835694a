package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/orch-dev/orch/modules"
)

// check gathers the shared facts and runs the probes of tasks, all in one
// exchange, and lets each task decide.
func (hr *hostRun) check(ctx context.Context, items []*item) error {
	t0 := time.Now()
	defer func() { hr.done.CheckMS += time.Since(t0).Milliseconds() }()
	sc := newScript()
	if !hr.addReads(sc, items) {
		return hr.decide(items, nil)
	}
	sections, err := hr.exec(ctx, sc, items[0].as)
	if err != nil {
		return err
	}
	return hr.decide(items, sections)
}

// addReads adds the fact and probe sections of tasks to a script and
// reports whether there were any. Host facts gathered before on this
// connection are not gathered again.
func (hr *hostRun) addReads(sc *script, items []*item) bool {
	any := false
	for i, w := range hr.wantedFacts(items) {
		sc.read(kindFact, i, w.fact.Script(w.keys))
		any = true
	}
	for _, it := range items {
		if probe := it.Impl.Probe(modules.ProbeRequest{Diff: hr.r.opts.Diff}); probe != "" {
			sc.read(kindProbe, it.id, probe)
			any = true
		}
	}
	return any
}

// decide lets each task check itself against the facts and probe output
// the sections hold (nil: the tasks need none).
func (hr *hostRun) decide(items []*item, sections map[sectionID]*section) error {
	facts := map[modules.FactKey]any{}
	for i, w := range hr.wantedFacts(items) {
		s := sections[sectionID{kindFact, i}]
		if s == nil {
			return fmt.Errorf("no %s facts came back from %s", w.name, hr.host.Name)
		}
		vals, err := w.fact.Parse(s.output, w.keys)
		if err != nil {
			return fmt.Errorf("gathering %s facts on %s: %w", w.name, hr.host.Name, err)
		}
		for k, v := range vals {
			facts[modules.FactKey{Fact: w.name, Key: k}] = v
		}
		if _, host := w.fact.(*modules.HostFact); host {
			hr.r.pool.setHostFact(hr.host.Name, w.name, vals[""])
		}
	}
	for _, it := range items {
		req := modules.CheckRequest{Diff: hr.r.opts.Diff, Facts: map[modules.FactKey]any{}}
		if fr, ok := it.Impl.(modules.FactReader); ok {
			for _, k := range fr.Facts() {
				v, ok := facts[k]
				if !ok && k.Key == "" {
					v, ok = hr.r.pool.hostFact(hr.host.Name, k.Fact)
				}
				if ok {
					req.Facts[k] = v
				}
			}
		}
		if s := sections[sectionID{kindProbe, it.id}]; s != nil {
			req.Output, req.ProbeCode = s.output, s.code
		}
		it.resp = modules.CheckResponse{}
		it.Impl.Check(req, &it.resp)
		it.facts, it.output, it.code = req.Facts, req.Output, req.ProbeCode
	}
	return nil
}

// factRequest is one shared fact and the keys a host's tasks want of it.
type factRequest struct {
	name string
	fact modules.Fact
	keys []string
}

// wantedFacts collects the shared facts that tasks read, each key once, in
// the order tasks ask for them, leaving out host facts already known.
func (hr *hostRun) wantedFacts(items []*item) []factRequest {
	var out []factRequest
	index := map[string]int{}
	seen := map[modules.FactKey]bool{}
	for _, it := range items {
		fr, ok := it.Impl.(modules.FactReader)
		if !ok {
			continue
		}
		for _, k := range fr.Facts() {
			if seen[k] {
				continue
			}
			seen[k] = true
			f, found := modules.LookupFact(k.Fact)
			if !found {
				panic(fmt.Sprintf("engine: task %s reads unregistered fact %q", it.Name(), k.Fact))
			}
			if _, host := f.(*modules.HostFact); host {
				if _, known := hr.r.pool.hostFact(hr.host.Name, k.Fact); known {
					continue
				}
			}
			i, ok := index[k.Fact]
			if !ok {
				i = len(out)
				index[k.Fact] = i
				out = append(out, factRequest{name: k.Fact, fact: f})
			}
			out[i].keys = append(out[i].keys, k.Key)
		}
	}
	return out
}

// recheckOf is a sh condition that holds on the host while what a task's
// check read is unchanged: the task's own Recheck, or else every fact's
// recheck and a rerun of its probe that prints what it printed before.
// It reports false when some fact cannot be rechecked on the host.
func (hr *hostRun) recheckOf(it *item) (string, bool) {
	req := modules.CheckRequest{Output: it.output, ProbeCode: it.code, Facts: it.facts, Diff: hr.r.opts.Diff}
	if rc, ok := it.Impl.(modules.Rechecker); ok {
		return rc.Recheck(req), true
	}
	var conds []string
	if fr, ok := it.Impl.(modules.FactReader); ok {
		for _, k := range fr.Facts() {
			f, _ := modules.LookupFact(k.Fact)
			if _, host := f.(*modules.HostFact); host {
				continue // host facts hold for the connection's life
			}
			frc, ok := f.(modules.FactRechecker)
			v, have := it.facts[k]
			if !ok || !have {
				return "", false
			}
			conds = append(conds, frc.Recheck(k.Key, v))
		}
	}
	if probe := it.Impl.Probe(modules.ProbeRequest{Diff: hr.r.opts.Diff}); probe != "" {
		want := fmt.Sprintf("%sx%d", it.output, it.code)
		conds = append(conds, fmt.Sprintf("[ \"$( { %s\n} </dev/null 2>&1; printf 'x%%s' \"$?\")\" = %s ]", probe, modules.Quote(want)))
	}
	if len(conds) == 0 {
		return "", false
	}
	return "{ " + strings.Join(conds, " && ") + "; }", true
}
