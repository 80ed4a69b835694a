package sshconn

// Stats reports how many jump connections the pool shares and by how many
// Conns in total.
func (p *JumpPool) Stats() (conns, refs int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.jumps {
		conns++
		refs += e.refs
	}
	return conns, refs
}
