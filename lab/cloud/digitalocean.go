package cloud

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// droplet is one DigitalOcean droplet of the lab account.
type droplet struct {
	id      int
	name    string
	region  string
	size    string
	image   doImage
	tags    []string
	status  string // new, active, off
	created time.Time

	machineID string
	address   string
	pending   *doAction          // the action in progress, if any
	spec      *MachineSpec       // what to start, while new
	renameTo  string             // the name a pending rename gives it
	cancel    context.CancelFunc // cancels the machine start while new
	deleted   bool
}

// doImage is the image a droplet was created from: a numeric snapshot ID or
// a public image slug.
type doImage struct {
	id   int
	slug string
}

// doAction is a DigitalOcean action: an asynchronous event on a droplet or a
// reserved IP.
type doAction struct {
	id           int
	status       string // in-progress, completed, errored
	typ          string
	started      time.Time
	completed    time.Time
	resourceID   int
	resourceType string // droplet, reserved_ip
	region       string
}

// reservedIP is a reserved IP of the lab account.
type reservedIP struct {
	ip        string
	region    string
	dropletID int // 0 when unassigned
	pending   *doAction
	assignTo  int // the droplet the pending action assigns it to; 0 unassigns
}

const doContentType = "application/json; charset=utf-8"

// doTime is the API's timestamp format.
const doTime = "2006-01-02T15:04:05Z"

const pendingDroplet = "Droplet already has a pending event."

func doError(w http.ResponseWriter, status int, id, message string) {
	writeJSON(w, status, doContentType, struct {
		ID      string `json:"id"`
		Message string `json:"message"`
	}{id, message})
}

func doNotFound(w http.ResponseWriter) {
	doError(w, http.StatusNotFound, "not_found", "The resource you were accessing could not be found.")
}

func doUnprocessable(w http.ResponseWriter, message string) {
	doError(w, http.StatusUnprocessableEntity, "unprocessable_entity", message)
}

// JSON shapes of the DigitalOcean API v2.

type dropletJSON struct {
	ID               int        `json:"id"`
	Name             string     `json:"name"`
	Memory           int        `json:"memory"`
	Vcpus            int        `json:"vcpus"`
	Disk             int        `json:"disk"`
	Locked           bool       `json:"locked"`
	Status           string     `json:"status"`
	Kernel           any        `json:"kernel"`
	CreatedAt        string     `json:"created_at"`
	Features         []string   `json:"features"`
	BackupIDs        []int      `json:"backup_ids"`
	NextBackupWindow any        `json:"next_backup_window"`
	SnapshotIDs      []int      `json:"snapshot_ids"`
	Image            imageJSON  `json:"image"`
	VolumeIDs        []string   `json:"volume_ids"`
	Size             sizeJSON   `json:"size"`
	SizeSlug         string     `json:"size_slug"`
	Networks         networksDO `json:"networks"`
	Region           regionJSON `json:"region"`
	Tags             []string   `json:"tags"`
	VPCUUID          string     `json:"vpc_uuid"`
}

type imageJSON struct {
	ID            int      `json:"id"`
	Name          string   `json:"name"`
	Distribution  string   `json:"distribution"`
	Slug          *string  `json:"slug"`
	Public        bool     `json:"public"`
	Regions       []string `json:"regions"`
	CreatedAt     string   `json:"created_at"`
	MinDiskSize   int      `json:"min_disk_size"`
	Type          string   `json:"type"`
	SizeGigabytes float64  `json:"size_gigabytes"`
	Description   string   `json:"description"`
	Tags          []string `json:"tags"`
	Status        string   `json:"status"`
	ErrorMessage  string   `json:"error_message"`
}

type sizeJSON struct {
	Slug         string   `json:"slug"`
	Memory       int      `json:"memory"`
	Vcpus        int      `json:"vcpus"`
	Disk         int      `json:"disk"`
	Transfer     float64  `json:"transfer"`
	PriceMonthly float64  `json:"price_monthly"`
	PriceHourly  float64  `json:"price_hourly"`
	Regions      []string `json:"regions"`
	Available    bool     `json:"available"`
	Description  string   `json:"description"`
}

type networksDO struct {
	V4 []networkV4 `json:"v4"`
	V6 []any       `json:"v6"`
}

type networkV4 struct {
	IPAddress string `json:"ip_address"`
	Netmask   string `json:"netmask"`
	Gateway   string `json:"gateway"`
	Type      string `json:"type"`
}

type regionJSON struct {
	Name      string   `json:"name"`
	Slug      string   `json:"slug"`
	Features  []string `json:"features"`
	Available bool     `json:"available"`
	Sizes     []string `json:"sizes"`
}

type actionJSON struct {
	ID           int         `json:"id"`
	Status       string      `json:"status"`
	Type         string      `json:"type"`
	StartedAt    string      `json:"started_at"`
	CompletedAt  *string     `json:"completed_at"`
	ResourceID   int         `json:"resource_id"`
	ResourceType string      `json:"resource_type"`
	Region       *regionJSON `json:"region"`
	RegionSlug   string      `json:"region_slug"`
}

type reservedIPJSON struct {
	IP        string       `json:"ip"`
	Droplet   *dropletJSON `json:"droplet"`
	Region    regionJSON   `json:"region"`
	Locked    bool         `json:"locked"`
	ProjectID string       `json:"project_id"`
}

type linkAction struct {
	ID   int    `json:"id"`
	Rel  string `json:"rel"`
	HREF string `json:"href"`
}

const labProjectID = "00000000-0000-4000-8000-00000000000a"

func regionOf(slug string) regionJSON {
	return regionJSON{Name: slug, Slug: slug, Features: []string{"metadata"}, Available: true, Sizes: []string{}}
}

func (d *droplet) json() dropletJSON {
	img := imageJSON{
		ID: d.image.id, Regions: []string{d.region}, CreatedAt: d.created.Format(doTime),
		MinDiskSize: 25, SizeGigabytes: 2.5, Tags: []string{}, Status: "available",
	}
	if d.image.slug != "" {
		slug := d.image.slug
		img.Slug, img.Name, img.Type, img.Public, img.Distribution = &slug, slug, "base", true, "Debian"
	} else {
		img.Name, img.Type, img.Distribution = fmt.Sprintf("snapshot-%d", d.image.id), "snapshot", "Unknown"
	}
	j := dropletJSON{
		ID: d.id, Name: d.name, Memory: 1024, Vcpus: 1, Disk: 25, Locked: false, Status: d.status,
		CreatedAt: d.created.Format(doTime), Features: []string{"droplet_agent"},
		BackupIDs: []int{}, SnapshotIDs: []int{}, Image: img, VolumeIDs: []string{},
		Size: sizeJSON{
			Slug: d.size, Memory: 1024, Vcpus: 1, Disk: 25, Transfer: 1, PriceMonthly: 6, PriceHourly: 0.00893,
			Regions: []string{d.region}, Available: true, Description: "Basic",
		},
		SizeSlug: d.size,
		Networks: networksDO{V4: []networkV4{}, V6: []any{}},
		Region:   regionOf(d.region),
		Tags:     slices.Clone(d.tags),
		VPCUUID:  "00000000-0000-4000-8000-000000000001",
	}
	if d.address != "" {
		j.Networks.V4 = []networkV4{{IPAddress: d.address, Netmask: "255.255.255.0", Gateway: gatewayOf(d.address), Type: "public"}}
	}
	if j.Tags == nil {
		j.Tags = []string{}
	}
	return j
}

// gatewayOf guesses the .1 of addr's /24, the usual gateway.
func gatewayOf(addr string) string {
	ip := net.ParseIP(addr).To4()
	if ip == nil {
		return ""
	}
	return net.IPv4(ip[0], ip[1], ip[2], 1).String()
}

func (a *doAction) json() actionJSON {
	j := actionJSON{
		ID: a.id, Status: a.status, Type: a.typ, StartedAt: a.started.Format(doTime),
		ResourceID: a.resourceID, ResourceType: a.resourceType, RegionSlug: a.region,
	}
	if a.region != "" {
		r := regionOf(a.region)
		j.Region = &r
	}
	if !a.completed.IsZero() {
		c := a.completed.Format(doTime)
		j.CompletedAt = &c
	}
	return j
}

// rIPJSON renders a reserved IP. s.mu is held.
func (s *Server) rIPJSON(rip *reservedIP) reservedIPJSON {
	j := reservedIPJSON{IP: rip.ip, Region: regionOf(rip.region), ProjectID: labProjectID}
	if d := s.droplets[rip.dropletID]; d != nil {
		dj := d.json()
		j.Droplet = &dj
	}
	return j
}

// ipResourceID is the integer form of an IPv4 address, which the API uses as
// a reserved IP's resource_id.
func ipResourceID(ip string) int {
	v4 := net.ParseIP(ip).To4()
	if v4 == nil {
		return 0
	}
	return int(binary.BigEndian.Uint32(v4))
}

// newActionLocked records an in-progress action. s.mu is held.
func (s *Server) newActionLocked(typ, resourceType string, resourceID int, region string) *doAction {
	a := &doAction{
		id: s.nextDO, status: "in-progress", typ: typ, started: s.now(),
		resourceID: resourceID, resourceType: resourceType, region: region,
	}
	s.nextDO++
	s.actions[a.id] = a
	return a
}

// finishLocked completes an action and saves the state. s.mu is held.
func (s *Server) finishLocked(a *doAction, err error) {
	a.status, a.completed = "completed", s.now()
	if err != nil {
		a.status = "errored"
	}
	s.saveLocked()
}

func (s *Server) serveDO(w http.ResponseWriter, r *http.Request, rest string) {
	parts := pathParts(rest)
	method := r.Method
	switch {
	case len(parts) == 1 && parts[0] == "droplets":
		switch method {
		case http.MethodGet:
			s.listDroplets(w, r)
		case http.MethodPost:
			s.createDroplets(w, r)
		case http.MethodDelete:
			s.deleteDropletsByTag(w, r)
		default:
			doMethodNotAllowed(w)
		}
	case len(parts) >= 2 && parts[0] == "droplets":
		id, err := strconv.Atoi(parts[1])
		if err != nil {
			doNotFound(w)
			return
		}
		switch {
		case len(parts) == 2 && method == http.MethodGet:
			s.mu.Lock()
			d := s.droplets[id]
			var j dropletJSON
			if d != nil {
				j = d.json()
			}
			s.mu.Unlock()
			if d == nil {
				doNotFound(w)
				return
			}
			writeJSON(w, http.StatusOK, doContentType, map[string]any{"droplet": j})
		case len(parts) == 2 && method == http.MethodDelete:
			s.deleteDroplet(w, r, id)
		case len(parts) == 3 && parts[2] == "actions" && method == http.MethodPost:
			s.dropletAction(w, r, id)
		case len(parts) == 4 && parts[2] == "actions" && method == http.MethodGet:
			s.getAction(w, parts[3], "droplet", id)
		case len(parts) <= 4:
			doMethodNotAllowed(w)
		default:
			doNotFound(w)
		}
	case len(parts) == 2 && parts[0] == "actions" && method == http.MethodGet:
		s.getAction(w, parts[1], "", 0)
	case len(parts) == 1 && parts[0] == "reserved_ips":
		switch method {
		case http.MethodGet:
			s.listReservedIPs(w, r)
		case http.MethodPost:
			s.createReservedIP(w, r)
		default:
			doMethodNotAllowed(w)
		}
	case len(parts) >= 2 && parts[0] == "reserved_ips":
		ip := parts[1]
		switch {
		case len(parts) == 2 && method == http.MethodGet:
			s.mu.Lock()
			rip := s.reserved[ip]
			var j reservedIPJSON
			if rip != nil {
				j = s.rIPJSON(rip)
			}
			s.mu.Unlock()
			if rip == nil {
				doNotFound(w)
				return
			}
			writeJSON(w, http.StatusOK, doContentType, map[string]any{"reserved_ip": j})
		case len(parts) == 2 && method == http.MethodDelete:
			s.deleteReservedIP(w, r, ip)
		case len(parts) == 3 && parts[2] == "actions" && method == http.MethodPost:
			s.reservedIPAction(w, r, ip)
		case len(parts) == 4 && parts[2] == "actions" && method == http.MethodGet:
			s.getAction(w, parts[3], "reserved_ip", ipResourceID(ip))
		case len(parts) <= 4:
			doMethodNotAllowed(w)
		default:
			doNotFound(w)
		}
	default:
		doNotFound(w)
	}
}

func doMethodNotAllowed(w http.ResponseWriter) {
	doError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method Not Allowed")
}

// dropletName is the hostname rule the API enforces on names.
var dropletName = regexp.MustCompile(`^[A-Za-z0-9.-]{1,255}$`)

const badDropletName = "Only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)"

func (s *Server) createDroplets(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name     string            `json:"name"`
		Names    []string          `json:"names"`
		Region   string            `json:"region"`
		Size     string            `json:"size"`
		Image    json.RawMessage   `json:"image"`
		SSHKeys  []json.RawMessage `json:"ssh_keys"`
		UserData string            `json:"user_data"`
		Tags     []string          `json:"tags"`
	}
	if err := decodeBody(r, &req); err != nil {
		doError(w, http.StatusBadRequest, "bad_request", "The request body is not valid JSON.")
		return
	}
	multi := len(req.Names) > 0
	names := req.Names
	if !multi {
		names = []string{req.Name}
	}
	image, imgErr := parseDOImage(req.Image)
	switch {
	case len(names) > 10:
		doUnprocessable(w, "You may only create up to 10 Droplets at a time.")
		return
	case req.Region == "":
		doUnprocessable(w, "You must specify a region.")
		return
	case req.Size == "":
		doUnprocessable(w, "You must specify a size.")
		return
	case imgErr != "":
		doUnprocessable(w, imgErr)
		return
	case len(req.SSHKeys) > 0:
		// The lab keeps no account SSH keys; cloud-init user data carries them.
		doUnprocessable(w, "The lab cloud has no account SSH keys; put keys in user_data (ssh_authorized_keys).")
		return
	case len(req.UserData) > 64<<10:
		doUnprocessable(w, "user_data must be 64 KiB or less.")
		return
	}
	for _, n := range names {
		if n == "" {
			doUnprocessable(w, "Name is required.")
			return
		}
		if !dropletName.MatchString(n) {
			doUnprocessable(w, badDropletName)
			return
		}
	}

	type started struct {
		d    *droplet
		a    *doAction
		ctx  context.Context
		spec MachineSpec
	}
	var created []started
	s.mu.Lock()
	now := s.now()
	for _, n := range names {
		ctx, cancel := context.WithCancel(s.ctx)
		d := &droplet{
			id: s.nextDO, name: n, region: req.Region, size: req.Size, image: image,
			tags: slices.Clone(req.Tags), status: "new", created: now, cancel: cancel,
		}
		s.nextDO++
		s.droplets[d.id] = d
		a := s.newActionLocked("create", "droplet", d.id, d.region)
		d.pending = a
		spec := MachineSpec{Name: n, Image: image.String(), Tags: slices.Clone(req.Tags), UserData: []byte(req.UserData),
			Key: fmt.Sprintf("digitalocean/%d", d.id)}
		d.spec = &spec
		created = append(created, started{d, a, ctx, spec})
	}
	s.saveLocked()
	var drops []dropletJSON
	var links []linkAction
	for _, c := range created {
		drops = append(drops, c.d.json())
		links = append(links, linkAction{ID: c.a.id, Rel: "create", HREF: actionURL(r, c.a.id)})
	}
	s.mu.Unlock()

	for i, c := range created {
		if !s.goBackground(func(context.Context) { s.provisionDroplet(c.ctx, c.d, c.a, c.spec) }) {
			s.mu.Lock()
			for _, c := range created[i:] {
				c.d.cancel()
				delete(s.droplets, c.d.id)
			}
			s.saveLocked()
			s.mu.Unlock()
			doError(w, http.StatusServiceUnavailable, "service_unavailable", "The lab cloud is shutting down.")
			return
		}
	}
	if multi {
		writeJSON(w, http.StatusAccepted, doContentType, map[string]any{"droplets": drops, "links": map[string]any{"actions": links}})
		return
	}
	writeJSON(w, http.StatusAccepted, doContentType, map[string]any{"droplet": drops[0], "links": map[string]any{"actions": links}})
}

// parseDOImage accepts a numeric snapshot ID (number or digit string) or a slug.
func parseDOImage(raw json.RawMessage) (doImage, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return doImage{}, "You must specify an image."
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil && n > 0 {
		return doImage{id: n}, ""
	}
	var slug string
	if err := json.Unmarshal(raw, &slug); err != nil || slug == "" {
		return doImage{}, "You specified an invalid image for Droplet creation."
	}
	if n, err := strconv.Atoi(slug); err == nil && n > 0 {
		return doImage{id: n}, ""
	}
	// Public images have stable IDs; derive one from the slug.
	return doImage{id: int(crc32.ChecksumIEEE([]byte(slug))%90000000) + 10000000, slug: slug}, ""
}

// String is the image as the request named it, for MachineSpec.Image.
func (i doImage) String() string {
	if i.slug != "" {
		return i.slug
	}
	return strconv.Itoa(i.id)
}

func actionURL(r *http.Request, id int) string {
	return baseURL(r) + "/v2/actions/" + strconv.Itoa(id)
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// provisionDroplet starts a droplet's machine and completes its create action.
func (s *Server) provisionDroplet(ctx context.Context, d *droplet, a *doAction, spec MachineSpec) {
	defer d.cancel()
	m, err := s.machines.Start(ctx, spec)
	if err != nil && s.ctx.Err() != nil {
		return // the server is closing: the next one to open its state starts it again
	}
	s.mu.Lock()
	deleted := d.deleted
	switch {
	case deleted:
	case err != nil:
		d.status = "off"
		s.logf("lab cloud: droplet %d (%s) did not start: %v", d.id, d.name, err)
	default:
		d.machineID, d.address, d.status = m.ID, m.Address, "active"
	}
	d.spec = nil
	if d.pending == a {
		d.pending = nil
	}
	s.finishLocked(a, err)
	s.mu.Unlock()
	if deleted && err == nil {
		s.removeMachine(ctx, m.ID)
	}
}

func (s *Server) listDroplets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, perPage, ok := doPaging(w, q)
	if !ok {
		return
	}
	tag, name := q.Get("tag_name"), q.Get("name")
	s.mu.Lock()
	var all []dropletJSON
	for _, d := range s.droplets {
		if tag != "" && !slices.Contains(d.tags, tag) {
			continue
		}
		if name != "" && !strings.EqualFold(d.name, name) {
			continue
		}
		all = append(all, d.json())
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b dropletJSON) int { return a.ID - b.ID })
	lo, hi, pages := pageBounds(len(all), page, perPage)
	writeJSON(w, http.StatusOK, doContentType, map[string]any{
		"droplets": append([]dropletJSON{}, all[lo:hi]...),
		"links":    doLinks(r, page, pages, perPage),
		"meta":     map[string]int{"total": len(all)},
	})
}

// doPaging reads page and per_page (default 20, at most 200).
func doPaging(w http.ResponseWriter, q url.Values) (page, perPage int, ok bool) {
	page, perPage = 1, 20
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			doError(w, http.StatusBadRequest, "bad_request", "page must be a positive integer")
			return 0, 0, false
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			doError(w, http.StatusBadRequest, "bad_request", "per_page must be a positive integer")
			return 0, 0, false
		}
		perPage = min(n, 200)
	}
	return page, perPage, true
}

// doLinks builds links.pages as the API does: absolute URLs, first/prev
// only after page 1, next/last only before the last page.
func doLinks(r *http.Request, page, pages, perPage int) map[string]any {
	if pages <= 1 {
		return map[string]any{}
	}
	at := func(p int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		return baseURL(r) + r.URL.Path + "?" + q.Encode()
	}
	p := map[string]string{}
	if page > 1 {
		p["first"], p["prev"] = at(1), at(min(page-1, pages))
	}
	if page < pages {
		p["next"], p["last"] = at(page+1), at(pages)
	}
	return map[string]any{"pages": p}
}

func (s *Server) deleteDroplet(w http.ResponseWriter, r *http.Request, id int) {
	if err := s.removeDroplets(r.Context(), func(d *droplet) bool { return d.id == id }); err != nil {
		if err == errNoDroplet {
			doNotFound(w)
			return
		}
		doError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteDropletsByTag(w http.ResponseWriter, r *http.Request) {
	tag := r.URL.Query().Get("tag_name")
	if tag == "" {
		doUnprocessable(w, "tag_name is required to delete Droplets by tag.")
		return
	}
	err := s.removeDroplets(r.Context(), func(d *droplet) bool { return slices.Contains(d.tags, tag) })
	if err != nil && err != errNoDroplet {
		doError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var errNoDroplet = fmt.Errorf("no such droplet")

// removeDroplets deletes the droplets that match: each leaves the API at
// once, gives back its reserved IPs, and has its machine removed (a starting
// machine is removed by provisionDroplet when its start returns).
func (s *Server) removeDroplets(ctx context.Context, match func(*droplet) bool) error {
	type gone struct {
		machineID string
		ips       []string
	}
	var removed []gone
	s.mu.Lock()
	for id, d := range s.droplets {
		if !match(d) {
			continue
		}
		delete(s.droplets, id)
		d.deleted = true
		d.cancel()
		g := gone{machineID: d.machineID}
		for _, rip := range s.reserved {
			if rip.dropletID == id {
				rip.dropletID = 0
				g.ips = append(g.ips, rip.ip)
			}
		}
		if g.machineID != "" {
			s.removals[g.machineID] = true
		}
		removed = append(removed, g)
	}
	s.saveLocked()
	s.mu.Unlock()
	if len(removed) == 0 {
		return errNoDroplet
	}
	ctx = context.WithoutCancel(ctx)
	var firstErr error
	for _, g := range removed {
		for _, ip := range g.ips {
			if err := s.machines.AssignIP(ctx, ip, ""); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		if g.machineID != "" {
			if err := s.removeRecorded(ctx, g.machineID); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// removeRecorded removes the machine of a deleted droplet, which
// s.removals lists until it is gone, so that a restart finishes the job.
func (s *Server) removeRecorded(ctx context.Context, machineID string) error {
	err := s.machines.Remove(ctx, machineID)
	if err == nil {
		s.mu.Lock()
		delete(s.removals, machineID)
		s.saveLocked()
		s.mu.Unlock()
	}
	return err
}

func (s *Server) dropletAction(w http.ResponseWriter, r *http.Request, id int) {
	var req struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := decodeBody(r, &req); err != nil {
		doError(w, http.StatusBadRequest, "bad_request", "The request body is not valid JSON.")
		return
	}
	if req.Type != "rename" {
		doUnprocessable(w, fmt.Sprintf("The lab cloud does not support the droplet action %q.", req.Type))
		return
	}
	if !dropletName.MatchString(req.Name) {
		doUnprocessable(w, badDropletName)
		return
	}
	s.mu.Lock()
	d := s.droplets[id]
	if d == nil {
		s.mu.Unlock()
		doNotFound(w)
		return
	}
	if d.pending != nil || d.status != "active" {
		s.mu.Unlock()
		doUnprocessable(w, pendingDroplet)
		return
	}
	a := s.newActionLocked("rename", "droplet", id, d.region)
	d.pending, d.renameTo = a, req.Name
	s.saveLocked()
	reply := a.json()
	s.mu.Unlock()

	if !s.goBackground(func(ctx context.Context) { s.finishDropletRename(ctx, d, a) }) {
		doError(w, http.StatusServiceUnavailable, "service_unavailable", "The lab cloud is shutting down.")
		return
	}
	writeJSON(w, http.StatusCreated, doContentType, map[string]any{"action": reply})
}

// finishDropletRename carries out a droplet's pending rename, action a.
func (s *Server) finishDropletRename(ctx context.Context, d *droplet, a *doAction) {
	s.mu.Lock()
	machineID, name := d.machineID, d.renameTo
	s.mu.Unlock()
	err := s.machines.Rename(ctx, machineID, name)
	if err != nil && s.ctx.Err() != nil {
		return // the server is closing; the next one carries the rename out
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && !d.deleted {
		d.name = name
	}
	d.pending, d.renameTo = nil, ""
	s.finishLocked(a, err)
}

// getAction serves an action; resourceType and resourceID, when set, must
// match the URL it was asked through.
func (s *Server) getAction(w http.ResponseWriter, rawID, resourceType string, resourceID int) {
	id, err := strconv.Atoi(rawID)
	if err != nil {
		doNotFound(w)
		return
	}
	s.mu.Lock()
	a := s.actions[id]
	var j actionJSON
	if a != nil {
		j = a.json()
	}
	s.mu.Unlock()
	if a == nil || (resourceType != "" && (a.resourceType != resourceType || a.resourceID != resourceID)) {
		doNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, doContentType, map[string]any{"action": j})
}

func (s *Server) listReservedIPs(w http.ResponseWriter, r *http.Request) {
	page, perPage, ok := doPaging(w, r.URL.Query())
	if !ok {
		return
	}
	s.mu.Lock()
	var all []reservedIPJSON
	for _, ip := range s.pool {
		if rip := s.reserved[ip]; rip != nil {
			all = append(all, s.rIPJSON(rip))
		}
	}
	s.mu.Unlock()
	lo, hi, pages := pageBounds(len(all), page, perPage)
	writeJSON(w, http.StatusOK, doContentType, map[string]any{
		"reserved_ips": append([]reservedIPJSON{}, all[lo:hi]...),
		"links":        doLinks(r, page, pages, perPage),
		"meta":         map[string]int{"total": len(all)},
	})
}

func (s *Server) createReservedIP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Region    string `json:"region"`
		DropletID int    `json:"droplet_id"`
		ProjectID string `json:"project_id"`
	}
	if err := decodeBody(r, &req); err != nil {
		doError(w, http.StatusBadRequest, "bad_request", "The request body is not valid JSON.")
		return
	}
	if req.Region == "" && req.DropletID == 0 {
		doUnprocessable(w, "You must provide either a region or a droplet_id.")
		return
	}
	s.mu.Lock()
	var d *droplet
	if req.DropletID != 0 {
		if d = s.droplets[req.DropletID]; d == nil {
			s.mu.Unlock()
			doUnprocessable(w, "Droplet not found.")
			return
		}
		if d.pending != nil || d.status != "active" {
			s.mu.Unlock()
			doUnprocessable(w, pendingDroplet)
			return
		}
	}
	var ip string
	for _, p := range s.pool {
		if s.reserved[p] == nil {
			ip = p
			break
		}
	}
	if ip == "" {
		s.mu.Unlock()
		doUnprocessable(w, "You have reached the limit of reserved IPs for the lab.")
		return
	}
	rip := &reservedIP{ip: ip, region: req.Region}
	if d != nil {
		rip.region = d.region
	}
	s.reserved[ip] = rip
	s.saveLocked()
	links := map[string]any{}
	var assign func(context.Context)
	if d != nil {
		a, fn := s.startAssignLocked(rip, d)
		assign = fn
		links["droplets"] = []map[string]any{{"id": d.id, "rel": "droplet", "href": baseURL(r) + "/v2/droplets/" + strconv.Itoa(d.id)}}
		links["actions"] = []linkAction{{ID: a.id, Rel: "assign_ip", HREF: actionURL(r, a.id)}}
	}
	reply := s.rIPJSON(rip)
	s.mu.Unlock()
	if assign != nil && !s.goBackground(assign) {
		doError(w, http.StatusServiceUnavailable, "service_unavailable", "The lab cloud is shutting down.")
		return
	}
	writeJSON(w, http.StatusAccepted, doContentType, map[string]any{"reserved_ip": reply, "links": links})
}

// startAssignLocked records an assign (d != nil) or unassign action on rip and
// returns the work that carries it out. s.mu is held.
func (s *Server) startAssignLocked(rip *reservedIP, d *droplet) (*doAction, func(context.Context)) {
	typ, dropletID := "unassign_ip", 0
	if d != nil {
		typ, dropletID = "assign_ip", d.id
	}
	a := s.newActionLocked(typ, "reserved_ip", ipResourceID(rip.ip), rip.region)
	rip.pending, rip.assignTo = a, dropletID
	s.saveLocked()
	return a, s.assignWork(rip, d, a)
}

// assignWork moves rip to droplet d (nil: unassigns it) and completes
// action a.
func (s *Server) assignWork(rip *reservedIP, d *droplet, a *doAction) func(context.Context) {
	return func(ctx context.Context) {
		machineID, dropletID := "", 0
		if d != nil {
			s.mu.Lock()
			machineID, dropletID = d.machineID, d.id
			s.mu.Unlock()
		}
		err := s.machines.AssignIP(ctx, rip.ip, machineID)
		if err != nil && s.ctx.Err() != nil {
			return // the server is closing; the next one carries the move out
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err == nil {
			rip.dropletID = dropletID
			if d != nil && d.deleted {
				rip.dropletID = 0 // the droplet went away meanwhile
			}
		}
		rip.pending, rip.assignTo = nil, 0
		s.finishLocked(a, err)
	}
}

func (s *Server) reservedIPAction(w http.ResponseWriter, r *http.Request, ip string) {
	var req struct {
		Type      string `json:"type"`
		DropletID int    `json:"droplet_id"`
	}
	if err := decodeBody(r, &req); err != nil {
		doError(w, http.StatusBadRequest, "bad_request", "The request body is not valid JSON.")
		return
	}
	s.mu.Lock()
	rip := s.reserved[ip]
	if rip == nil {
		s.mu.Unlock()
		doNotFound(w)
		return
	}
	if rip.pending != nil {
		s.mu.Unlock()
		doUnprocessable(w, "The reserved IP already has a pending event.")
		return
	}
	var d *droplet
	switch req.Type {
	case "assign":
		if d = s.droplets[req.DropletID]; d == nil {
			s.mu.Unlock()
			doUnprocessable(w, "Droplet not found.")
			return
		}
		if d.pending != nil || d.status != "active" {
			s.mu.Unlock()
			doUnprocessable(w, pendingDroplet)
			return
		}
	case "unassign":
		if rip.dropletID == 0 {
			s.mu.Unlock()
			doUnprocessable(w, "The reserved IP is not assigned to a Droplet.")
			return
		}
	default:
		s.mu.Unlock()
		doUnprocessable(w, fmt.Sprintf("The action type %q is not valid for a reserved IP.", req.Type))
		return
	}
	a, work := s.startAssignLocked(rip, d)
	reply := a.json()
	s.mu.Unlock()
	if !s.goBackground(work) {
		doError(w, http.StatusServiceUnavailable, "service_unavailable", "The lab cloud is shutting down.")
		return
	}
	writeJSON(w, http.StatusCreated, doContentType, map[string]any{"action": reply})
}

func (s *Server) deleteReservedIP(w http.ResponseWriter, r *http.Request, ip string) {
	s.mu.Lock()
	rip := s.reserved[ip]
	if rip == nil {
		s.mu.Unlock()
		doNotFound(w)
		return
	}
	if rip.pending != nil {
		s.mu.Unlock()
		doUnprocessable(w, "The reserved IP already has a pending event.")
		return
	}
	assigned := rip.dropletID != 0
	delete(s.reserved, ip) // back to the pool
	s.saveLocked()
	s.mu.Unlock()
	if assigned {
		if err := s.machines.AssignIP(context.WithoutCancel(r.Context()), ip, ""); err != nil {
			doError(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
