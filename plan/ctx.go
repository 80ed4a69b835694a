package plan

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/orch-dev/orch/internal/starvalue"
	"github.com/orch-dev/orch/inventory"
)

// contextValue is the ctx passed to main.
func (rs *runState) contextValue() starlark.Value {
	args := starlark.NewDict(len(rs.opts.Args))
	for _, k := range sortedKeys(rs.opts.Args) {
		args.SetKey(starlark.String(k), starlark.String(rs.opts.Args[k]))
	}
	vars, err := starvalue.FromGo(rs.opts.Vars)
	if err != nil || rs.opts.Vars == nil {
		vars = starlark.NewDict(0)
	}
	var event starlark.Value = starlark.None
	if e := rs.opts.Event; e != nil {
		payload, err := starvalue.FromGo(e.Payload)
		if err != nil {
			payload = starlark.None
		}
		event = starlarkstruct.FromStringDict(starlark.String("event"), starlark.StringDict{
			"name": starlark.String(e.Name), "delivery": starlark.String(e.Delivery), "payload": payload})
	}
	args.Freeze()
	vars.Freeze()
	event.Freeze()
	return starlarkstruct.FromStringDict(starlark.String("ctx"), starlark.StringDict{
		"event":         event,
		"hosts":         starlark.NewBuiltin("ctx.hosts", rs.hosts),
		"apply":         starlark.NewBuiltin("ctx.apply", rs.apply),
		"step":          starlark.NewBuiltin("ctx.step", rs.stepBuiltin),
		"guard":         starlark.NewBuiltin("ctx.guard", rs.guardBuiltin),
		"wait_for_host": starlark.NewBuiltin("ctx.wait_for_host", rs.waitForHost),
		"add_host":      starlark.NewBuiltin("ctx.add_host", rs.addHost),
		"args":          args,
		"vars":          vars,
		"check":         starlark.Bool(rs.opts.Check),
		"run_id":        starlark.String(rs.opts.RunID),
	})
}

// notInRole refuses ctx calls from a role reached through a closure: roles
// only record tasks, and an apply inside an apply would wait on itself.
func notInRole(th *starlark.Thread, b *starlark.Builtin) error {
	if th.Local(localRole) != nil {
		return fmt.Errorf("%s: cannot be called inside a role; roles only record tasks", b.Name())
	}
	return nil
}

func (rs *runState) hosts(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	pattern := "all"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "pattern?", &pattern); err != nil {
		return nil, err
	}
	hosts, err := rs.runner.Hosts(pattern)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return rs.hostList(hosts), nil
}

func (rs *runState) apply(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		targets starlark.Value
		role    starlark.Callable
		serial  starlark.Value = starlark.MakeInt(0)
		maxFail starlark.Value = starlark.MakeInt(0)
		become  starlark.Value = starlark.None
	)
	if err := notInRole(th, b); err != nil {
		return nil, err
	}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "targets", &targets, "role", &role,
		"serial?", &serial, "max_fail?", &maxFail, "become?", &become); err != nil {
		return nil, err
	}
	var hosts []*inventory.Host
	if pattern, ok := targets.(starlark.String); ok {
		var err error
		if hosts, err = rs.runner.Hosts(string(pattern)); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
	} else {
		var err error
		if hosts, err = hostList(targets); err != nil {
			return nil, fmt.Errorf("%s: targets: %w", b.Name(), err)
		}
	}
	n, err := countArg(serial, len(hosts), true)
	if err != nil {
		return nil, fmt.Errorf("%s: serial: %w", b.Name(), err)
	}
	mf, err := countArg(maxFail, len(hosts), false)
	if err != nil {
		return nil, fmt.Errorf("%s: max_fail: %w", b.Name(), err)
	}
	role.(starlark.Value).Freeze() // role threads run in parallel
	name := role.Name()
	req := ApplyRequest{Role: name, Hosts: hosts, Serial: n, MaxFail: mf}
	if become != starlark.None {
		if req.Become, err = becomeArg(become); err != nil {
			return nil, fmt.Errorf("%s: become: %w", b.Name(), err)
		}
	}
	req.Eval = func(ctx context.Context, h *inventory.Host) ([]Task, error) {
		rth, done := rs.thread(ctx, "role "+name+" on "+h.Name, h.Name)
		defer done()
		state := &roleState{env: rs.env(h)}
		rth.SetLocal(localRole, state)
		if _, err := starlark.Call(rth, role, starlark.Tuple{rs.hostValue(h)}, nil); err != nil {
			return nil, posError(err)
		}
		return state.tasks, nil
	}
	res, err := rs.runner.Apply(contextFromThread(th), req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", b.Name(), name, err)
	}
	return starlarkstruct.FromStringDict(starlark.String("apply_result"), starlark.StringDict{
		"ok":          rs.hostList(res.OK),
		"changed":     rs.hostList(res.Changed),
		"failed":      rs.hostList(res.Failed),
		"unreachable": rs.hostList(res.Unreachable),
		"not_started": rs.hostList(res.NotStarted),
	}), nil
}

// countArg reads serial= or max_fail=: a count, or a percentage of the
// hosts as a string ("25%"). A serial percentage rounds up (at least one
// host a batch); a max_fail percentage rounds down, as Ansible's
// max_fail_percentage does.
func countArg(v starlark.Value, hosts int, roundUp bool) (int, error) {
	switch x := v.(type) {
	case starlark.Int:
		n, ok := x.Int64()
		if !ok || n < 0 || n > math.MaxInt32 {
			return 0, fmt.Errorf("want a count of at least 0, got %s", x)
		}
		return int(n), nil
	case starlark.String:
		num, ok := strings.CutSuffix(strings.TrimSpace(string(x)), "%")
		pct, err := strconv.ParseFloat(num, 64)
		if !ok || err != nil || pct < 0 || pct > 100 {
			return 0, fmt.Errorf("want a count or a percentage like \"25%%\", got %q", string(x))
		}
		f := float64(hosts) * pct / 100
		if roundUp {
			return max(1, int(math.Ceil(f))), nil
		}
		return int(math.Floor(f + 1e-9)), nil
	}
	return 0, fmt.Errorf("want a count or a percentage string, got %s", v.Type())
}

// waitForHost is ctx.wait_for_host(host, timeout="5m", rebooted=False).
func (rs *runState) waitForHost(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		hv       *hostValue
		timeout  = "5m"
		rebooted bool
	)
	if err := notInRole(th, b); err != nil {
		return nil, err
	}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "host", &hv, "timeout?", &timeout, "rebooted?", &rebooted); err != nil {
		return nil, err
	}
	d, err := time.ParseDuration(timeout)
	if err != nil || d <= 0 {
		return nil, fmt.Errorf("%s: timeout %q is not a duration like \"5m\"", b.Name(), timeout)
	}
	if rs.opts.Check {
		return starlarkstruct.FromStringDict(starlark.String("wait_result"), starlark.StringDict{
			"boot_id": starlark.String(""), "rebooted": starlark.Bool(rebooted)}), nil
	}
	res, err := rs.runner.WaitHost(contextFromThread(th), hv.host, d, rebooted)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", b.Name(), hv.host.Name, err)
	}
	return starlarkstruct.FromStringDict(starlark.String("wait_result"), starlark.StringDict{
		"boot_id": starlark.String(res.BootID), "rebooted": starlark.Bool(res.Rebooted)}), nil
}

// addHost is ctx.add_host(name, vars={}, groups=[], address="", new=False):
// a host that joins the run's inventory, such as a jail the plan starts
// (vars {"connection": "jail", "jail_host": "bsd1", "jail_name": "blue"}).
// vars are its own vars, read as inventory vars are (connection, ssh_host,
// ansible_*, become, ...), and it inherits the vars of its groups. A host
// of the same name is replaced. new=True says the plan creates the machine
// itself: under --check, where nothing is created, the host is a
// placeholder (address "(known after create)"), whose roles are reported
// as would-change with no connection.
func (rs *runState) addHost(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name, address string
		vars          = starlark.NewDict(0)
		groups        = starlark.NewList(nil)
		isNew         bool
	)
	if err := notInRole(th, b); err != nil {
		return nil, err
	}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "vars?", &vars, "groups?", &groups,
		"address?", &address, "new?", &isNew); err != nil {
		return nil, err
	}
	h := &inventory.Host{Name: name, Address: address, Vars: map[string]any{}}
	for _, kv := range vars.Items() {
		k, ok := kv[0].(starlark.String)
		if !ok {
			return nil, fmt.Errorf("%s %s: vars: want string keys, got %s", b.Name(), name, kv[0].Type())
		}
		v, err := starvalue.ToGo(kv[1])
		if err != nil {
			return nil, fmt.Errorf("%s %s: vars[%q]: %w", b.Name(), name, string(k), err)
		}
		h.Vars[string(k)] = v
	}
	for i := range groups.Len() {
		g, ok := groups.Index(i).(starlark.String)
		if !ok {
			return nil, fmt.Errorf("%s %s: groups: want strings, got %s", b.Name(), name, groups.Index(i).Type())
		}
		h.Groups = append(h.Groups, string(g))
	}
	if isNew && rs.opts.Check {
		h.Address = inventory.NotCreated
	}
	if err := rs.runner.AddHost(h, ""); err != nil {
		return nil, fmt.Errorf("%s %s: %w", b.Name(), name, err)
	}
	return rs.hostValue(h), nil
}

func (rs *runState) hostList(hosts []*inventory.Host) *starlark.List {
	l := make([]starlark.Value, len(hosts))
	for i, h := range hosts {
		l[i] = rs.hostValue(h)
	}
	return starlark.NewList(l)
}

// hostList accepts one host or a list of hosts.
func hostList(v starlark.Value) ([]*inventory.Host, error) {
	if h, ok := v.(*hostValue); ok {
		return []*inventory.Host{h.host}, nil
	}
	iter, ok := v.(starlark.Iterable)
	if !ok {
		return nil, fmt.Errorf("want a host, a list of hosts or a pattern, got %s", v.Type())
	}
	var out []*inventory.Host
	it := iter.Iterate()
	defer it.Done()
	var x starlark.Value
	for it.Next(&x) {
		h, ok := x.(*hostValue)
		if !ok {
			return nil, fmt.Errorf("want hosts, got an element of type %s", x.Type())
		}
		out = append(out, h.host)
	}
	return out, nil
}

// toStarlark converts a controller-side call's result.
func (rs *runState) toStarlark(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case *inventory.Host:
		return rs.hostValue(x), nil
	case []*inventory.Host:
		return rs.hostList(x), nil
	}
	return starvalue.FromGo(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
