package cloud

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// linodeInstance is one Linode of the lab account.
type linodeInstance struct {
	id          int
	label       string
	region      string
	typ         string
	image       string
	tags        []string
	status      string // provisioning, running, offline, deleting
	hasUserData bool
	created     time.Time
	updated     time.Time

	machineID string
	address   string
	spec      *MachineSpec       // what to start, while provisioning
	renameTo  string             // the label a rename in flight gives it
	busy      bool               // a machine operation is running; changes get "Linode busy."
	cancel    context.CancelFunc // cancels the machine start while provisioning
	deleted   bool
}

// linodeJSON is the Linode API v4 instance object.
type linodeJSON struct {
	ID              int          `json:"id"`
	Label           string       `json:"label"`
	Group           string       `json:"group"`
	Status          string       `json:"status"`
	Created         string       `json:"created"`
	Updated         string       `json:"updated"`
	Type            string       `json:"type"`
	IPv4            []string     `json:"ipv4"`
	IPv6            *string      `json:"ipv6"`
	Image           *string      `json:"image"`
	Region          string       `json:"region"`
	Specs           linodeSpecs  `json:"specs"`
	Alerts          linodeAlerts `json:"alerts"`
	Backups         linodeBackup `json:"backups"`
	Hypervisor      string       `json:"hypervisor"`
	WatchdogEnabled bool         `json:"watchdog_enabled"`
	Tags            []string     `json:"tags"`
	HostUUID        string       `json:"host_uuid"`
	HasUserData     bool         `json:"has_user_data"`
	PlacementGroup  any          `json:"placement_group"`
	DiskEncryption  string       `json:"disk_encryption"`
	LKEClusterID    any          `json:"lke_cluster_id"`
	Capabilities    []string     `json:"capabilities"`
	InterfaceGen    string       `json:"interface_generation"`
	Maintenance     string       `json:"maintenance_policy"`
}

type linodeSpecs struct {
	Disk     int `json:"disk"`
	Memory   int `json:"memory"`
	VCPUs    int `json:"vcpus"`
	GPUs     int `json:"gpus"`
	Transfer int `json:"transfer"`
}

type linodeAlerts struct {
	CPU           int `json:"cpu"`
	NetworkIn     int `json:"network_in"`
	NetworkOut    int `json:"network_out"`
	TransferQuota int `json:"transfer_quota"`
	IO            int `json:"io"`
}

type linodeBackup struct {
	Enabled   bool `json:"enabled"`
	Available bool `json:"available"`
	Schedule  struct {
		Day    *string `json:"day"`
		Window *string `json:"window"`
	} `json:"schedule"`
	LastSuccessful *string `json:"last_successful"`
}

// linodeTime is the API's timestamp format: UTC without a zone suffix.
const linodeTime = "2006-01-02T15:04:05"

func (in *linodeInstance) json() linodeJSON {
	j := linodeJSON{
		ID:              in.id,
		Label:           in.label,
		Status:          in.status,
		Created:         in.created.Format(linodeTime),
		Updated:         in.updated.Format(linodeTime),
		Type:            in.typ,
		IPv4:            []string{},
		Region:          in.region,
		Specs:           linodeSpecs{Disk: 25600, Memory: 1024, VCPUs: 1, Transfer: 1000},
		Alerts:          linodeAlerts{CPU: 90, NetworkIn: 10, NetworkOut: 10, TransferQuota: 80, IO: 10000},
		Hypervisor:      "kvm",
		WatchdogEnabled: true,
		Tags:            slices.Clone(in.tags),
		HostUUID:        fmt.Sprintf("lab-%08d", in.id),
		HasUserData:     in.hasUserData,
		DiskEncryption:  "disabled",
		Capabilities:    []string{"Metadata"},
		InterfaceGen:    "legacy_config",
		Maintenance:     "linode/migrate",
	}
	if in.image != "" {
		img := in.image
		j.Image = &img
	}
	if in.address != "" {
		j.IPv4 = []string{in.address}
	}
	if j.Tags == nil {
		j.Tags = []string{}
	}
	return j
}

// linodeError writes the Linode API's error body, {"errors":[{"reason":…}]}.
func linodeError(w http.ResponseWriter, status int, reason, field string) {
	linodeErrors(w, status, linodeReason{Reason: reason, Field: field})
}

type linodeReason struct {
	Reason string `json:"reason"`
	Field  string `json:"field,omitempty"`
}

func linodeErrors(w http.ResponseWriter, status int, reasons ...linodeReason) {
	writeJSON(w, status, "application/json", map[string][]linodeReason{"errors": reasons})
}

func linodeJSONReply(w http.ResponseWriter, v any) {
	writeJSON(w, http.StatusOK, "application/json", v)
}

const linodeBusy = "Linode busy."

func (s *Server) serveLinode(w http.ResponseWriter, r *http.Request, rest string) {
	parts := pathParts(rest)
	if len(parts) < 2 || parts[0] != "linode" || parts[1] != "instances" || len(parts) > 3 {
		linodeError(w, http.StatusNotFound, "Not found", "")
		return
	}
	if len(parts) == 2 {
		switch r.Method {
		case http.MethodGet:
			s.listLinodes(w, r)
		case http.MethodPost:
			s.createLinode(w, r)
		default:
			linodeError(w, http.StatusMethodNotAllowed, "Method Not Allowed", "")
		}
		return
	}
	id, err := strconv.Atoi(parts[2])
	if err != nil {
		linodeError(w, http.StatusNotFound, "Not found", "")
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		in := s.linodes[id]
		var j linodeJSON
		if in != nil {
			j = in.json()
		}
		s.mu.Unlock()
		if in == nil {
			linodeError(w, http.StatusNotFound, "Not found", "")
			return
		}
		linodeJSONReply(w, j)
	case http.MethodPut:
		s.updateLinode(w, r, id)
	case http.MethodDelete:
		s.deleteLinode(w, r, id)
	default:
		linodeError(w, http.StatusMethodNotAllowed, "Method Not Allowed", "")
	}
}

// linodeLabel is the API's label rule: 3-64 characters of letters, digits,
// '-', '_' and '.', starting and ending with a letter or digit, and no two
// of '-', '_', '.' in a row.
var (
	linodeLabel   = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]{1,62})[A-Za-z0-9]$`)
	doubleSpecial = regexp.MustCompile(`[._-]{2}`)
)

func checkLinodeLabel(label string) *linodeReason {
	if !linodeLabel.MatchString(label) || doubleSpecial.MatchString(label) {
		return &linodeReason{Field: "label", Reason: "Label must be 3-64 characters, use only letters, numbers, '-', '_' and '.', and start and end with a letter or number"}
	}
	return nil
}

// labelTakenLocked reports whether another instance uses label, or is
// being renamed to it. s.mu is held.
func (s *Server) labelTakenLocked(label string, except int) bool {
	for id, in := range s.linodes {
		if id != except && (in.label == label || in.renameTo == label) {
			return true
		}
	}
	return false
}

func (s *Server) createLinode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Region          string   `json:"region"`
		Type            string   `json:"type"`
		Label           string   `json:"label"`
		Image           string   `json:"image"`
		RootPass        string   `json:"root_pass"`
		AuthorizedKeys  []string `json:"authorized_keys"`
		AuthorizedUsers []string `json:"authorized_users"`
		Tags            []string `json:"tags"`
		Metadata        *struct {
			UserData string `json:"user_data"`
		} `json:"metadata"`
	}
	if err := decodeBody(r, &req); err != nil {
		linodeError(w, http.StatusBadRequest, "Malformed JSON", "")
		return
	}
	var problems []linodeReason
	if req.Region == "" {
		problems = append(problems, linodeReason{Field: "region", Reason: "region is required"})
	}
	if req.Type == "" {
		problems = append(problems, linodeReason{Field: "type", Reason: "type is required"})
	}
	if req.Image != "" && req.RootPass == "" && len(req.AuthorizedKeys) == 0 && len(req.AuthorizedUsers) == 0 {
		problems = append(problems, linodeReason{Field: "root_pass", Reason: "root_pass is required when deploying an image"})
	}
	if req.Label != "" {
		if p := checkLinodeLabel(req.Label); p != nil {
			problems = append(problems, *p)
		}
	}
	var userData []byte
	if req.Metadata != nil && req.Metadata.UserData != "" {
		var err error
		if userData, err = base64.StdEncoding.DecodeString(req.Metadata.UserData); err != nil {
			problems = append(problems, linodeReason{Field: "metadata.user_data", Reason: "user_data must be base64-encoded"})
		}
	}
	if len(problems) > 0 {
		linodeErrors(w, http.StatusBadRequest, problems...)
		return
	}

	s.mu.Lock()
	id := s.nextLinode
	label := req.Label
	if label == "" {
		label = fmt.Sprintf("linode%d", id)
	}
	if s.labelTakenLocked(label, 0) {
		s.mu.Unlock()
		linodeError(w, http.StatusBadRequest, "Label must be unique among your linodes", "label")
		return
	}
	s.nextLinode++
	now := s.now()
	ctx, cancel := context.WithCancel(s.ctx)
	spec := MachineSpec{Name: label, Image: req.Image, Tags: slices.Clone(req.Tags), UserData: userData,
		SSHKeys: slices.Clone(req.AuthorizedKeys), Key: fmt.Sprintf("linode/%d", id)}
	in := &linodeInstance{
		id: id, label: label, region: req.Region, typ: req.Type, image: req.Image,
		tags: slices.Clone(req.Tags), status: "provisioning", hasUserData: len(userData) > 0,
		created: now, updated: now, cancel: cancel, spec: &spec,
	}
	s.linodes[id] = in
	s.saveLocked()
	reply := in.json()
	s.mu.Unlock()

	if !s.goBackground(func(context.Context) { s.provisionLinode(ctx, in, spec) }) {
		cancel()
		s.mu.Lock()
		delete(s.linodes, id)
		s.saveLocked()
		s.mu.Unlock()
		linodeError(w, http.StatusServiceUnavailable, "Service Unavailable", "")
		return
	}
	linodeJSONReply(w, reply)
}

// provisionLinode starts the instance's machine. An instance deleted while
// it was starting gets its machine removed at once.
func (s *Server) provisionLinode(ctx context.Context, in *linodeInstance, spec MachineSpec) {
	defer in.cancel()
	m, err := s.machines.Start(ctx, spec)
	if err != nil && s.ctx.Err() != nil {
		return // the server is closing: the next one to open its state starts it again
	}
	s.mu.Lock()
	deleted := in.deleted
	switch {
	case deleted:
	case err != nil:
		in.status = "offline"
		s.logf("lab cloud: linode %d (%s) did not start: %v", in.id, in.label, err)
	default:
		in.machineID, in.address, in.status = m.ID, m.Address, "running"
	}
	in.spec = nil
	in.updated = s.now()
	s.saveLocked()
	s.mu.Unlock()
	if deleted && err == nil {
		s.removeMachine(ctx, m.ID)
	}
}

// removeMachine removes a machine on behalf of a resource already gone from
// the API; there is nobody to report a failure to.
func (s *Server) removeMachine(ctx context.Context, id string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	_ = s.machines.Remove(rctx, id)
}

func (s *Server) updateLinode(w http.ResponseWriter, r *http.Request, id int) {
	var req struct {
		Label *string   `json:"label"`
		Tags  *[]string `json:"tags"`
	}
	if err := decodeBody(r, &req); err != nil {
		linodeError(w, http.StatusBadRequest, "Malformed JSON", "")
		return
	}
	if req.Label != nil {
		if p := checkLinodeLabel(*req.Label); p != nil {
			linodeErrors(w, http.StatusBadRequest, *p)
			return
		}
	}
	s.mu.Lock()
	in := s.linodes[id]
	if in == nil {
		s.mu.Unlock()
		linodeError(w, http.StatusNotFound, "Not found", "")
		return
	}
	if req.Label != nil && *req.Label != in.label && s.labelTakenLocked(*req.Label, id) {
		s.mu.Unlock()
		linodeError(w, http.StatusBadRequest, "Label must be unique among your linodes", "label")
		return
	}
	renaming := req.Label != nil && *req.Label != in.label
	if renaming && (in.busy || in.status != "running") {
		s.mu.Unlock()
		linodeError(w, http.StatusBadRequest, linodeBusy, "")
		return
	}
	if req.Tags != nil {
		in.tags = slices.Clone(*req.Tags)
	}
	if renaming {
		in.renameTo, in.busy = *req.Label, true // reserve the label while the machine is renamed
	}
	in.updated = s.now()
	s.saveLocked()
	s.mu.Unlock()

	if renaming {
		if err := s.finishLinodeRename(r.Context(), in); err != nil {
			linodeError(w, http.StatusInternalServerError, "Rename failed: "+err.Error(), "")
			return
		}
	}
	s.mu.Lock()
	j := in.json()
	s.mu.Unlock()
	linodeJSONReply(w, j)
}

func (s *Server) deleteLinode(w http.ResponseWriter, r *http.Request, id int) {
	s.mu.Lock()
	in := s.linodes[id]
	switch {
	case in == nil:
		s.mu.Unlock()
		linodeError(w, http.StatusNotFound, "Not found", "")
		return
	case in.busy:
		s.mu.Unlock()
		linodeError(w, http.StatusBadRequest, linodeBusy, "")
		return
	case in.machineID == "":
		// Still provisioning, or failed to start: the start is cancelled and
		// provisionLinode removes a machine that started anyway.
		delete(s.linodes, id)
		in.deleted = true
		in.cancel()
		s.saveLocked()
		s.mu.Unlock()
		linodeJSONReply(w, struct{}{})
		return
	}
	oldStatus := in.status
	in.status, in.busy = "deleting", true
	s.saveLocked()
	s.mu.Unlock()

	if err := s.finishLinodeDelete(r.Context(), in, oldStatus); err != nil {
		linodeError(w, http.StatusInternalServerError, "Delete failed: "+err.Error(), "")
		return
	}
	linodeJSONReply(w, struct{}{})
}

// finishLinodeRename renames the machine of an instance that has a rename
// in flight (renameTo), then gives the instance its new label, or keeps the
// old one if the machine could not be renamed.
func (s *Server) finishLinodeRename(ctx context.Context, in *linodeInstance) error {
	s.mu.Lock()
	machineID, label := in.machineID, in.renameTo
	s.mu.Unlock()
	err := s.machines.Rename(context.WithoutCancel(ctx), machineID, label)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		in.label = label
	}
	in.renameTo, in.busy, in.updated = "", false, s.now()
	s.saveLocked()
	return err
}

// finishLinodeDelete removes the machine of an instance being deleted, then
// the instance; if the machine stays, the instance goes back to oldStatus.
func (s *Server) finishLinodeDelete(ctx context.Context, in *linodeInstance, oldStatus string) error {
	s.mu.Lock()
	machineID := in.machineID
	s.mu.Unlock()
	err := s.machines.Remove(context.WithoutCancel(ctx), machineID)
	s.mu.Lock()
	defer s.mu.Unlock()
	in.busy = false
	if err != nil {
		in.status = oldStatus
	} else {
		in.deleted = true
		delete(s.linodes, in.id)
	}
	s.saveLocked()
	return err
}

func (s *Server) listLinodes(w http.ResponseWriter, r *http.Request) {
	page, size := 1, 100
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			linodeError(w, http.StatusBadRequest, "Must be a positive integer", "page")
			return
		}
		page = n
	}
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 25 || n > 500 {
			linodeError(w, http.StatusBadRequest, "Must be 25-500", "page_size")
			return
		}
		size = n
	}
	f, err := parseLinodeFilter(r.Header.Get("X-Filter"))
	if err != nil {
		linodeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}

	s.mu.Lock()
	all := make([]linodeJSON, 0, len(s.linodes))
	for _, in := range s.linodes {
		all = append(all, in.json())
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b linodeJSON) int { return a.ID - b.ID })

	// Filters see each instance as the generic JSON object a client sees.
	var objs []map[string]any
	var kept []linodeJSON
	for _, j := range all {
		obj := toObject(j)
		ok, err := f.match(obj)
		if err != nil {
			linodeError(w, http.StatusBadRequest, err.Error(), "")
			return
		}
		if ok {
			objs = append(objs, obj)
			kept = append(kept, j)
		}
	}
	if f.orderBy != "" {
		idx := make([]int, len(kept))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			c := compareValues(objs[a][f.orderBy], objs[b][f.orderBy])
			if f.desc {
				c = -c
			}
			return c
		})
		sorted := make([]linodeJSON, len(kept))
		for i, k := range idx {
			sorted[i] = kept[k]
		}
		kept = sorted
	}

	lo, hi, pages := pageBounds(len(kept), page, size)
	linodeJSONReply(w, struct {
		Data    []linodeJSON `json:"data"`
		Page    int          `json:"page"`
		Pages   int          `json:"pages"`
		Results int          `json:"results"`
	}{Data: append([]linodeJSON{}, kept[lo:hi]...), Page: page, Pages: pages, Results: len(kept)})
}

// toObject turns v into the generic JSON object a client decodes.
func toObject(v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}
