package proctest

import (
	"bytes"
	"sync"
)

// Output collects the output of a process a test started (its Stdout and
// Stderr) while the test may read it.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p, as the process writes it.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String is everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
