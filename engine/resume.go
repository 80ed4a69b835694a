package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// A resumed run skips the steps that completed, returning their journaled
// results, so it is only right while what those steps did still matches
// the plan and the hosts. The journal keeps the digest of every plan file
// the run read (its sources at the start; the src= and template= files
// its steps read, noted as each step completes) and of the resolved
// inventory, host by host. Hosts the run itself added or removed (cloud
// calls) are noted too, and are expected to differ.

// ResumeChangedError refuses a resume whose plan or inventory changed
// since the run it resumes.
type ResumeChangedError struct {
	RunID   string
	Changes []string // what changed, one phrase each
}

func (e *ResumeChangedError) Error() string {
	return fmt.Sprintf("cannot resume run %s: since it started, %s", e.RunID, strings.Join(e.Changes, "; "))
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// digestFiles digests files of the plan's folder by name; a file gone
// since (a forced resume) is left out.
func (r *run) digestFiles(names []string) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range names {
		if _, done := out[name]; done {
			continue
		}
		b, err := fs.ReadFile(r.plan.Files, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[name] = digest(b)
	}
	return out, nil
}

// noteFiles journals the digests of the plan's files read since the last
// call.
func (r *run) noteFiles() error {
	for _, name := range r.plan.FilesRead() {
		r.mu.Lock()
		done := r.noted[name]
		r.mu.Unlock()
		if done {
			continue
		}
		b, err := fs.ReadFile(r.plan.Files, name)
		if err != nil {
			return err
		}
		r.mu.Lock()
		err = r.j.Note(Note{File: name, Digest: digest(b)})
		if err == nil {
			r.noted[name] = true
		}
		r.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// noteHost journals that the run added or removed a host.
func (r *run) noteHost(name, change string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hostNotes[name] == change {
		return nil
	}
	if err := r.j.Note(Note{Host: name, Change: change}); err != nil {
		return fmt.Errorf("journaling host %s: %w", name, err)
	}
	r.hostNotes[name] = change
	return nil
}

// digestInventory digests a resolved inventory: each host as the engine
// would reach and configure it, and the vars of "all".
func digestInventory(inv *inventory.Inventory) InventoryDigest {
	d := InventoryDigest{Hosts: map[string]string{}}
	var all strings.Builder
	for _, h := range inv.Hosts() {
		d.Hosts[h.Name] = digestHost(h)
		fmt.Fprintf(&all, "%s %s\n", h.Name, d.Hosts[h.Name])
	}
	vars, _ := json.Marshal(inv.GroupVars("all"))
	d.Vars = digest(vars)
	all.WriteString(d.Vars)
	d.Digest = digest([]byte(all.String()))
	return d
}

func digestHost(h *inventory.Host) string {
	b, err := json.Marshal(h) // map keys sorted: the same host, the same bytes
	if err != nil {
		b = fmt.Appendf(nil, "%#v", *h)
	}
	return digest(b)
}

// resumeChanges lists what changed since the run h records: plan files
// changed or gone, hosts new, gone or changed (except those the run added
// or removed itself), and the inventory's other vars.
func resumeChanges(h *History, p *plan.Plan, inv *inventory.Inventory) []string {
	var out []string
	for _, name := range sortedKeys(h.Files) {
		b, err := fs.ReadFile(p.Files, name)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("the plan's file %s is gone (%v)", name, err))
		case digest(b) != h.Files[name]:
			out = append(out, fmt.Sprintf("the plan's file %s changed", name))
		}
	}
	was := h.Record.Inventory
	if was.Digest == "" {
		return out // journaled by an orch that kept no inventory digest
	}
	now := digestInventory(inv)
	if now.Digest == was.Digest {
		return out
	}
	for _, name := range sortedKeys(union(was.Hosts, now.Hosts)) {
		if _, ours := h.Hosts[name]; ours {
			continue
		}
		before, hadIt := was.Hosts[name]
		after, hasIt := now.Hosts[name]
		switch {
		case !hadIt:
			out = append(out, fmt.Sprintf("host %s is new in the inventory", name))
		case !hasIt:
			out = append(out, fmt.Sprintf("host %s is gone from the inventory", name))
		case before != after:
			out = append(out, fmt.Sprintf("host %s changed in the inventory (its address, port, user, key, connection, become, groups or vars)", name))
		}
	}
	if was.Vars != now.Vars {
		out = append(out, "the inventory's vars of all changed")
	}
	return out
}

func union(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
