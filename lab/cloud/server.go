// Package cloud is the lab's local cloud: an HTTP server that speaks the
// parts of the Linode API v4 and the DigitalOcean API v2 that orch's linode
// and digitalocean modules call, with the real APIs' JSON shapes, paging and
// error bodies. Instances and droplets it creates are started through a
// Machines implementation (docker containers in the lab), so a plan runs
// unchanged against the lab or against the real clouds: only the base URL and
// the token differ.
//
// Linode API v4 (token Tokens.Linode):
//
//	GET, POST          /v4/linode/instances            paging (page, page_size) and X-Filter
//	GET, PUT, DELETE   /v4/linode/instances/{id}       PUT changes label and tags
//
// DigitalOcean API v2 (token Tokens.DigitalOcean):
//
//	GET, POST, DELETE  /v2/droplets                    list: tag_name, name, page, per_page; delete: tag_name
//	GET, DELETE        /v2/droplets/{id}
//	POST               /v2/droplets/{id}/actions       type "rename"
//	GET                /v2/droplets/{id}/actions/{aid}
//	GET                /v2/actions/{aid}
//	GET, POST          /v2/reserved_ips                create with region or droplet_id
//	GET, DELETE        /v2/reserved_ips/{ip}
//	POST               /v2/reserved_ips/{ip}/actions   type "assign" (droplet_id) or "unassign"
//	GET                /v2/reserved_ips/{ip}/actions/{aid}
//
// Creating answers at once with a provisioning instance (Linode status
// "provisioning", DigitalOcean "new"); the machine starts in the background
// and the status turns "running" / "active" once Machines.Start returns.
// Droplet and reserved IP actions also run in the background and report
// "in-progress" until done; a second action meanwhile gets the real API's
// 422 "pending event" answer, and renaming a Linode that is provisioning or
// busy gets 400 "Linode busy.".
//
// The lab's reserved IPs are Machines.ReservedIPs(). They all exist from the
// start, unassigned, as if the account had reserved them earlier: a plan
// written against DigitalOcean assigns an address it already owns. Deleting
// one returns it to the pool, and POST /v2/reserved_ips reserves a pooled
// address again (422 when none is left).
package cloud

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Tokens are the bearer tokens each API accepts. An empty token disables
// that API: every request to it gets 401.
type Tokens struct {
	Linode       string
	DigitalOcean string
}

// Server is the lab cloud's HTTP handler, safe for concurrent use. Its state
// lives in memory (NewServer) or in a file that survives the process (Open).
type Server struct {
	machines  Machines
	tokens    Tokens
	now       func() time.Time
	statePath string // see Open; "" keeps the state in memory only
	logf      func(format string, args ...any)

	// ctx ends background work (machine starts, actions) when the server closes.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	nextLinode int
	linodes    map[int]*linodeInstance
	nextDO     int // droplet and action IDs share one sequence, as on DigitalOcean
	droplets   map[int]*droplet
	actions    map[int]*doAction
	reserved   map[string]*reservedIP // reserved IPs that exist; pooled ones absent
	pool       []string               // every lab reserved address, in Machines order
	removals   map[string]bool        // machines of deleted droplets not yet removed
}

var _ http.Handler = (*Server)(nil)

// NewServer returns a lab cloud that starts machines through m and accepts
// the given tokens. Call Close when done with it.
func NewServer(m Machines, tokens Tokens) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		machines:   m,
		tokens:     tokens,
		now:        func() time.Time { return time.Now().UTC() },
		logf:       func(string, ...any) {},
		ctx:        ctx,
		cancel:     cancel,
		nextLinode: 1000,
		linodes:    map[int]*linodeInstance{},
		nextDO:     3000,
		droplets:   map[int]*droplet{},
		actions:    map[int]*doAction{},
		reserved:   map[string]*reservedIP{},
		removals:   map[string]bool{},
	}
	for _, ip := range m.ReservedIPs() {
		s.pool = append(s.pool, ip)
		s.reserved[ip] = &reservedIP{ip: ip, region: labRegion}
	}
	return s
}

// Close cancels machine starts and actions still running in the background
// and waits for them to finish. Machines already started are left running:
// they belong to the lab, which removes them on its own teardown.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// goBackground runs fn on a goroutine that Close waits for. It reports false,
// running nothing, once the server is closed.
func (s *Server) goBackground(fn func(ctx context.Context)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
	return true
}

// ServeHTTP routes /v4/ to the Linode API and /v2/ to the DigitalOcean API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v4/"):
		if !authorized(r, s.tokens.Linode) {
			linodeError(w, http.StatusUnauthorized, "Invalid Token", "")
			return
		}
		s.serveLinode(w, r, strings.TrimPrefix(r.URL.Path, "/v4/"))
	case strings.HasPrefix(r.URL.Path, "/v2/"):
		if !authorized(r, s.tokens.DigitalOcean) {
			doError(w, http.StatusUnauthorized, "Unauthorized", "Unable to authenticate you")
			return
		}
		s.serveDO(w, r, strings.TrimPrefix(r.URL.Path, "/v2/"))
	default:
		http.NotFound(w, r)
	}
}

// authorized checks the bearer token in constant time.
func authorized(r *http.Request, token string) bool {
	if token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// writeJSON writes v with the exact content type given; linodego rejects an
// error body whose Content-Type differs from "application/json".
func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// decodeBody reads a JSON request body of at most 1 MiB.
func decodeBody(r *http.Request, v any) error {
	return json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(v)
}

// pathParts splits "a/b/c" into its non-empty segments.
func pathParts(p string) []string {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return parts
}

// pageBounds returns the slice bounds of page (1-based) for n items.
func pageBounds(n, page, size int) (lo, hi, pages int) {
	pages = (n + size - 1) / size
	if pages == 0 {
		pages = 1
	}
	lo = min((page-1)*size, n)
	hi = min(lo+size, n)
	return lo, hi, pages
}

// labRegion is the region reported for reserved IPs that were never bound to
// a droplet in another region.
const labRegion = "lab"
