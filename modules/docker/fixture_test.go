package docker

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
)

var update = flag.Bool("update", false, "recapture testdata/facts from this machine's Docker engine")

// The fixtures are the docker fact's output, captured from a real engine
// (go test -run TestCaptureFacts -update), for these keys: a container
// that was created with ports, env, labels and a network but never
// started; a running one; a missing one; the image they use, and a
// missing image.
var fixtureKeys = []string{
	ContainerKey("fixture-web").Key, ContainerKey("fixture-run").Key, ContainerKey("fixture-gone").Key,
	ImageKey("fixture-img:v1").Key, ImageKey("fixture-img:v9").Key,
}

func TestCaptureFacts(t *testing.T) {
	if !*update {
		t.Skip("run with -update to recapture the fixtures")
	}
	v1, _ := testImages(t)
	net := network(t, "fixture")
	mustDocker(t, "create", "--name", prefix+"-web", "--network", net, "-p", "127.0.0.1:18080:80", "-p", "5353:53/udp",
		"-e", "A=1", "--label", "stack=blue", v1)
	mustDocker(t, "run", "-d", "--name", prefix+"-run", v1)
	keys := strings.Join(fixtureKeys, "\n")
	keys = strings.ReplaceAll(keys, "fixture-", prefix+"-")
	for client, path := range map[string]string{"cli": os.Getenv("PATH"), "curl": curlOnlyPath(t)} {
		sh := exec.Command("/bin/sh", "-s")
		sh.Env = append(os.Environ(), "PATH="+path)
		sh.Stdin = strings.NewReader(modules.Prelude + fact{}.Script(strings.Split(keys, "\n")))
		out, _ := sh.CombinedOutput()
		out = []byte(strings.ReplaceAll(string(out), prefix+"-", "fixture-"))
		if err := os.WriteFile(filepath.Join("testdata", "facts", client+".txt"), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustDocker(t, "rm", "-f", prefix+"-web", prefix+"-run")
}

// curlOnlyPath is a PATH with sh and curl but no docker CLI.
func curlOnlyPath(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, tool := range []string{"sh", "curl"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// fixtureFacts parses a captured fact output.
func fixtureFacts(t *testing.T, client string) map[modules.FactKey]any {
	t.Helper()
	out, err := os.ReadFile(filepath.Join("testdata", "facts", client+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := fact{}.Parse(out, fixtureKeys)
	if err != nil {
		t.Fatal(err)
	}
	facts := map[modules.FactKey]any{}
	for k, v := range vals {
		facts[modules.FactKey{Fact: FactName, Key: k}] = v
	}
	return facts
}

func TestFactParsesCapturedOutput(t *testing.T) {
	for _, client := range []string{"cli", "curl"} {
		t.Run(client, func(t *testing.T) {
			facts := fixtureFacts(t, client)
			web := facts[ContainerKey("fixture-web")].(containerFact)
			want := Client("docker")
			if client == "curl" {
				want = "curl"
			}
			if web.Client != want || web.C == nil {
				t.Fatalf("fixture-web: %+v", web)
			}
			if web.C.State.Status != "created" || web.C.Config.Image != "fixture-img:v1" || web.C.Config.Labels["stack"] != "blue" {
				t.Errorf("fixture-web: %+v", web.C)
			}
			if got := strings.Join(portsOf(web.C), " "); got != "127.0.0.1:18080:80/tcp :5353:53/udp" {
				t.Errorf("ports %s", got)
			}
			if run := facts[ContainerKey("fixture-run")].(containerFact); run.C == nil || !run.C.State.Running {
				t.Errorf("fixture-run: %+v", run.C)
			}
			if gone := facts[ContainerKey("fixture-gone")].(containerFact); gone.C != nil {
				t.Errorf("fixture-gone: %+v", gone.C)
			}
			img := facts[ImageKey("fixture-img:v1")].(imageFact)
			if img.I == nil || img.I.ID != web.C.Image || img.I.Config.Env[0] != "FOO=img" {
				t.Errorf("image v1: %+v", img.I)
			}
			if v9 := facts[ImageKey("fixture-img:v9")].(imageFact); v9.I != nil {
				t.Errorf("image v9: %+v", v9.I)
			}
		})
	}
}

func TestFactErrorsAreNotAbsence(t *testing.T) {
	keys := []string{ContainerKey("web").Key, ImageKey("app:v1").Key}
	for _, tc := range []struct{ out, want string }{
		{"#client docker\nCannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n#images\n",
			"docker: Cannot connect to the Docker daemon"},
		{"#client docker\npermission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock\n#images\n",
			"(the user cannot use the Docker socket: become=True, or the docker group)"},
		{"#client curl\ncurl: (7) Couldn't connect to server\n\n#images\n", "docker: curl: (7) Couldn't connect to server"},
		{"#client curl\n{\"message\":\"client version 1.99 is too new\"}\n#images\n", "docker: client version 1.99 is too new"},
		{"sh: 1: weird\n", "docker facts: unexpected output"},
	} {
		if _, err := (fact{}).Parse([]byte(tc.out), keys); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.out, err, tc.want)
		}
	}
	vals, err := fact{}.Parse([]byte("#client none\n#images\n"), keys)
	if err != nil {
		t.Fatal(err)
	}
	var resp modules.CheckResponse
	c := &Container{Name: "web", Image: "app:v1", State: "running"}
	c.Check(modules.CheckRequest{Facts: map[modules.FactKey]any{ContainerKey("web"): vals[keys[0]], ImageKey("app:v1"): vals[keys[1]]}}, &resp)
	if resp.Err == nil || resp.Err.Error() != "neither the docker CLI nor curl is installed on the host" {
		t.Errorf("no client: %v", resp.Err)
	}
}

// TestCommandsFromFixtures maps arguments and captured facts to the
// decision and the exact commands, for both clients.
func TestCommandsFromFixtures(t *testing.T) {
	web := func() *Container {
		return &Container{Name: "fixture-web", Image: "fixture-img:v1", State: "stopped", Env: map[string]string{"A": "1"},
			Labels: map[string]string{"stack": "blue"}, Ports: []string{"127.0.0.1:18080:80", "5353:53/udp"}, Networks: []string{"fixture-fixture"}}
	}
	for _, tc := range []struct {
		name, client string
		c            *Container
		changed      bool
		reason       string
		apply        string
		diff         string
	}{
		{name: "matches", client: "cli", c: web(), reason: "container fixture-web is created, as wanted"},
		{name: "start", client: "cli", c: with(web(), func(c *Container) { c.State = "running" }), changed: true,
			reason: "start container fixture-web (created)", apply: "docker start fixture-web >/dev/null\n"},
		{name: "stop", client: "cli", c: &Container{Name: "fixture-run", Image: "fixture-img:v1", State: "stopped"}, changed: true,
			reason: "stop container fixture-run", apply: "docker stop fixture-run >/dev/null\n"},
		{name: "running matches", client: "curl", c: &Container{Name: "fixture-run", Image: "fixture-img:v1", State: "running"},
			reason: "container fixture-run is running, as wanted"},
		{name: "recreate", client: "cli", c: with(web(), func(c *Container) { c.Env["A"] = "it's 2"; c.Ports = c.Ports[:1]; c.State = "running" }),
			changed: true, reason: "recreate container fixture-web: different env, ports",
			apply: "docker stop fixture-web >/dev/null\ndocker rm fixture-web >/dev/null\n" +
				"docker create --name fixture-web --network fixture-fixture -p 127.0.0.1:18080:80/tcp -e 'A=it'\\''s 2' --label stack=blue -- fixture-img:v1 >/dev/null\n" +
				"docker start fixture-web >/dev/null\n",
			diff: "--- container fixture-web (created)\n+++ container fixture-web (running)\n@@ env, ports @@\n-env A=1\n+env A=it's 2\n-port :5353:53/udp\n"},
		{name: "create", client: "cli", c: &Container{Name: "fixture-gone", Image: "fixture-img:v1", State: "running", Networks: []string{"a", "b"},
			Ports: []string{"[::1]:8053:53/udp", "80"}, Command: "sh -c 'echo \"hi there\"'"},
			changed: true, reason: "create and start container fixture-gone from fixture-img:v1",
			apply: "docker create --name fixture-gone --network a -p '[::1]:8053:53/udp' -p 80/tcp -- fixture-img:v1 sh -c 'echo \"hi there\"' >/dev/null\n" +
				"docker network connect b fixture-gone\ndocker start fixture-gone >/dev/null\n"},
		{name: "remove", client: "cli", c: with(web(), func(c *Container) { c.State = "absent" }), changed: true,
			reason: "remove container fixture-web (created)", apply: "docker stop fixture-web >/dev/null\ndocker rm fixture-web >/dev/null\n"},
		{name: "absent", client: "curl", c: &Container{Name: "fixture-gone", Image: "x", State: "absent"}, reason: "container fixture-gone is absent"},
		{name: "pull", client: "cli", c: &Container{Name: "fixture-run", Image: "fixture-img:v9", State: "running"}, changed: true,
			reason: "recreate container fixture-run: different image",
			apply:  "docker stop fixture-run >/dev/null\ndocker rm fixture-run >/dev/null\ndocker create --name fixture-run -- fixture-img:v9 >/dev/null\ndocker start fixture-run >/dev/null\n"},
		{name: "api create", client: "curl", c: &Container{Name: "fixture-gone", Image: "fixture-img:v1", State: "running", Networks: []string{"a", "b"},
			Ports: []string{"127.0.0.1:8080:80"}, Env: map[string]string{"B": "2", "A": "1"}, Command: []any{"sleep", "1"}},
			changed: true, reason: "create and start container fixture-gone from fixture-img:v1",
			apply: apiHelper +
				`_orch_dapi POST '/containers/create?name=fixture-gone' '{"Cmd":["sleep","1"],"Env":["A=1","B=2"],"ExposedPorts":{"80/tcp":{}},"HostConfig":{"NetworkMode":"a","PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]}},"Image":"fixture-img:v1","Labels":{}}'` + "\n" +
				`_orch_dapi POST /networks/b/connect '{"Container":"fixture-gone"}'` + "\n" +
				"_orch_dapi POST /containers/fixture-gone/start\n"},
		{name: "api remove", client: "curl", c: &Container{Name: "fixture-run", Image: "x", State: "absent"}, changed: true,
			reason: "remove container fixture-run (running)",
			apply:  apiHelper + "_orch_dapi POST /containers/fixture-run/stop\n_orch_dapi DELETE /containers/fixture-run\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.Validate(&modules.Env{}); err != nil {
				t.Fatal(err)
			}
			var resp modules.CheckResponse
			tc.c.Check(modules.CheckRequest{Facts: fixtureFacts(t, tc.client)}, &resp)
			if resp.Err != nil {
				t.Fatal(resp.Err)
			}
			if resp.Changed != tc.changed || resp.Reason != tc.reason {
				t.Errorf("changed=%v %q; want changed=%v %q", resp.Changed, resp.Reason, tc.changed, tc.reason)
			}
			if resp.Apply != tc.apply {
				t.Errorf("apply:\n%s\nwant:\n%s", resp.Apply, tc.apply)
			}
			if tc.diff != "" && resp.Diff != tc.diff {
				t.Errorf("diff:\n%s\nwant:\n%s", resp.Diff, tc.diff)
			}
		})
	}
	// Without the CLI nothing pulls, so a missing image is an error up front.
	var resp modules.CheckResponse
	c := &Container{Name: "fixture-run", Image: "fixture-img:v9", State: "running"}
	c.Validate(&modules.Env{})
	c.Check(modules.CheckRequest{Facts: fixtureFacts(t, "curl")}, &resp)
	if resp.Err == nil || !strings.Contains(resp.Err.Error(), "image fixture-img:v9 is not on the host") {
		t.Errorf("missing image over the API: %v", resp.Err)
	}
}

func with(c *Container, f func(*Container)) *Container { f(c); return c }

func TestParsePortAndWords(t *testing.T) {
	for spec, want := range map[string]string{
		"80": "::80/tcp", "8080:80": ":8080:80/tcp", "127.0.0.1:8080:80/udp": "127.0.0.1:8080:80/udp",
		"0.0.0.0:53:53/udp": ":53:53/udp", "[2001:db8::1]:443:443": "2001:db8::1:443:443/tcp", "127.0.0.1::80": "127.0.0.1::80/tcp",
	} {
		p, err := parsePort(spec)
		if err != nil || p.key() != want {
			t.Errorf("parsePort(%q) = %q, %v; want %q", spec, p.key(), err, want)
		}
	}
	for _, bad := range []string{"", "80/icmp", "x:80", "1:2:3:4", "70000", "[::1]80", "080"} {
		if _, err := parsePort(bad); err == nil {
			t.Errorf("parsePort(%q) accepted", bad)
		}
	}
	for s, want := range map[string]string{
		`sleep 3600`: `["sleep","3600"]`, `sh -c 'echo "$HOME"; exit 1'`: `["sh","-c","echo \"$HOME\"; exit 1"]`,
		`a\ b "c \"d\" \x" ''`: `["a b","c \"d\" \\x",""]`, "  ": `[]`,
	} {
		w, err := splitWords(s)
		if err != nil || words(w) != want {
			t.Errorf("splitWords(%q) = %s, %v; want %s", s, words(w), err, want)
		}
	}
	if _, err := splitWords(`echo "oops`); err == nil {
		t.Error("an unterminated quote was accepted")
	}
}

func TestFindImageResolvesReferencesAsTheEngineDoes(t *testing.T) {
	img := &image{ID: "sha256:0a9e5340f2b7bea5c8173911ad50e37f9c8f1de0a2c840a5c7b66a9a0bdd474a", RepoTags: []string{"busybox:latest", "reg.example:5000/team/app:v2"},
		RepoDigests: []string{"busybox@sha256:abcd"}}
	for ref, found := range map[string]bool{
		"busybox": true, "busybox:latest": true, "docker.io/library/busybox": true, "library/busybox:latest": true,
		"busybox@sha256:abcd": true, "busybox:1.36@sha256:abcd": true, "0a9e5340f2b7": true, "sha256:0a9e5340f2b7bea5c817": true,
		"reg.example:5000/team/app:v2": true, "reg.example:5000/team/app": false, "busybox:1.36": false, "0a9e5340f2": false, "other": false,
	} {
		if got := findImage([]*image{img}, ref) != nil; got != found {
			t.Errorf("findImage(%q) found=%v, want %v", ref, got, found)
		}
	}
}

func TestValidateRejectsBadArguments(t *testing.T) {
	for _, tc := range []struct {
		c    Container
		want string
	}{
		{Container{Name: "-x", Image: "a", State: "running"}, `name "-x" is not a container name`},
		{Container{Name: "x", Image: "a b", State: "running"}, `image "a b" is not an image reference`},
		{Container{Name: "x", Image: "a", State: "paused"}, `state "paused" is not one of running, stopped, absent`},
		{Container{Name: "x", Image: "a", State: "running", Ports: []string{"80:http"}}, `ports: "80:http" is not`},
		{Container{Name: "x", Image: "a", State: "running", Env: map[string]string{"A=B": "1"}}, `env: "A=B" is not a variable name`},
		{Container{Name: "x", Image: "a", State: "running", Networks: []string{"n", "n"}}, `networks: "n" is not a network name, or is given twice`},
		{Container{Name: "x", Image: "a", State: "running", Command: []any{"sleep", int64(1)}}, "command: want a list of strings, got a int64 in it"},
		{Container{Name: "x", Image: "a", State: "running", Command: "echo 'oops"}, "command: unterminated '"},
	} {
		if err := tc.c.Validate(&modules.Env{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}
