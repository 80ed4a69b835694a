package sshconn

// JumpPool reports how many jump connections are shared and by how many
// Conns in total.
func JumpPool() (conns, refs int) {
	jumpMu.Lock()
	defer jumpMu.Unlock()
	for _, e := range jumps {
		conns++
		refs += e.refs
	}
	return conns, refs
}
