package conn

import "fmt"

// UnreachableError reports that a host could not be reached or logged in to:
// the network dial, the protocol handshake, host key verification or
// authentication failed. The engine counts such a host as unreachable rather
// than failed. Match it with errors.As.
type UnreachableError struct {
	Host    string // inventory name
	Address string // what was dialled, such as "10.0.0.5:22"
	Err     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%s unreachable (%s): %v", e.Host, e.Address, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }
