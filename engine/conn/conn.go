// Package conn defines how the engine reaches a host: one long-lived
// connection per host that runs POSIX sh scripts and transfers files.
package conn

import (
	"context"
	"io"
)

// Result is the outcome of one remote script.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int // exit status of the script; -1 if it died from a signal
}

// Conn is an open connection to one host. It is safe for concurrent use;
// implementations bound concurrency themselves (for example by sshd's
// MaxSessions).
//
// Exec runs script with /bin/sh on the host, feeding it stdin. When stdin
// is nil, the script itself travels on standard input, in GroupScript's
// group, and standard input then stays open until the script exits; when
// ctx is cancelled, the session ends and stdin closes, which GroupScript's
// watchdog takes as the signal to end the script's processes on the host.
// A non-zero exit status is not an error: it is reported in Result.ExitCode.
// Errors mean the script could not be run or its result was lost, and they
// name the host.
//
// Every Exec counts as one exchange; so does every file-transfer request that
// waits for a reply. Exchanges returns the running total since connect.
type Conn interface {
	Exec(ctx context.Context, script string, stdin io.Reader) (Result, error)
	// WriteFile atomically replaces path with data (temp file in the same
	// directory, then rename), setting mode.
	WriteFile(ctx context.Context, path string, data []byte, mode uint32) error
	Exchanges() int64
	Close() error
}
