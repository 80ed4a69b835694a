// Package modules is the registry and contract of orch's modules.
//
// A module is a plain Go struct whose exported fields are its arguments
// (tagged `arg:"name"`). The Starlark host turns every registered module into
// a builtin of the same dotted name through one generic adapter, so no module
// writes Starlark glue. Host modules implement Task: they say how to probe a
// host, then compare the probed facts with the wanted state. Controller-side
// modules implement Call and act from the controller.
//
// Modules register themselves in init(); an embedder chooses modules by
// blank-importing them (see modules/standard).
package modules

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"sync"

	"github.com/orch-dev/orch/inventory"
)

// Info describes one module.
type Info struct {
	ID  string     // dotted Starlark name: "file", "zfs.dataset", "check.dns"
	Doc string     // what the module does, for `orch modules NAME`
	New func() any // returns a pointer to a zero argument struct implementing Task or Call
}

// Task is a host module call with its arguments filled in. Tasks are
// synchronous and know nothing of connections or concurrency: the engine
// batches the probes of many tasks into one remote script and their applies
// into another.
type Task interface {
	// Probe returns a POSIX sh snippet whose output Check reads. It must
	// change nothing on the host, and must not exit: probes of many tasks
	// run in one shell. An empty probe means Check needs no facts.
	Probe(req ProbeRequest) string
	// Check compares the probed facts with the wanted state and says what
	// would change and how to change it.
	Check(req CheckRequest, resp *CheckResponse)
}

// ProbeRequest carries what a probe may depend on.
type ProbeRequest struct {
	Diff bool // the caller wants a diff, so fetch the old content too
}

// CheckRequest carries what was gathered from the host to Check.
type CheckRequest struct {
	Output    []byte          // stdout and stderr of the task's probe snippet
	ProbeCode int             // the probe snippet's exit status
	Facts     map[FactKey]any // the shared facts the task asked for (FactReader)
	Diff      bool
	// Triggered is true when a path this task watches (Watcher) is changed
	// by an earlier task of the same host in this run.
	Triggered bool
}

// CheckResponse is what Check decides. When Changed is false, Reason says
// why nothing needs doing ("/etc/motd is up to date"); otherwise it says
// what will change.
type CheckResponse struct {
	Changed bool
	Reason  string
	Diff    string // unified diff or summary for --diff; secrets are masked
	// Apply is a POSIX sh snippet that makes the change. It runs in a
	// subshell with `set -e`; it may print a line made by NoChange to report
	// at run time that nothing was needed after all (a command guard).
	Apply string
	// Upload, if set, is written to the host over SFTP before the Apply
	// snippets run: content too large to travel inside a script.
	Upload *Upload
	Err    error // the facts show the wanted state cannot be reached
}

// Upload is content the engine writes to a host file, atomically and with
// the given mode, for an Apply snippet to move into place.
type Upload struct {
	Path string
	Data []byte
	Mode uint32
}

// Fact is host state that many tasks read and that is far cheaper to gather
// for all of them at once: one stat and one hash process for every path a
// host's tasks name, rather than two processes per task. The engine runs
// each fact's script once per host, in the same exchange as the probes.
type Fact interface {
	// Script returns a POSIX sh snippet that prints the fact for every key.
	// Like a probe, it must change nothing and must not exit.
	Script(keys []string) string
	// Parse reads the snippet's output into one value per key.
	Parse(out []byte, keys []string) (map[string]any, error)
}

// FactKey names one fact of one subject, such as the state of one path.
type FactKey struct {
	Fact string // the registered fact name, e.g. "path"
	Key  string // the subject, e.g. "/etc/motd"
}

// FactReader is implemented by tasks that read shared facts. Check finds
// their values in CheckRequest.Facts.
type FactReader interface {
	Facts() []FactKey
}

// Validator is implemented by tasks and calls that check their arguments, or
// prepare derived data, before any host is touched.
type Validator interface {
	Validate(env *Env) error
}

// Pather is implemented by tasks that change paths on the host, so that
// Watcher tasks can react to them and the engine re-checks later tasks that
// read those paths. A path ending in "/" stands for the path and everything
// under it (a task that removes or replaces a tree). A task that changes
// the host but is not a Pather (a command) may change anything.
type Pather interface {
	Paths() []string
}

// Watcher is implemented by tasks that restart or reload something when a
// watched path changed earlier in the same run (service's watch=).
type Watcher interface {
	Watches() []string
}

// Secret is implemented by tasks whose content must never reach output.
type Secret interface {
	IsSecret() bool
}

// Describer is implemented by tasks to name themselves in output, for
// example `file /etc/motd`.
type Describer interface {
	Describe() string
}

// Call is a controller-side module: it acts from the controller when the
// plan calls it, in main or in a step. The result is converted to Starlark:
// nil, bool, int, string, []string, []*inventory.Host, map[string]any.
type Call interface {
	Call(ctx context.Context, env *Env) (any, error)
}

// Env is what a module may see of the run on the controller.
type Env struct {
	Host  *inventory.Host                  // the host a role is evaluated for; nil in main
	Files fs.FS                            // the plan's folder, read-only; reads cannot leave it
	Check bool                             // --check: controller-side calls must change nothing
	Logf  func(format string, args ...any) // progress worth showing the user
	Hosts HostRecorder                     // records machines created at run time
	// CheckTry reports each try of a controller-side check as it happens
	// (nil drops them); the engine streams them as "check" events.
	CheckTry func(CheckTry)
}

// CheckTry is one try of a controller-side check against one target.
type CheckTry struct {
	Check  string // the module: "check.dns"
	Target string // what was tried: a server address, a URL
	Try    int    // 1 for the first try
	Status string // ok | failed | skipped (under --check, for a host not created yet)
	Msg    string // what came back, and on failure what was expected
}

// HostRecorder lets controller-side modules tell the engine about machines
// they create, rename or delete, and the host keys pinned for them.
type HostRecorder interface {
	// AddHost adds or replaces a host; a non-empty knownHostsLine pins its key.
	AddHost(h *inventory.Host, knownHostsLine string) error
	// RemoveHost forgets a host that no longer exists.
	RemoveHost(name string)
}

var (
	mu       sync.RWMutex
	registry = map[string]Info{}
	facts    = map[string]Fact{}
	validID  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$`)
)

// Register adds a module. A duplicate or malformed ID, or a New that does not
// return a Task or Call, is a programming error and panics at start-up.
func Register(info Info) {
	if !validID.MatchString(info.ID) {
		panic(fmt.Sprintf("modules: malformed module ID %q", info.ID))
	}
	if info.New == nil {
		panic(fmt.Sprintf("modules: %s has no New", info.ID))
	}
	switch v := info.New(); v.(type) {
	case Task, Call:
		if _, err := Params(v); err != nil {
			panic(fmt.Sprintf("modules: %s: %v", info.ID, err))
		}
	default:
		panic(fmt.Sprintf("modules: %s: %T is neither a Task nor a Call", info.ID, v))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[info.ID]; dup {
		panic(fmt.Sprintf("modules: duplicate module ID %q", info.ID))
	}
	registry[info.ID] = info
}

// RegisterFact adds a shared fact. A duplicate name panics at start-up.
func RegisterFact(name string, f Fact) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := facts[name]; dup || name == "" {
		panic(fmt.Sprintf("modules: duplicate or empty fact name %q", name))
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

// Lookup returns the module with the given ID.
func Lookup(id string) (Info, bool) {
	mu.RLock()
	defer mu.RUnlock()
	info, ok := registry[id]
	return info, ok
}

// All returns every registered module, sorted by ID.
func All() []Info {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Info, 0, len(registry))
	for _, info := range registry {
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// IsTask reports whether the module records host tasks (rather than acting
// from the controller).
func (i Info) IsTask() bool {
	_, ok := i.New().(Task)
	return ok
}
