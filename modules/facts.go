package modules

import (
	"fmt"
	"sort"
	"strings"
)

// Fact is host state that many tasks read and that is far cheaper to gather
// for all of them at once: one stat and one hash process for every path a
// host's tasks name, rather than two processes per task. The engine runs
// each fact's script once per host, in the same exchange as the probes.
//
// A fact is a command plus a parser; its parser is tested on captured
// output (testdata/facts/NAME/*.json beside the fact).
type Fact interface {
	// Script returns a POSIX sh snippet that prints the fact for every key.
	// Like a probe, it must change nothing and must not exit.
	Script(keys []string) string
	// Parse reads the snippet's output into one value per key.
	Parse(out []byte, keys []string) (map[string]any, error)
}

// FactRechecker is implemented by facts that can test on the host, with a
// POSIX sh condition, that one key still has the value gathered earlier.
// The engine uses it to confirm, inside an apply, a decision an earlier
// change of the same apply may have made stale, instead of starting a new
// check exchange.
type FactRechecker interface {
	Recheck(key string, value any) string
}

// FactKey names one fact of one subject, such as the state of one path.
// Host facts have the empty key.
type FactKey struct {
	Fact string // the registered fact name, e.g. "path"
	Key  string // the subject, e.g. "/etc/motd"
}

// StateKey is the key of host state a fact key reads, in the form effects
// use ("path:/etc/motd").
func (k FactKey) StateKey() string { return k.Fact + ":" + k.Key }

// FactReader is implemented by tasks that read shared facts. Check finds
// their values in CheckRequest.Facts.
type FactReader interface {
	Facts() []FactKey
}

// HostFact is a fact of the host as a whole: its OS, init system, package
// manager or boot ID. Plans read it with h.fact(name); tasks read it as
// FactKey{Fact: name}. The engine gathers every host fact a run needs in
// one exchange and keeps them for the connection's life.
type HostFact struct {
	Doc     string                        // what the value is, for `orch modules`
	Command string                        // POSIX sh that prints the fact
	Parser  func(out []byte) (any, error) // reads what Command printed
}

// Script implements Fact.
func (f *HostFact) Script([]string) string { return f.Command }

// Parse implements Fact.
func (f *HostFact) Parse(out []byte, _ []string) (map[string]any, error) {
	v, err := f.Parser(out)
	if err != nil {
		return nil, err
	}
	return map[string]any{"": v}, nil
}

// RegisterFact adds a shared fact. A duplicate name panics at start-up.
func RegisterFact(name string, f Fact) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := facts[name]; dup || name == "" || strings.ContainsAny(name, ": ") {
		panic(fmt.Sprintf("modules: duplicate or malformed fact name %q", name))
	}
	facts[name] = f
}

// LookupFact returns the shared fact with the given name.
func LookupFact(name string) (Fact, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := facts[name]
	return f, ok
}

// HostFacts lists the names of the registered host facts, sorted.
func HostFacts() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for name, f := range facts {
		if _, ok := f.(*HostFact); ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
