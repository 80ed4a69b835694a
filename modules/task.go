package modules

// Task is a host module call with its arguments filled in. Tasks are
// synchronous and know nothing of connections or concurrency: the engine
// batches the probes of many tasks into one remote script and their applies
// into another.
type Task interface {
	// Probe returns a POSIX sh snippet whose output Check reads. It must
	// change nothing on the host, and must not exit: probes of many tasks
	// run in one shell. An empty probe means Check needs no probe output
	// (it may still read shared facts).
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
}

// CheckResponse is what Check decides. When Changed is false, Reason says
// why nothing needs doing ("/etc/motd is up to date"); otherwise it says
// what will change.
type CheckResponse struct {
	Changed bool
	Reason  string
	Diff    string // unified diff or summary for --diff; secrets are masked
	// Apply is a POSIX sh snippet that makes the change. It runs in a
	// subshell under `set -e`.
	Apply string
	// Unless are conditions tested on the host just before Apply would run;
	// the first that holds skips Apply and reports its reason as "ok". They
	// re-check at run time what an earlier task of the same apply may have
	// settled (a command's creates= guard).
	Unless []Guard
	// Upload, if set, is written to the host over SFTP before the Apply
	// snippets run: content too large to travel inside a script.
	Upload *Upload
	// Notify are handlers to run once, after the host's other tasks, when
	// this change is applied (nginx.upstream queues an nginx reload).
	Notify []Handler
	// OnWatch is the handler a Watcher runs when a key it watches was
	// changed by an earlier task of the same apply (service's restart).
	OnWatch *Handler
	Err     error // the facts show the wanted state cannot be reached
}

// Guard is a condition under which a change is not needed after all.
type Guard struct {
	Test   string // POSIX sh condition, such as `[ -e /usr/local/bin/app ]`
	Reason string // reported when the condition holds
}

// Handler is work a host does once per apply, after its other tasks, no
// matter how many changes asked for it: a service restart or reload. If
// the host fails after the change that queued it, the engine journals the
// handler and runs it on that host's next run, so a restart is never lost.
type Handler struct {
	// ID de-duplicates handlers: "service:nginx". When handlers with the
	// same ID are queued, the one with the higher Level runs (a restart
	// covers a reload).
	ID     string
	Level  int
	Action string // for output: "reload nginx"
	Script string // POSIX sh, run in a subshell under `set -e`
}

// Upload is content the engine writes to a host file, atomically and with
// the given mode, for an Apply snippet to move into place. The snippet
// finds the uploaded file at "$ORCH_UPLOAD", which is Path unless the task
// runs with become, when the engine uploads to a private temporary file
// of the login user instead (and the snippet must copy it into place).
type Upload struct {
	Path string
	Data []byte
	Mode uint32
}

// Effector is implemented by tasks that declare the keys of host state
// their changes may touch: "path:/etc/motd", "path:/etc/nginx/" (a tree),
// "zfs:tank/www", "service:nginx", "pkg:nginx" or "pkg:*". A later task of
// the same host whose decision reads an overlapping key is re-checked on
// the host before it is applied, and watchers of such keys fire.
//
// A task whose effects include Anything, or that is not an Effector, is
// opaque: it may change any state, so every later task that reads host
// state is re-checked after it. Only command is opaque by design (until its
// effects= are declared).
type Effector interface {
	Effects() []string
}

// Anything is the effect of a task that may change any state.
const Anything = "*"

// Reader is implemented by tasks whose decision reads host state beyond
// the shared facts they ask for (those are read implicitly, as the key
// "FACT:KEY", e.g. "path:/etc/motd").
type Reader interface {
	Reads() []string
}

// Watcher is implemented by tasks that react when a watched key was changed
// by an earlier task of the same apply (service's watch=): their OnWatch
// handler then runs once, after the host's other tasks.
type Watcher interface {
	Watches() []string
}

// Rechecker is implemented by tasks that know a cheaper or more exact way
// than re-running their probe to test, on the host, that what their check
// saw still holds: a POSIX sh condition that is true when it does.
type Rechecker interface {
	Recheck(req CheckRequest) string
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

// Validator is implemented by tasks and calls that check their arguments, or
// prepare derived data, before any host is touched.
type Validator interface {
	Validate(env *Env) error
}
