package engine

// Status is the outcome of a task, a host, a step or a handler, as reports
// and events carry it. It marshals as its string.
type Status string

// Task and host outcomes.
const (
	OK          Status = "ok"          // nothing needed changing, or it was changed as wanted (hosts)
	Changed     Status = "changed"     // a change was made (or, in check mode, would be)
	Failed      Status = "failed"      // the task or host failed
	Skipped     Status = "skipped"     // not run: an earlier task of the host failed
	Unreachable Status = "unreachable" // the host could not be reached
)

// Step outcomes.
const (
	StepStart      Status = "start"
	StepDone       Status = "done"
	StepSkipped    Status = "skipped" // completed in the run being resumed
	StepFailed     Status = "failed"
	StepUndone     Status = "undone"
	StepUndoFailed Status = "undo_failed"
)

// Bad reports whether a host outcome counts against max_fail.
func (s Status) Bad() bool { return s == Failed || s == Unreachable }
