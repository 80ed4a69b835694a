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
	"reflect"
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
	// Endpoints are the APIs controller-side modules call, by provider
	// ("linode", "digitalocean"), from engine.Options.Endpoints. Modules
	// never read credentials from anywhere else.
	Endpoints map[string]Endpoint
}

// Endpoint is where a controller-side module reaches its provider's API,
// and with which token. cmd/orch fills it from LINODE_TOKEN and
// LINODE_URL, DIGITALOCEAN_TOKEN and DIGITALOCEAN_URL, or the lab's cloud.
type Endpoint struct {
	URL   string // the API's base URL; "" means the provider's public API
	Token string // the API token; it never appears in output or errors
}

// Endpoint returns the endpoint of a provider; the zero Endpoint when the
// run has none (a module then fails asking for a token).
func (e *Env) Endpoint(provider string) Endpoint {
	if e == nil {
		return Endpoint{}
	}
	return e.Endpoints[provider]
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
	byType   = map[reflect.Type]string{} // argument struct type -> module ID
	facts    = map[string]Fact{}
	validID  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$`)
)

// Register adds a module. A duplicate or malformed ID, a New that does not
// return a Task or Call, or an argument struct another module uses, is a
// programming error and panics. Modules register in init(); one registered
// later is seen by the plans loaded after it.
func Register(info Info) {
	if !validID.MatchString(info.ID) {
		panic(fmt.Sprintf("modules: malformed module ID %q", info.ID))
	}
	if info.New == nil {
		panic(fmt.Sprintf("modules: %s has no New", info.ID))
	}
	v := info.New()
	switch v.(type) {
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
	t := reflect.TypeOf(v)
	if other, dup := byType[t]; dup {
		panic(fmt.Sprintf("modules: %s: %s is already the argument struct of %s", info.ID, t, other))
	}
	registry[info.ID] = info
	byType[t] = info.ID
}

// IDOf returns the ID of the module whose argument struct args is (a
// pointer, as Info.New returns): "file" for &file.File{}. ok is false when
// no registered module uses its type.
func IDOf(args any) (id string, ok bool) {
	mu.RLock()
	defer mu.RUnlock()
	id, ok = byType[reflect.TypeOf(args)]
	return id, ok
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
