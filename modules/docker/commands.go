package docker

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/orch-dev/orch/modules"
)

// commands writes the apply snippets for one way of reaching the engine.
type commands interface {
	create(c *Container, start bool) string // create, connect the further networks, and start if asked
	start(name string) string
	stop(name string) string
	remove(name string) string // stop (gracefully) and remove
}

func commander(cl Client) commands {
	if cl == "curl" {
		return apiCommands{}
	}
	return cliCommands{}
}

// cliCommands drive the docker CLI.
type cliCommands struct{}

func (cliCommands) create(c *Container, start bool) string {
	q := modules.Quote
	var b strings.Builder
	b.WriteString("docker create --name " + q(c.Name))
	if len(c.Networks) > 0 {
		b.WriteString(" --network " + q(c.Networks[0]))
	}
	for _, p := range c.ports {
		b.WriteString(" -p " + q(p.cli()))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		b.WriteString(" -e " + q(k+"="+c.Env[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		b.WriteString(" --label " + q(k+"="+c.Labels[k]))
	}
	for _, v := range c.Volumes {
		b.WriteString(" -v " + q(v))
	}
	b.WriteString(" -- " + q(c.Image))
	for _, w := range c.cmd {
		b.WriteString(" " + q(w))
	}
	b.WriteString(" >/dev/null\n")
	for _, n := range c.Networks[min(1, len(c.Networks)):] {
		fmt.Fprintf(&b, "docker network connect %s %s\n", q(n), q(c.Name))
	}
	if start {
		fmt.Fprintf(&b, "docker start %s >/dev/null\n", q(c.Name))
	}
	return b.String()
}

func (cliCommands) start(name string) string {
	return "docker start " + modules.Quote(name) + " >/dev/null\n"
}

func (cliCommands) stop(name string) string {
	return "docker stop " + modules.Quote(name) + " >/dev/null\n"
}

func (cliCommands) remove(name string) string {
	q := modules.Quote(name)
	return "docker stop " + q + " >/dev/null\ndocker rm " + q + " >/dev/null\n"
}

// cli renders the port as docker run's -p takes it.
func (p port) cli() string {
	s := p.Cont + "/" + p.Proto
	switch {
	case p.IP != "" && strings.Contains(p.IP, ":"):
		return "[" + p.IP + "]:" + p.Host + ":" + s
	case p.IP != "":
		return p.IP + ":" + p.Host + ":" + s
	case p.Host != "":
		return p.Host + ":" + s
	}
	return s
}

// apiCommands call the Engine API on Socket with curl. _orch_dapi fails,
// printing the engine's answer, unless the status is 2xx or 304 (a start
// or stop that was not needed).
type apiCommands struct{}

const apiHelper = `_orch_dapi() { # METHOD PATH [JSON]
  _orch_m=$1 _orch_p=$2; shift 2
  [ $# -eq 0 ] || set -- -H 'Content-Type: application/json' --data-binary "$1"
  _orch_r=$(curl -sS --unix-socket ` + Socket + ` -X "$_orch_m" "$@" -w ' %{http_code}' "http://localhost$_orch_p")
  case ${_orch_r##* } in 2??|304) ;; *) printf 'docker API %s %s: %s\n' "$_orch_m" "$_orch_p" "$_orch_r" >&2; return 1 ;; esac
}
`

func apiCall(method, path string, body any) string {
	line := "_orch_dapi " + method + " " + modules.Quote(path)
	if body != nil {
		b, _ := json.Marshal(body)
		line += " " + modules.Quote(string(b))
	}
	return line + "\n"
}

func (apiCommands) create(c *Container, start bool) string {
	env := []string{}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		env = append(env, k+"="+c.Env[k])
	}
	exposed := map[string]struct{}{}
	bindings := map[string][]portBinding{}
	for _, p := range c.ports {
		key := p.Cont + "/" + p.Proto
		exposed[key] = struct{}{}
		bindings[key] = append(bindings[key], portBinding{HostIP: p.IP, HostPort: p.Host})
	}
	host := map[string]any{"PortBindings": bindings}
	if len(c.Volumes) > 0 {
		host["Binds"] = c.Volumes
	}
	if len(c.Networks) > 0 {
		host["NetworkMode"] = c.Networks[0]
	}
	labels := c.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	body := map[string]any{"Image": c.Image, "Env": env, "Labels": labels, "ExposedPorts": exposed, "HostConfig": host}
	if c.cmd != nil {
		body["Cmd"] = c.cmd
	}
	s := apiHelper + apiCall("POST", "/containers/create?name="+c.Name, body)
	for _, n := range c.Networks[min(1, len(c.Networks)):] {
		s += apiCall("POST", "/networks/"+n+"/connect", map[string]string{"Container": c.Name})
	}
	if start {
		s += apiCall("POST", "/containers/"+c.Name+"/start", nil)
	}
	return s
}

func (apiCommands) start(name string) string {
	return apiHelper + apiCall("POST", "/containers/"+name+"/start", nil)
}

func (apiCommands) stop(name string) string {
	return apiHelper + apiCall("POST", "/containers/"+name+"/stop", nil)
}

func (apiCommands) remove(name string) string {
	return apiHelper + apiCall("POST", "/containers/"+name+"/stop", nil) + apiCall("DELETE", "/containers/"+name, nil)
}

// splitWords splits a command string into words as sh does, without
// expansions: single quotes keep everything, double quotes keep all but
// \" \\ \$ and \`, a backslash outside quotes keeps the next character.
func splitWords(s string) ([]string, error) {
	words := []string{}
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case ch == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case ch == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			inWord = true
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
