package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/orch-dev/orch/lab/internal/atomicfile"
)

// A cloud opened with Open keeps its state in a file: every change is saved
// before the API answers, atomically (a synced temp file renamed over the
// old one), so a restart of the cloud's process loses no instance, droplet,
// action or reserved IP. Work the earlier process left half done resumes:
// instances and droplets still provisioning are started again (Machines
// replaces what an interrupted start left behind, see MachineSpec.Key),
// deletions finish, and pending renames and reserved IP moves are carried
// out.

// stateVersion is the format of the state file.
const stateVersion = 1

type snapshot struct {
	Version    int              `json:"version"`
	NextLinode int              `json:"next_linode"`
	NextDO     int              `json:"next_do"`
	Linodes    []linodeSnapshot `json:"linodes"`
	Droplets   []dropletSnap    `json:"droplets"`
	Actions    []actionSnap     `json:"actions"`
	Reserved   []reservedSnap   `json:"reserved_ips"` // those that exist; pooled ones are absent
	Removals   []string         `json:"removals"`     // machines of deleted droplets still to remove
}

type linodeSnapshot struct {
	ID          int          `json:"id"`
	Label       string       `json:"label"`
	Region      string       `json:"region"`
	Type        string       `json:"type"`
	Image       string       `json:"image,omitempty"`
	Tags        []string     `json:"tags"`
	Status      string       `json:"status"`
	HasUserData bool         `json:"has_user_data,omitempty"`
	Created     time.Time    `json:"created"`
	Updated     time.Time    `json:"updated"`
	MachineID   string       `json:"machine_id,omitempty"`
	Address     string       `json:"address,omitempty"`
	Spec        *MachineSpec `json:"spec,omitempty"`      // while provisioning: what to start
	RenameTo    string       `json:"rename_to,omitempty"` // a rename in flight
}

type dropletSnap struct {
	ID        int          `json:"id"`
	Name      string       `json:"name"`
	Region    string       `json:"region"`
	Size      string       `json:"size"`
	ImageID   int          `json:"image_id"`
	ImageSlug string       `json:"image_slug,omitempty"`
	Tags      []string     `json:"tags"`
	Status    string       `json:"status"`
	Created   time.Time    `json:"created"`
	MachineID string       `json:"machine_id,omitempty"`
	Address   string       `json:"address,omitempty"`
	Pending   int          `json:"pending_action,omitempty"`
	Spec      *MachineSpec `json:"spec,omitempty"`
	RenameTo  string       `json:"rename_to,omitempty"`
}

type actionSnap struct {
	ID           int       `json:"id"`
	Status       string    `json:"status"`
	Type         string    `json:"type"`
	Started      time.Time `json:"started"`
	Completed    time.Time `json:"completed"`
	ResourceID   int       `json:"resource_id"`
	ResourceType string    `json:"resource_type"`
	Region       string    `json:"region,omitempty"`
}

type reservedSnap struct {
	IP        string `json:"ip"`
	Region    string `json:"region"`
	DropletID int    `json:"droplet_id,omitempty"`
	Pending   int    `json:"pending_action,omitempty"`
	AssignTo  int    `json:"assign_to,omitempty"` // the pending action's droplet; 0 unassigns
}

// Open returns a lab cloud like NewServer whose state lives in the file at
// path (created on the first change; keep it private, it holds user data).
// logf receives the problems nobody else can be told about, such as a
// failed save; nil discards them.
func Open(m Machines, tokens Tokens, path string, logf func(format string, args ...any)) (*Server, error) {
	s := NewServer(m, tokens)
	s.statePath = path
	if logf != nil {
		s.logf = logf
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, fmt.Errorf("lab cloud state %s: %v", path, err)
	}
	if snap.Version != stateVersion {
		return nil, fmt.Errorf("lab cloud state %s: version %d, want %d", path, snap.Version, stateVersion)
	}
	s.restore(snap)
	return s, nil
}

// saveLocked writes the state file. s.mu is held. A failed save is logged:
// the change has happened, and the next save carries it.
func (s *Server) saveLocked() {
	if s.statePath == "" {
		return
	}
	data, err := json.MarshalIndent(s.snapshotLocked(), "", "  ")
	if err == nil {
		err = atomicfile.Write(s.statePath, append(data, '\n'), 0o600)
	}
	if err != nil {
		s.logf("lab cloud: saving the state: %v", err)
	}
}

func (s *Server) snapshotLocked() snapshot {
	snap := snapshot{Version: stateVersion, NextLinode: s.nextLinode, NextDO: s.nextDO,
		Linodes: []linodeSnapshot{}, Droplets: []dropletSnap{}, Actions: []actionSnap{}, Reserved: []reservedSnap{}}
	for _, in := range s.linodes {
		snap.Linodes = append(snap.Linodes, linodeSnapshot{
			ID: in.id, Label: in.label, Region: in.region, Type: in.typ, Image: in.image, Tags: in.tags,
			Status: in.status, HasUserData: in.hasUserData, Created: in.created, Updated: in.updated,
			MachineID: in.machineID, Address: in.address, Spec: in.spec, RenameTo: in.renameTo,
		})
	}
	slices.SortFunc(snap.Linodes, func(a, b linodeSnapshot) int { return a.ID - b.ID })
	for _, d := range s.droplets {
		ds := dropletSnap{
			ID: d.id, Name: d.name, Region: d.region, Size: d.size, ImageID: d.image.id, ImageSlug: d.image.slug,
			Tags: d.tags, Status: d.status, Created: d.created, MachineID: d.machineID, Address: d.address,
			Spec: d.spec, RenameTo: d.renameTo,
		}
		if d.pending != nil {
			ds.Pending = d.pending.id
		}
		snap.Droplets = append(snap.Droplets, ds)
	}
	slices.SortFunc(snap.Droplets, func(a, b dropletSnap) int { return a.ID - b.ID })
	for _, a := range s.actions {
		snap.Actions = append(snap.Actions, actionSnap{
			ID: a.id, Status: a.status, Type: a.typ, Started: a.started, Completed: a.completed,
			ResourceID: a.resourceID, ResourceType: a.resourceType, Region: a.region,
		})
	}
	slices.SortFunc(snap.Actions, func(a, b actionSnap) int { return a.ID - b.ID })
	for _, ip := range s.pool {
		rip := s.reserved[ip]
		if rip == nil {
			continue
		}
		rs := reservedSnap{IP: rip.ip, Region: rip.region, DropletID: rip.dropletID, AssignTo: rip.assignTo}
		if rip.pending != nil {
			rs.Pending = rip.pending.id
		}
		snap.Reserved = append(snap.Reserved, rs)
	}
	snap.Removals = slices.Sorted(maps.Keys(s.removals))
	return snap
}

// restore loads a snapshot into a new server and resumes its unfinished
// work in the background.
func (s *Server) restore(snap snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextLinode, s.nextDO = max(snap.NextLinode, s.nextLinode), max(snap.NextDO, s.nextDO)
	for _, a := range snap.Actions {
		s.actions[a.ID] = &doAction{id: a.ID, status: a.Status, typ: a.Type, started: a.Started, completed: a.Completed,
			resourceID: a.ResourceID, resourceType: a.ResourceType, region: a.Region}
	}
	var resume []func()
	for _, ls := range snap.Linodes {
		in := &linodeInstance{
			id: ls.ID, label: ls.Label, region: ls.Region, typ: ls.Type, image: ls.Image, tags: ls.Tags,
			status: ls.Status, hasUserData: ls.HasUserData, created: ls.Created, updated: ls.Updated,
			machineID: ls.MachineID, address: ls.Address, spec: ls.Spec, renameTo: ls.RenameTo,
			cancel: func() {},
		}
		s.linodes[in.id] = in
		switch {
		case in.status == "provisioning" && in.spec != nil:
			ctx, cancel := context.WithCancel(s.ctx)
			in.cancel = cancel
			spec := *in.spec
			resume = append(resume, func() { s.provisionLinode(ctx, in, spec) })
		case in.status == "provisioning":
			in.status = "offline"
		case in.status == "deleting":
			in.busy = true
			resume = append(resume, func() { s.finishLinodeDelete(s.ctx, in, "running") })
		case in.renameTo != "":
			in.busy = true
			resume = append(resume, func() { s.finishLinodeRename(s.ctx, in) })
		}
	}
	for _, ds := range snap.Droplets {
		d := &droplet{
			id: ds.ID, name: ds.Name, region: ds.Region, size: ds.Size, image: doImage{id: ds.ImageID, slug: ds.ImageSlug},
			tags: ds.Tags, status: ds.Status, created: ds.Created, machineID: ds.MachineID, address: ds.Address,
			spec: ds.Spec, renameTo: ds.RenameTo, cancel: func() {},
		}
		s.droplets[d.id] = d
		a := s.actions[ds.Pending]
		d.pending = a
		switch {
		case d.status == "new" && d.spec != nil && a != nil:
			ctx, cancel := context.WithCancel(s.ctx)
			d.cancel = cancel
			spec := *d.spec
			resume = append(resume, func() { s.provisionDroplet(ctx, d, a, spec) })
		case d.status == "new":
			d.status, d.pending = "off", nil
		case d.renameTo != "" && a != nil:
			resume = append(resume, func() { s.finishDropletRename(s.ctx, d, a) })
		default:
			d.pending = nil
		}
	}
	for _, rs := range snap.Reserved {
		if !slices.Contains(s.pool, rs.IP) {
			continue // not one of this lab's addresses (any more)
		}
		rip := &reservedIP{ip: rs.IP, region: rs.Region, dropletID: rs.DropletID}
		s.reserved[rs.IP] = rip
		if a := s.actions[rs.Pending]; a != nil && a.status == "in-progress" {
			var target *droplet
			if rs.AssignTo != 0 {
				target = s.droplets[rs.AssignTo]
			}
			if rs.AssignTo == 0 || target != nil {
				rip.pending, rip.assignTo = a, rs.AssignTo
				resume = append(resume, func() { s.assignWork(rip, target, a)(s.ctx) })
			}
		}
	}
	for _, id := range snap.Removals {
		s.removals[id] = true
		resume = append(resume, func() { s.removeRecorded(s.ctx, id) })
	}
	// Actions whose work is not resumed cannot finish any more.
	for _, a := range s.actions {
		if a.status == "in-progress" && !s.actionResumedLocked(a) {
			s.finishLocked(a, errors.New("interrupted by a restart of the lab cloud"))
		}
	}
	for _, fn := range resume {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			fn()
		}()
	}
}

// actionResumedLocked reports whether a restored resource still waits for
// action a. s.mu is held.
func (s *Server) actionResumedLocked(a *doAction) bool {
	for _, d := range s.droplets {
		if d.pending == a {
			return true
		}
	}
	for _, rip := range s.reserved {
		if rip.pending == a {
			return true
		}
	}
	return false
}
