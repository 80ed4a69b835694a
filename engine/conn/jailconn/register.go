package jailconn

import (
	"context"
	"fmt"

	"github.com/orch-dev/orch/engine/conn"
)

// The jail connection: inventory vars jail_host (the parent host, reached
// by its own connection) and jail_name (the jail; the host's name when
// unset).
func init() {
	conn.Register("jail", func(ctx context.Context, req conn.DialRequest) (conn.Conn, error) {
		h := req.Host
		parent, _ := h.Vars["jail_host"].(string)
		if parent == "" {
			return nil, fmt.Errorf("%s: the jail connection needs jail_host, the inventory host the jail runs on", h.Name)
		}
		if parent == h.Name {
			return nil, fmt.Errorf("%s: jail_host names the jail host itself", h.Name)
		}
		name, _ := h.Vars["jail_name"].(string)
		if name == "" {
			name = h.Name
		}
		if req.Parent == nil {
			return nil, fmt.Errorf("%s: this run cannot reach other hosts' connections (DialRequest.Parent is nil)", h.Name)
		}
		pc, err := req.Parent(ctx, parent)
		if err != nil {
			return nil, &conn.UnreachableError{Host: h.Name, Address: "jail " + name + " on " + parent, Err: err}
		}
		return New(pc, Options{Host: h.Name, Parent: parent, Jail: name})
	})
}
