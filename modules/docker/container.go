// Package docker is the docker.container module: containers on a host's
// Docker Engine, created, recreated, started, stopped and removed so that
// they match the plan, with their state read in the host's probe exchange.
package docker

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/orch-dev/orch/modules"
)

func init() {
	modules.Register(modules.Info{ID: "docker.container", New: func() any { return new(Container) }, Doc: `Manages a container on the host's Docker Engine: running, stopped or absent.

The container is compared with the wanted one: its image (by image ID, so a
tag that now names a new build counts as a change), env and labels (on top
of the image's own), ports, networks, and command (the image's CMD when
command=None). Any difference recreates it: stop, remove, create, connect
the further networks, start; the reason names the fields that differ and
--diff shows their old and new values. A container that matches is only
started or stopped, as state says; state="stopped" creates a missing
container without starting it. Stopping is docker stop's: SIGTERM, then
SIGKILL after 10 seconds.

Facts are read in the host's probe exchange, for all of its docker.container
tasks at once (one docker container inspect and one docker image inspect),
and changes run in its apply exchange, so a rerun that changes nothing
stays one exchange per host, whatever else the role does. That is why the
module drives the docker CLI on the host, which speaks the Engine API to the
local socket, instead of calling the API from the controller: the API would
cost a round trip per request, outside the host's batched exchanges. A host
without the CLI is driven with curl --unix-socket /var/run/docker.sock
against the Engine API; that path does not pull, so the image must be on
the host. The user must be allowed to use the socket (become=True, or the
docker group).

ports are "[IP:]HOST:CONTAINER[/tcp|udp]" ("127.0.0.1:8080:80",
"5353:53/udp") or "CONTAINER[/proto]" (a port of the engine's choosing).
The first of networks is the container's network, the others are connected
before it starts; [] means the engine's default bridge network. command is
a list (the argv) or a string split into words as sh would split it
(quotes and backslashes; no expansion). volumes are bind mounts of host
paths, "/srv/app/conf:/etc/app" or "/srv/app/conf:/etc/app:ro", compared
as a set with the container's.`})
}

// Container is the argument struct of docker.container().
type Container struct {
	Name     string            `arg:"name,required" doc:"the container's name"`
	Image    string            `arg:"image,required" doc:"the image reference, e.g. \"app:v2\""`
	State    string            `arg:"state" default:"running" doc:"running | stopped | absent"`
	Ports    []string          `arg:"ports" doc:"published ports: \"[IP:]HOST:CONTAINER[/proto]\""`
	Env      map[string]string `arg:"env" doc:"environment variables, on top of the image's"`
	Labels   map[string]string `arg:"labels" doc:"labels, on top of the image's"`
	Networks []string          `arg:"networks" doc:"networks to attach, the first as the container's network"`
	Command  any               `arg:"command" doc:"the command: a list of words or a string; None keeps the image's CMD"`
	Volumes  []string          `arg:"volumes" doc:"bind mounts: \"HOST_PATH:CONTAINER_PATH[:ro]\""`

	cmd   []string // Command as words; nil means the image's
	ports []port   // Ports parsed, in order
}

var (
	_ modules.Task       = (*Container)(nil)
	_ modules.Validator  = (*Container)(nil)
	_ modules.FactReader = (*Container)(nil)
	_ modules.Effector   = (*Container)(nil)
	_ modules.Describer  = (*Container)(nil)
)

func (c *Container) Describe() string { return "docker.container " + c.Name }

// Effects is the container's state key, the one its fact reads: a later
// task of the same container is rechecked once this one changed it.
func (c *Container) Effects() []string { return []string{ContainerKey(c.Name).StateKey()} }

// Facts asks for the container and, unless it is to go, its image.
func (c *Container) Facts() []modules.FactKey {
	if c.State == "absent" {
		return []modules.FactKey{ContainerKey(c.Name)}
	}
	return []modules.FactKey{ContainerKey(c.Name), ImageKey(c.Image)}
}

// Probe is empty: everything comes from the shared docker fact.
func (c *Container) Probe(modules.ProbeRequest) string { return "" }

var (
	validName  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	validImage = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.:/@-]*$`)
)

func (c *Container) Validate(*modules.Env) error {
	if !validName.MatchString(c.Name) {
		return fmt.Errorf("name %q is not a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)", c.Name)
	}
	if !validImage.MatchString(c.Image) {
		return fmt.Errorf("image %q is not an image reference", c.Image)
	}
	switch c.State {
	case "running", "stopped", "absent":
	default:
		return fmt.Errorf("state %q is not one of running, stopped, absent", c.State)
	}
	c.ports = nil
	for _, spec := range c.Ports {
		p, err := parsePort(spec)
		if err != nil {
			return err
		}
		c.ports = append(c.ports, p)
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env: %q is not a variable name", k)
		}
	}
	for k := range c.Labels {
		if k == "" {
			return fmt.Errorf("labels: an empty label name")
		}
	}
	seen := map[string]bool{}
	for _, n := range c.Networks {
		if !validName.MatchString(n) || seen[n] {
			return fmt.Errorf("networks: %q is not a network name, or is given twice", n)
		}
		seen[n] = true
	}
	seenVol := map[string]bool{}
	for _, v := range c.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || !strings.HasPrefix(parts[0], "/") || !strings.HasPrefix(parts[1], "/") ||
			(len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw") || seenVol[parts[1]] {
			return fmt.Errorf("volumes: %q is not \"HOST_PATH:CONTAINER_PATH[:ro]\" with absolute paths, or mounts a path twice", v)
		}
		seenVol[parts[1]] = true
	}
	cmd, err := commandWords(c.Command)
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	c.cmd = cmd
	return nil
}

// commandWords reads command: None, a list of strings, or a string split
// into words as sh would.
func commandWords(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return splitWords(x)
	case []any:
		words := []string{}
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want a list of strings, got a %T in it", e)
			}
			words = append(words, s)
		}
		return words, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, got %T", v)
}

// port is one published port.
type port struct {
	IP, Host, Cont, Proto string // IP and Host "" for any
}

// key is the form ports are compared in.
func (p port) key() string { return p.IP + ":" + p.Host + ":" + p.Cont + "/" + p.Proto }

// parsePort reads "[IP:]HOST:CONTAINER[/proto]" or "CONTAINER[/proto]".
func parsePort(spec string) (port, error) {
	bad := fmt.Errorf("ports: %q is not \"[IP:]HOST:CONTAINER[/tcp|udp|sctp]\"", spec)
	rest, proto, hasProto := strings.Cut(spec, "/")
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return port{}, bad
	}
	p := port{Proto: proto}
	if strings.HasPrefix(rest, "[") { // [2001:db8::1]:8080:80
		end := strings.Index(rest, "]:")
		if end < 0 {
			return port{}, bad
		}
		p.IP, rest = rest[1:end], rest[end+2:]
		if !strings.Contains(rest, ":") {
			return port{}, bad
		}
	}
	parts := strings.Split(rest, ":")
	if p.IP == "" && len(parts) == 3 {
		p.IP, parts = parts[0], parts[1:]
	}
	switch len(parts) {
	case 1:
		p.Cont = parts[0]
	case 2:
		p.Host, p.Cont = parts[0], parts[1]
	default:
		return port{}, bad
	}
	if !validPort(p.Cont) || p.Host != "" && !validPort(p.Host) {
		return port{}, bad
	}
	if p.IP == "0.0.0.0" {
		p.IP = ""
	}
	return p, nil
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == s
}

// portsOf renders a container's port bindings as port.key does.
func portsOf(c *container) []string {
	out := []string{}
	for spec, bindings := range c.HostConfig.PortBindings {
		cont, proto, _ := strings.Cut(spec, "/")
		for _, b := range bindings {
			ip := b.HostIP
			if ip == "0.0.0.0" {
				ip = ""
			}
			out = append(out, port{IP: ip, Host: b.HostPort, Cont: cont, Proto: proto}.key())
		}
	}
	slices.Sort(out)
	return out
}

// field is one compared part of the config that differs: its old and new
// values as diff lines.
type field struct {
	name     string
	old, new []string
}

// compare lists the fields in which the container differs from the wanted
// one, in a fixed order.
func (c *Container) compare(got *container, img *image) []field {
	var out []field
	add := func(name string, old, new []string) {
		if !slices.Equal(old, new) {
			out = append(out, field{name, old, new})
		}
	}
	running := []string{got.Config.Image + " (" + shortID(got.Image) + ")"}
	if img == nil {
		// The image is not on the host (create will pull it): what it
		// brings of env, labels and command is unknown until then.
		add("image", running, []string{c.Image + " (not on the host)"})
	} else {
		if got.Image != img.ID {
			add("image", running, []string{c.Image + " (" + shortID(img.ID) + ")"})
		}
		wantEnv, wantLabels, wantCmd := envMap(img.Config.Env), maps.Clone(img.Config.Labels), c.cmd
		if wantLabels == nil {
			wantLabels = map[string]string{}
		}
		maps.Copy(wantEnv, c.Env)
		maps.Copy(wantLabels, c.Labels)
		if wantCmd == nil {
			wantCmd = img.Config.Cmd
		}
		add("env", pairs(envMap(got.Config.Env)), pairs(wantEnv))
		add("labels", pairs(got.Config.Labels), pairs(wantLabels))
		add("command", []string{words(got.Config.Cmd)}, []string{words(wantCmd)})
	}
	add("ports", portsOf(got), c.portKeys())
	add("networks", slices.Sorted(maps.Keys(got.NetworkSettings.Networks)), c.wantNetworks())
	add("volumes", volumeKeys(got.HostConfig.Binds), volumeKeys(c.Volumes))
	return out
}

func (c *Container) wantNetworks() []string {
	if len(c.Networks) == 0 {
		return []string{"bridge"}
	}
	return slices.Sorted(slices.Values(c.Networks))
}

func (c *Container) portKeys() []string {
	out := []string{}
	for _, p := range c.ports {
		out = append(out, p.key())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// volumeKeys renders bind mounts in the form they are compared in: ":rw"
// is the default, so it is left out.
func volumeKeys(binds []string) []string {
	out := []string{}
	for _, b := range binds {
		out = append(out, strings.TrimSuffix(b, ":rw"))
	}
	slices.Sort(out)
	return out
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// pairs renders a map as sorted "K=V" lines; empty maps and nil compare equal.
func pairs(m map[string]string) []string {
	out := []string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

func words(argv []string) string {
	if argv == nil {
		argv = []string{}
	}
	b, _ := json.Marshal(argv)
	return string(b)
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func (c *Container) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	cf, ok := req.Facts[ContainerKey(c.Name)].(containerFact)
	if !ok {
		resp.Err = fmt.Errorf("no docker facts gathered for container %s", c.Name)
		return
	}
	if cf.Client == "" {
		resp.Err = fmt.Errorf("neither the docker CLI nor curl is installed on the host")
		return
	}
	cmds := commander(cf.Client)
	got := cf.C
	if c.State == "absent" {
		if got == nil {
			resp.Reason = "container " + c.Name + " is absent"
			return
		}
		resp.Changed, resp.Reason = true, fmt.Sprintf("remove container %s (%s)", c.Name, got.State.Status)
		resp.Diff = fmt.Sprintf("--- container %s (%s)\n+++ container %s (absent)\n", c.Name, got.State.Status, c.Name)
		resp.Apply = cmds.remove(c.Name)
		return
	}
	imf, _ := req.Facts[ImageKey(c.Image)].(imageFact)
	if imf.I == nil && cf.Client == "curl" {
		resp.Err = fmt.Errorf("image %s is not on the host, and without the docker CLI it is not pulled", c.Image)
		return
	}
	start := c.State == "running"
	if got == nil {
		verb := "create and start"
		if !start {
			verb = "create (stopped)"
		}
		resp.Changed, resp.Reason = true, fmt.Sprintf("%s container %s from %s", verb, c.Name, c.Image)
		resp.Diff = fmt.Sprintf("--- container %s (absent)\n+++ container %s (%s)\n", c.Name, c.Name, c.State)
		resp.Apply = cmds.create(c, start)
		return
	}
	if diffs := c.compare(got, imf.I); len(diffs) > 0 {
		names := make([]string, len(diffs))
		var d strings.Builder
		for i, f := range diffs {
			names[i] = f.name
		}
		fmt.Fprintf(&d, "--- container %s (%s)\n+++ container %s (%s)\n@@ %s @@\n", c.Name, got.State.Status, c.Name, c.State, strings.Join(names, ", "))
		for _, f := range diffs {
			writeFieldDiff(&d, f)
		}
		resp.Changed = true
		resp.Reason = fmt.Sprintf("recreate container %s: different %s", c.Name, strings.Join(names, ", "))
		resp.Diff = d.String()
		resp.Apply = cmds.remove(c.Name) + cmds.create(c, start)
		return
	}
	switch {
	case start && !got.State.Running:
		resp.Changed, resp.Reason = true, fmt.Sprintf("start container %s (%s)", c.Name, got.State.Status)
		resp.Diff = fmt.Sprintf("--- container %s (%s)\n+++ container %s (running)\n", c.Name, got.State.Status, c.Name)
		resp.Apply = cmds.start(c.Name)
	case !start && got.State.Running:
		resp.Changed, resp.Reason = true, "stop container "+c.Name
		resp.Diff = fmt.Sprintf("--- container %s (running)\n+++ container %s (stopped)\n", c.Name, c.Name)
		resp.Apply = cmds.stop(c.Name)
	default:
		resp.Reason = fmt.Sprintf("container %s is %s, as wanted", c.Name, got.State.Status)
	}
}

// writeFieldDiff writes the lines of a field that are not in both values.
func writeFieldDiff(b *strings.Builder, f field) {
	label := strings.TrimSuffix(f.name, "s") // env, label, port, network, command, image, volume
	for _, o := range f.old {
		if !slices.Contains(f.new, o) {
			fmt.Fprintf(b, "-%s %s\n", label, o)
		}
	}
	for _, n := range f.new {
		if !slices.Contains(f.old, n) {
			fmt.Fprintf(b, "+%s %s\n", label, n)
		}
	}
}
