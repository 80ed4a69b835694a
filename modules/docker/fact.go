package docker

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/orch-dev/orch/modules"
)

// FactName is the registered name of the shared docker fact: what the
// host's Docker Engine says of containers (by name) and images (by
// reference), read for all of a host's docker.container tasks at once.
const FactName = "docker"

// Keys of the fact are also the effects of the tasks that change them, so
// the engine re-checks a later task of the same container.
const (
	containerPrefix = "docker:container/"
	imagePrefix     = "docker:image/"
)

// Socket is the Engine API socket the curl fallback talks to.
const Socket = "/var/run/docker.sock"

func init() { modules.RegisterFact(FactName, fact{}) }

// ContainerKey is the fact key, and the effect, of a container name.
func ContainerKey(name string) modules.FactKey {
	return modules.FactKey{Fact: FactName, Key: containerPrefix + name}
}

// ImageKey is the fact key of an image reference.
func ImageKey(ref string) modules.FactKey {
	return modules.FactKey{Fact: FactName, Key: imagePrefix + ref}
}

// Client says how the host's engine is reached: "docker" (the CLI), "curl"
// (the Engine API on Socket) or "" (neither is installed).
type Client string

// containerFact is the fact of one container name; C is nil when the
// engine has no container of that name.
type containerFact struct {
	Client Client
	C      *container
}

// imageFact is the fact of one image reference; I is nil when the image is
// not on the host.
type imageFact struct {
	Client Client
	I      *image
}

// container is the part of the Engine API's container JSON (GET
// /containers/NAME/json, or `docker container inspect`) that is compared.
type container struct {
	ID    string `json:"Id"`
	Name  string // "/NAME"
	Image string // the image ID it runs
	State struct {
		Status  string
		Running bool
	}
	Config struct {
		Image  string // the reference it was created from
		Env    []string
		Labels map[string]string
		Cmd    []string
	}
	HostConfig struct {
		PortBindings map[string][]portBinding
		Binds        []string
	}
	NetworkSettings struct {
		Networks map[string]json.RawMessage
	}
}

type portBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string
}

// image is the part of the Engine API's image JSON that is compared.
type image struct {
	ID          string `json:"Id"`
	RepoTags    []string
	RepoDigests []string
	Config      struct {
		Env    []string
		Labels map[string]string
		Cmd    []string
	}
}

type fact struct{}

// Script inspects every container and image in one docker CLI call each
// (`--format '{{json .}}'` prints one Engine API object per line, then the
// names it could not find), or, without the CLI, asks the Engine API on
// Socket with curl, one object per line too. Its sections are "#client
// NAME", the container lines, "#images", the image lines.
func (fact) Script(keys []string) string {
	names, refs := splitKeys(keys)
	var b strings.Builder
	b.WriteString("if command -v docker >/dev/null 2>&1; then\necho '#client docker'\n")
	if len(names) > 0 {
		b.WriteString("docker container inspect --format '{{json .}}' --" + quoteAll(names) + " 2>&1\n")
	}
	b.WriteString("echo '#images'\n")
	if len(refs) > 0 {
		b.WriteString("docker image inspect --format '{{json .}}' --" + quoteAll(refs) + " 2>&1\n")
	}
	b.WriteString("elif command -v curl >/dev/null 2>&1; then\necho '#client curl'\n")
	get := func(path string) {
		fmt.Fprintf(&b, "curl -sS --unix-socket %s %s 2>&1; echo\n", Socket, modules.Quote("http://localhost"+path))
	}
	for _, n := range names {
		get("/containers/" + n + "/json")
	}
	b.WriteString("echo '#images'\n")
	for _, r := range refs {
		get("/images/" + r + "/json")
	}
	b.WriteString("else\necho '#client none'\necho '#images'\nfi\n")
	return b.String()
}

func splitKeys(keys []string) (names, refs []string) {
	for _, k := range keys {
		if n, ok := strings.CutPrefix(k, containerPrefix); ok {
			names = append(names, n)
		} else if r, ok := strings.CutPrefix(k, imagePrefix); ok {
			refs = append(refs, r)
		}
	}
	return names, refs
}

func quoteAll(words []string) string {
	var b strings.Builder
	for _, w := range words {
		b.WriteString(" " + modules.Quote(w))
	}
	return b.String()
}

// Parse reads the script's output. A line that is neither an object nor a
// "no such" answer (the daemon is down, the socket is not ours to use) is
// an error rather than "absent".
func (fact) Parse(out []byte, keys []string) (map[string]any, error) {
	lines := strings.Split(string(out), "\n")
	var client Client
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "#client ") {
		return nil, fmt.Errorf("docker facts: unexpected output %q", strings.TrimSpace(string(out)))
	}
	client = Client(strings.TrimPrefix(lines[0], "#client "))
	if client == "none" {
		client = ""
	}
	containers := map[string]*container{}
	var images []*image
	inImages := false
	for _, l := range lines[1:] {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
		case l == "#images":
			inImages = true
		case strings.HasPrefix(l, "{"):
			if err := parseObject(l, inImages, containers, &images); err != nil {
				return nil, err
			}
		case isNotFound(l):
		default:
			return nil, engineError(l)
		}
	}
	res := make(map[string]any, len(keys))
	for _, k := range keys {
		if n, ok := strings.CutPrefix(k, containerPrefix); ok {
			res[k] = containerFact{Client: client, C: containers[n]}
		} else if r, ok := strings.CutPrefix(k, imagePrefix); ok {
			res[k] = imageFact{Client: client, I: findImage(images, r)}
		}
	}
	return res, nil
}

func parseObject(line string, isImage bool, containers map[string]*container, images *[]*image) error {
	var probe struct {
		ID      string `json:"Id"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(line), &probe); err != nil {
		return fmt.Errorf("docker facts: %v in %.200q", err, line)
	}
	switch {
	case probe.ID == "" && isNotFound(probe.Message):
		return nil
	case probe.ID == "":
		return engineError(probe.Message)
	case isImage:
		var img image
		if err := json.Unmarshal([]byte(line), &img); err != nil {
			return fmt.Errorf("docker facts: image %s: %v", probe.ID, err)
		}
		*images = append(*images, &img)
	default:
		var c container
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return fmt.Errorf("docker facts: container %s: %v", probe.ID, err)
		}
		containers[strings.TrimPrefix(c.Name, "/")] = &c
	}
	return nil
}

func isNotFound(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "no such container") || strings.Contains(m, "no such image")
}

// engineError explains an answer that is not about a container or image.
func engineError(msg string) error {
	hint := ""
	if strings.Contains(strings.ToLower(msg), "permission denied") {
		hint = " (the user cannot use the Docker socket: become=True, or the docker group)"
	}
	return fmt.Errorf("docker: %s%s", msg, hint)
}

// findImage returns the image a reference names: by ID (full, or a prefix
// of at least 12 hex digits), by tag or by digest, as the engine resolves
// references ("app" is "app:latest", "docker.io/library/app" is "app").
func findImage(images []*image, ref string) *image {
	want := familiar(ref)
	for _, img := range images {
		id := strings.TrimPrefix(img.ID, "sha256:")
		if short := strings.TrimPrefix(ref, "sha256:"); len(short) >= 12 && isHex(short) && strings.HasPrefix(id, short) {
			return img
		}
		for _, r := range append(append([]string(nil), img.RepoTags...), img.RepoDigests...) {
			if familiar(r) == want {
				return img
			}
		}
	}
	return nil
}

// familiar normalizes a reference the way the engine shows references:
// without the default registry and namespace, with the default tag.
func familiar(ref string) string {
	name, digest, hasDigest := strings.Cut(ref, "@")
	slash := strings.LastIndex(name, "/")
	if colon := strings.LastIndex(name, ":"); colon > slash {
		if hasDigest {
			name = name[:colon] // a digest names the image; the tag is decoration
		}
	} else if !hasDigest {
		name += ":latest"
	}
	for _, p := range []string{"docker.io/", "index.docker.io/"} {
		name = strings.TrimPrefix(name, p)
	}
	if rest, ok := strings.CutPrefix(name, "library/"); ok && !strings.Contains(rest, "/") {
		name = rest
	}
	if hasDigest {
		return name + "@" + digest
	}
	return name
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return s != ""
}
