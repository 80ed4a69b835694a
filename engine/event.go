package engine

import (
	"encoding/json"
	"sort"
)

// Event is one thing that happened in a run, streamed to Options.OnEvent and
// journaled. Kind-specific fields are empty when they do not apply.
//
// Kinds: run_start, apply_start, host_start, task, host_done, step_start,
// step_end, check, guard (a guard's failed probe), guard_done, print,
// warning, host_key (the injected host key of a new machine was replaced),
// interrupted (the run's context ended: Ctrl-C, a deadline) and, last,
// summary.
type Event struct {
	Event  string `json:"event"`
	RunID  string `json:"run_id,omitempty"`
	Plan   string `json:"plan,omitempty"`
	Check  bool   `json:"check,omitempty"`
	Role   string `json:"role,omitempty"`
	Count  int    `json:"count,omitempty"` // apply_start: hosts in the apply
	Host   string `json:"host,omitempty"`
	Task   string `json:"task,omitempty"`   // task: `file /etc/motd`
	Module string `json:"module,omitempty"` // task: module ID; check: the check
	Pos    string `json:"pos,omitempty"`    // task: plan position of the call
	Step   string `json:"step,omitempty"`
	// Status is ok, changed, failed, skipped or unreachable for tasks and
	// hosts; done, skipped, failed, undone or undo_failed for step_end; ok,
	// failed or skipped for checks; ok or failed for guards.
	Status Status `json:"status,omitempty"`
	Msg    string `json:"msg,omitempty"`    // reason, error or printed text
	Diff   string `json:"diff,omitempty"`   // with --diff
	Output string `json:"output,omitempty"` // task output, shown when a task fails

	// step_start, step_end
	Irreversible bool  `json:"irreversible,omitempty"`
	DurationMS   int64 `json:"duration_ms,omitempty"`

	// check: one try of a controller-side check
	Target string `json:"target,omitempty"`
	Try    int    `json:"try,omitempty"`

	// guard, guard_done
	Guard        string `json:"guard,omitempty"`
	Probes       int    `json:"probes,omitempty"`
	FailedProbes int    `json:"failed_probes,omitempty"`

	// host_done
	Tasks        int   `json:"tasks,omitempty"`
	TasksChanged int   `json:"tasks_changed,omitempty"`
	Exchanges    int64 `json:"exchanges,omitempty"`
	ConnectMS    int64 `json:"connect_ms,omitempty"`
	CheckMS      int64 `json:"check_ms,omitempty"`
	ApplyMS      int64 `json:"apply_ms,omitempty"`

	Summary *Summary `json:"-"`
}

// Summary counts a whole run. Hosts are counted once each: ok hosts finished
// without failure, changed hosts are the ok hosts with at least one changed
// task. Exchanges counts remote round trips after connect.
type Summary struct {
	Hosts        int            `json:"hosts"`
	OK           int            `json:"ok"`
	Changed      int            `json:"changed"`
	Failed       int            `json:"failed"`
	Unreachable  int            `json:"unreachable"`
	TasksChanged int            `json:"tasks_changed"`
	Exchanges    int64          `json:"exchanges"`
	DurationMS   int64          `json:"duration_ms"`
	Guards       []GuardSummary `json:"guards,omitempty"`
}

// GuardSummary is what a guard of the plan saw: how many probes it sent
// and how many failed.
type GuardSummary struct {
	Name    string `json:"name"`
	Probes  int    `json:"probes"`
	Failed  int    `json:"failed"`
	MaxFail int    `json:"max_fail"`
}

// MarshalJSON writes the summary event with every count, even zero ones, and
// other events with only the fields that apply.
func (e Event) MarshalJSON() ([]byte, error) {
	if e.Summary != nil {
		return json.Marshal(struct {
			Event string `json:"event"`
			*Summary
		}{e.Event, e.Summary})
	}
	type plain Event
	return json.Marshal(plain(e))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
