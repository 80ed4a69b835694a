package inventory

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
)

// The implicit groups every inventory has, as in Ansible: "all" holds every
// host and "ungrouped" the hosts that belong to no other group.
const (
	All       = "all"
	Ungrouped = "ungrouped"
)

// Inventory is a set of hosts, in declaration order, and the groups they
// belong to. It is safe for concurrent use: the engine may Add hosts that a
// cloud call created while roles are reading others.
//
// The *Host values it hands out are shared and must be treated as read-only.
type Inventory struct {
	mu       sync.RWMutex
	order    []string // host names in declaration order
	hosts    map[string]*hostDecl
	groupSeq []string // group names in declaration order
	groups   map[string]*groupDecl
	warnings []string // from parsing, in order

	// varsDirs are the folders whose group_vars/ and host_vars/ apply, one
	// per Ansible inventory source, in load order; playbookDir is the plan's
	// folder, whose group_vars/ and host_vars/ beat them (Options).
	varsDirs    []string
	playbookDir string
	adjacent    map[string]adjacentVars // cache: dir, kind and name -> vars

	// notes are per-host warnings found while resolving: message -> hosts.
	notes     map[string][]string
	noteOrder []string
}

type adjacentVars struct {
	vars varSet
	err  error
}

// hostDecl is a host as its source declared it. Declarations are never
// changed once resolved, so inventories made by Limit can share them.
type hostDecl struct {
	name    string
	vars    varSet // the host's own vars
	fixed   Host   // connection fields set directly (Starlark/orch YAML fields, Add); they beat vars
	fixedAt string // where the fixed fields were set
	host    *Host  // the resolved view handed out
}

type groupDecl struct {
	name     string
	at       string
	vars     varSet
	children []string
	hosts    []string // direct members only
}

// varSet is a set of vars that remembers where each one was set, so that a
// bad value can be reported against its line.
type varSet struct {
	vals map[string]any
	at   map[string]string
}

func (v *varSet) set(key string, val any, at string) {
	if v.vals == nil {
		v.vals, v.at = map[string]any{}, map[string]string{}
	}
	v.vals[key], v.at[key] = val, at
}

// assign sets a var as Ansible's set_variable does for inventory vars: a
// mapping assigned over a mapping is merged into it, one level deep.
func (v *varSet) assign(key string, val any, at string) {
	if old, ok := v.vals[key].(map[string]any); ok {
		if m, ok := val.(map[string]any); ok {
			merged := maps.Clone(old)
			maps.Copy(merged, m)
			val = merged
		}
	}
	v.set(key, val, at)
}

// merge assigns o's vars over v's, as when a host or group is declared
// again (in the same file or another source).
func (v *varSet) merge(o varSet) {
	for k, val := range o.vals {
		v.assign(k, val, o.at[k])
	}
}

func (v varSet) clone() varSet {
	return varSet{vals: maps.Clone(v.vals), at: maps.Clone(v.at)}
}

// New returns an empty inventory holding only the implicit groups.
func New() *Inventory {
	inv := &Inventory{hosts: map[string]*hostDecl{}, groups: map[string]*groupDecl{}}
	inv.group(All, "")
	inv.group(Ungrouped, "")
	return inv
}

// host returns the declaration of name, creating it if needed. It is the
// parsers' building block, as is group.
func (inv *Inventory) host(name string) *hostDecl {
	if d, ok := inv.hosts[name]; ok {
		return d
	}
	d := &hostDecl{name: name}
	inv.hosts[name] = d
	inv.order = append(inv.order, name)
	return d
}

func (inv *Inventory) group(name, at string) *groupDecl {
	if g, ok := inv.groups[name]; ok {
		return g
	}
	g := &groupDecl{name: name, at: at}
	inv.groups[name] = g
	inv.groupSeq = append(inv.groupSeq, name)
	return g
}

func (g *groupDecl) addHost(name string) {
	if !slices.Contains(g.hosts, name) {
		g.hosts = append(g.hosts, name)
	}
}

func (g *groupDecl) addChild(name string) {
	if !slices.Contains(g.children, name) {
		g.children = append(g.children, name)
	}
}

func (inv *Inventory) warnf(format string, args ...any) {
	inv.warnings = append(inv.warnings, fmt.Sprintf(format, args...))
}

// note records a warning about one host; hosts sharing a message are
// reported together, once.
func (inv *Inventory) note(host, msg string) {
	if inv.notes == nil {
		inv.notes = map[string][]string{}
	}
	if _, ok := inv.notes[msg]; !ok {
		inv.noteOrder = append(inv.noteOrder, msg)
	}
	if !slices.Contains(inv.notes[msg], host) {
		inv.notes[msg] = append(inv.notes[msg], host)
	}
}

func (inv *Inventory) resetNotes() { inv.notes, inv.noteOrder = nil, nil }

// Hosts returns every host in declaration order.
func (inv *Inventory) Hosts() []*Host {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	out := make([]*Host, 0, len(inv.order))
	for _, name := range inv.order {
		out = append(out, inv.hosts[name].host)
	}
	return out
}

// Host returns the host called name.
func (inv *Inventory) Host(name string) (*Host, bool) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	d, ok := inv.hosts[name]
	if !ok {
		return nil, false
	}
	return d.host, true
}

// Groups returns every group, including "all" and "ungrouped", with the names
// of its member hosts (direct or through children) in inventory order.
func (inv *Inventory) Groups() map[string][]string {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	out := make(map[string][]string, len(inv.groups))
	for name := range inv.groups {
		out[name] = []string{}
	}
	for _, name := range inv.order {
		h := inv.hosts[name].host
		out[All] = append(out[All], name)
		for _, g := range h.Groups {
			out[g] = append(out[g], name)
		}
	}
	return out
}

// GroupVars returns a copy of the vars set on the group itself (not those
// of its parents), or nil when there is no such group. GroupVars("all")
// gives the inventory-wide vars, which plans see as ctx.vars.
func (inv *Inventory) GroupVars(name string) map[string]any {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	g, ok := inv.groups[name]
	if !ok {
		return nil
	}
	out := maps.Clone(g.vars.vals)
	if out == nil {
		out = map[string]any{}
	}
	return out
}

// Warnings returns what the loaders skipped or ignored, such as unknown
// keys in a YAML group (which Ansible skips with a warning too), or vars
// orch does not use (ansible_become_pass, unsupported ssh arguments). The
// library never prints them; the CLI shows them.
//
// Each warning appears once; one about hosts names them (the first few of
// many). They are meant to be shown once per run.
func (inv *Inventory) Warnings() []string {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	var out []string
	for _, w := range inv.warnings {
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	for _, msg := range inv.noteOrder {
		hosts := inv.notes[msg]
		if len(hosts) == 0 {
			continue
		}
		who := "host " + hosts[0]
		if len(hosts) > 1 {
			shown := hosts[:min(len(hosts), 3)]
			who = "hosts " + strings.Join(shown, ", ")
			if more := len(hosts) - len(shown); more > 0 {
				who += fmt.Sprintf(" and %d more", more)
			}
		}
		out = append(out, who+": "+msg)
	}
	return out
}

// Add adds a host found at run time, such as one a cloud call created, or
// replaces the host of the same name. h.Groups are the groups it belongs to
// directly (missing groups are created) and h.Vars its own vars; its
// connection fields, when set, beat any var.
//
// Add takes ownership of h and resolves it in place: afterwards h.Groups also
// lists the ancestor groups and h.Vars holds the inherited group vars. It
// fails, leaving inv unchanged, for a host or group name no pattern could
// select, or connection vars of the wrong type; a host orch cannot connect
// to (an unknown connection) is added and marked Unusable instead.
func (inv *Inventory) Add(h *Host) error {
	if err := checkName("host", h.Name); err != nil {
		return fmt.Errorf("inventory: add: %w", err)
	}
	d := &hostDecl{
		name: h.Name,
		fixed: Host{Address: h.Address, Port: h.Port, User: h.User, Key: h.Key, Connection: h.Connection,
			Become: h.Become, BecomeUser: h.BecomeUser, BecomeMethod: h.BecomeMethod, ConnectTimeout: h.ConnectTimeout, SSH: h.SSH},
	}
	for k, v := range h.Vars {
		d.vars.set(k, v, "")
	}
	var direct []string
	for _, g := range h.Groups {
		if err := checkName("group", g); err != nil {
			return fmt.Errorf("inventory: add %s: %w", h.Name, err)
		}
		if g != All && g != Ungrouped && !slices.Contains(direct, g) {
			direct = append(direct, g)
		}
	}

	inv.mu.Lock()
	defer inv.mu.Unlock()
	gr, err := inv.graph()
	if err != nil {
		return err
	}
	resolved, err := inv.resolve(d, direct, gr)
	if err != nil {
		return err
	}
	if _, ok := inv.hosts[h.Name]; ok {
		inv.detach(h.Name)
	} else {
		inv.order = append(inv.order, h.Name)
	}
	for _, g := range direct {
		inv.group(g, "").addHost(h.Name)
	}
	*h = *resolved
	d.host = h
	inv.hosts[h.Name] = d
	return nil
}

// Remove drops the host called name, for example after a cloud call deleted
// it, and reports whether it was there.
func (inv *Inventory) Remove(name string) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if _, ok := inv.hosts[name]; !ok {
		return false
	}
	inv.detach(name)
	delete(inv.hosts, name)
	inv.order = slices.DeleteFunc(inv.order, func(n string) bool { return n == name })
	return true
}

// detach removes a host from every group's direct members.
func (inv *Inventory) detach(name string) {
	for _, g := range inv.groups {
		g.hosts = slices.DeleteFunc(g.hosts, func(n string) bool { return n == name })
	}
}

// Merge adds other's hosts, groups and vars to inv, as when -i is given more
// than once. Where both define a var, other wins; a host or group both
// declare becomes one. Every host is resolved afresh, so *Host values taken
// from inv before are stale afterwards. On error inv is unchanged.
func (inv *Inventory) Merge(other *Inventory) error {
	if other == inv {
		return nil
	}
	other.mu.RLock()
	src := other.snapshot()
	other.mu.RUnlock()

	inv.mu.Lock()
	defer inv.mu.Unlock()
	merged := New()
	merged.absorb(inv)
	merged.absorb(src)
	if err := merged.resolveAll(); err != nil {
		return err
	}
	inv.order, inv.hosts = merged.order, merged.hosts
	inv.groupSeq, inv.groups = merged.groupSeq, merged.groups
	inv.warnings = merged.warnings
	inv.varsDirs, inv.playbookDir, inv.adjacent = merged.varsDirs, merged.playbookDir, merged.adjacent
	inv.notes, inv.noteOrder = merged.notes, merged.noteOrder
	return nil
}

// snapshot copies what absorb reads, so that other's lock need not be held
// while inv's is.
func (inv *Inventory) snapshot() *Inventory {
	c := New()
	c.absorb(inv)
	return c
}

// absorb copies src's declarations into inv without sharing anything that
// inv may later change.
func (inv *Inventory) absorb(src *Inventory) {
	for _, name := range src.groupSeq {
		sg := src.groups[name]
		g := inv.group(name, sg.at)
		if g.at == "" {
			g.at = sg.at
		}
		g.vars.merge(sg.vars)
		for _, c := range sg.children {
			g.addChild(c)
		}
		for _, h := range sg.hosts {
			g.addHost(h)
		}
	}
	for _, name := range src.order {
		sd := src.hosts[name]
		d, exists := inv.hosts[name]
		if !exists {
			d = &hostDecl{name: name, fixed: sd.fixed, fixedAt: sd.fixedAt, vars: sd.vars.clone()}
			inv.hosts[name] = d
			inv.order = append(inv.order, name)
			continue
		}
		// Replace rather than edit: d may be shared with a Limit view.
		nd := &hostDecl{name: name, fixed: d.fixed, fixedAt: d.fixedAt, vars: d.vars.clone()}
		nd.vars.merge(sd.vars)
		overrideFixed(&nd.fixed, sd.fixed)
		if sd.fixedAt != "" {
			nd.fixedAt = sd.fixedAt
		}
		inv.hosts[name] = nd
	}
	inv.warnings = append(inv.warnings, src.warnings...)
	for _, d := range src.varsDirs {
		if !slices.Contains(inv.varsDirs, d) {
			inv.varsDirs = append(inv.varsDirs, d)
		}
	}
	if src.playbookDir != "" {
		inv.playbookDir = src.playbookDir
	}
}

func overrideFixed(dst *Host, src Host) {
	if src.Address != "" {
		dst.Address = src.Address
	}
	if src.Port != 0 {
		dst.Port = src.Port
	}
	if src.User != "" {
		dst.User = src.User
	}
	if src.Key != "" {
		dst.Key = src.Key
	}
	if src.Connection != "" {
		dst.Connection = src.Connection
	}
	if src.Become {
		dst.Become = true
	}
	if src.BecomeUser != "" {
		dst.BecomeUser = src.BecomeUser
	}
	if src.BecomeMethod != "" {
		dst.BecomeMethod = src.BecomeMethod
	}
	if src.ConnectTimeout != 0 {
		dst.ConnectTimeout = src.ConnectTimeout
	}
	if src.SSH.ProxyCommand != "" || src.SSH.ProxyJump != "" || len(src.SSH.UserKnownHostsFiles) > 0 || src.SSH.StrictHostKeyChecking != "" {
		dst.SSH = src.SSH
	}
}

// Limit returns a new inventory holding only the hosts that match pattern,
// as for --limit. Every group is kept, so a plan naming a group whose hosts
// were all limited away gets no hosts rather than an error. The Hosts are
// shared with inv.
func (inv *Inventory) Limit(pattern string) (*Inventory, error) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	keep, err := inv.match(pattern)
	if err != nil {
		return nil, err
	}
	out := &Inventory{
		hosts:    map[string]*hostDecl{},
		groups:   map[string]*groupDecl{},
		groupSeq: slices.Clone(inv.groupSeq),
		warnings: slices.Clone(inv.warnings),
		varsDirs: inv.varsDirs, playbookDir: inv.playbookDir, adjacent: maps.Clone(inv.adjacent),
	}
	// Warnings about hosts limited away are not this inventory's.
	for _, msg := range inv.noteOrder {
		for _, h := range inv.notes[msg] {
			if keep[h] {
				out.note(h, msg)
			}
		}
	}
	for _, name := range inv.order {
		if keep[name] {
			out.order = append(out.order, name)
			out.hosts[name] = inv.hosts[name]
		}
	}
	for name, g := range inv.groups {
		ng := *g
		ng.children = slices.Clone(g.children)
		ng.hosts = slices.DeleteFunc(slices.Clone(g.hosts), func(h string) bool { return !keep[h] })
		out.groups[name] = &ng
	}
	return out, nil
}

// graph is the group hierarchy, computed from the declarations.
type graph struct {
	parents  map[string][]string
	depth    map[string]int
	priority map[string]int
	direct   map[string][]string // host -> groups it is a direct member of
}

// graph checks the hierarchy for loops and computes what variable
// precedence needs: Ansible applies group vars by (depth, priority, name).
func (inv *Inventory) graph() (*graph, error) {
	gr := &graph{
		parents:  map[string][]string{},
		depth:    map[string]int{All: 0},
		priority: map[string]int{},
		direct:   map[string][]string{},
	}
	for _, name := range inv.groupSeq {
		g := inv.groups[name]
		if err := checkName("group", name); err != nil {
			return nil, fmt.Errorf("%s%v", prefix(g.at), err)
		}
		for _, c := range g.children {
			if c == All {
				return nil, fmt.Errorf("%sgroup %q cannot have %q as a child", prefix(g.at), name, All)
			}
			if _, ok := inv.groups[c]; !ok {
				return nil, fmt.Errorf("%sgroup %q has undeclared child group %q", prefix(g.at), name, c)
			}
			gr.parents[c] = append(gr.parents[c], name)
		}
		for _, h := range g.hosts {
			gr.direct[h] = append(gr.direct[h], name)
		}
		gr.priority[name] = 1
		if v, ok := g.vars.vals["ansible_group_priority"]; ok {
			p, err := toInt(v)
			if err != nil {
				return nil, fmt.Errorf("%sgroup %q: ansible_group_priority: %v", prefix(g.vars.at["ansible_group_priority"]), name, err)
			}
			gr.priority[name] = p
		}
	}

	// Depth-first walk with colours to find loops and longest depth at once.
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case active:
			i := slices.Index(path, name)
			loop := append(slices.Clone(path[i:]), name)
			return fmt.Errorf("%sgroup %q is its own descendant: %s", prefix(inv.groups[name].at), name, strings.Join(loop, " > "))
		case done:
			return nil
		}
		state[name] = active
		path = append(path, name)
		d := 1
		for _, p := range gr.parents[name] {
			if p == All {
				continue
			}
			if err := visit(p); err != nil {
				return err
			}
			d = max(d, gr.depth[p]+1)
		}
		path = path[:len(path)-1]
		state[name] = done
		gr.depth[name] = d
		return nil
	}
	for _, name := range inv.groupSeq {
		if name == All {
			continue
		}
		if err := visit(name); err != nil {
			return nil, err
		}
	}
	return gr, nil
}

// resolveAll recomputes every host's view after loading or merging.
func (inv *Inventory) resolveAll() error {
	gr, err := inv.graph()
	if err != nil {
		return err
	}
	inv.resetNotes()
	for _, name := range inv.order {
		d := inv.hosts[name]
		h, err := inv.resolve(d, gr.direct[name], gr)
		if err != nil {
			return err
		}
		d.host = h
	}
	return nil
}

// resolve computes a host's groups, merged vars and connection fields from
// its declaration and the groups it is a direct member of.
func (inv *Inventory) resolve(d *hostDecl, direct []string, gr *graph) (*Host, error) {
	member := map[string]bool{}
	var climb func(string)
	climb = func(g string) {
		if member[g] || g == All {
			return
		}
		member[g] = true
		for _, p := range gr.parents[g] {
			climb(p)
		}
	}
	for _, g := range direct {
		climb(g)
	}
	// As in Ansible, a host is "ungrouped" exactly when it is in no other group.
	delete(member, Ungrouped)
	if len(member) == 0 {
		member[Ungrouped] = true
	}
	groups := slices.Sorted(maps.Keys(member))

	// Groups apply shallower before deeper; groups at the same depth go by
	// ansible_group_priority, then name (Ansible's sort_groups).
	depth := func(g string) int {
		if v, ok := gr.depth[g]; ok {
			return v
		}
		return 1 // a group Add has not created yet
	}
	prio := func(g string) int {
		if v, ok := gr.priority[g]; ok {
			return v
		}
		return 1
	}
	ordered := slices.Clone(groups)
	sort.SliceStable(ordered, func(i, j int) bool {
		a, b := ordered[i], ordered[j]
		if c := cmp.Compare(depth(a), depth(b)); c != 0 {
			return c < 0
		}
		if c := cmp.Compare(prio(a), prio(b)); c != 0 {
			return c < 0
		}
		return a < b
	})
	levels, err := inv.levels(d, ordered)
	if err != nil {
		return nil, err
	}

	h := &Host{Name: d.name, Groups: groups, Vars: map[string]any{}}
	for _, l := range levels {
		maps.Copy(h.Vars, l.vals)
	}
	if err := inv.applyConnVars(h, levels); err != nil {
		return nil, err
	}
	overrideFixed(h, d.fixed)
	if d.fixed.Connection != "" {
		c, err := normalizeConnection(d.fixed.Connection)
		if err != nil {
			return nil, fmt.Errorf("%shost %q: %v", prefix(d.fixedAt), d.name, err)
		}
		h.Connection = c
	}
	if d.fixed.Port < 0 || d.fixed.Port > 65535 {
		return nil, fmt.Errorf("%shost %q: port %d out of range 1-65535", prefix(d.fixedAt), d.name, d.fixed.Port)
	}
	if h.Address == "" {
		h.Address = d.name
	}
	if h.Connection == "" {
		h.Connection = "ssh"
	}
	return h, nil
}

// levels lists the host's var sources, lowest precedence first, in Ansible's
// order (VariableManager.get_vars with the default VARIABLE_PRECEDENCE):
//
//	the inventory files' vars of all, then of the host's other groups;
//	group_vars/all beside each inventory source, then beside the playbook;
//	group_vars/GROUP beside each source, then beside the playbook;
//	the inventory files' vars of the host;
//	host_vars/HOST beside each source, then beside the playbook.
func (inv *Inventory) levels(d *hostDecl, groups []string) ([]varSet, error) {
	// ansible_group_priority in an inventory file orders groups; Ansible
	// does not keep it as a var.
	fileVars := func(g *groupDecl) varSet {
		if _, ok := g.vars.vals["ansible_group_priority"]; !ok {
			return g.vars
		}
		c := g.vars.clone()
		delete(c.vals, "ansible_group_priority")
		return c
	}
	levels := []varSet{fileVars(inv.groups[All])}
	for _, g := range groups {
		if gd, ok := inv.groups[g]; ok {
			levels = append(levels, fileVars(gd))
		}
	}
	dirs := slices.Clone(inv.varsDirs)
	if inv.playbookDir != "" {
		dirs = append(dirs, inv.playbookDir)
	}
	add := func(dir, kind, name string) error {
		v, err := inv.adjacentVars(dir, kind, name)
		if err == nil && len(v.vals) > 0 {
			levels = append(levels, v)
		}
		return err
	}
	for _, dir := range dirs {
		if err := add(dir, "group_vars", All); err != nil {
			return nil, err
		}
	}
	for _, dir := range dirs {
		for _, g := range groups {
			if err := add(dir, "group_vars", g); err != nil {
				return nil, err
			}
		}
	}
	levels = append(levels, d.vars)
	for _, dir := range dirs {
		if err := add(dir, "host_vars", d.name); err != nil {
			return nil, err
		}
	}
	return levels, nil
}

// prefix turns a location into an error prefix, "" when it is unknown.
func prefix(at string) string {
	if at == "" {
		return "inventory: "
	}
	return at + ": "
}
