package docker

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/testkit/moduletest"
)

// task returns a validated docker.container task.
func task(t *testing.T, c *Container) *Container {
	t.Helper()
	if c.State == "" {
		c.State = "running"
	}
	moduletest.Validate(t, c, &modules.Env{})
	return c
}

func TestApplyTwiceOnTheRealEngine(t *testing.T) {
	v1, _ := testImages(t)
	front, back := network(t, "front"), network(t, "back")
	name := prefix + "-web"
	c := task(t, &Container{Name: name, Image: v1, Env: map[string]string{"A": "1"}, Labels: map[string]string{"stack": "blue"},
		Ports: []string{"127.0.0.1::80", "127.0.0.1::53/udp"}, Networks: []string{front, back}})
	moduletest.ApplyTwice(t, c)
	in := inspect(t, name)
	if in == nil || !in.Running {
		t.Fatalf("container %s is not running: %+v", name, in)
	}
	if !slices.Contains(in.Env, "A=1") || !slices.Contains(in.Env, "FOO=img") || in.Labels["stack"] != "blue" || in.Labels["from.image"] != "v1" {
		t.Errorf("env %v, labels %v", in.Env, in.Labels)
	}
	if slices.Sort(in.Nets); !slices.Equal(in.Nets, []string{back, front}) {
		t.Errorf("networks %v, want %s and %s", in.Nets, front, back)
	}
	if resp := moduletest.Check(t, c, false); resp.Reason != "container "+name+" is running, as wanted" {
		t.Errorf("no-change reason %q", resp.Reason)
	}
}

func TestCheckModeChangesNothing(t *testing.T) {
	v1, _ := testImages(t)
	name := prefix + "-check"
	c := task(t, &Container{Name: name, Image: v1})
	if resp := moduletest.Check(t, c, true); !resp.Changed || resp.Reason != "create and start container "+name+" from "+v1 {
		t.Fatalf("check of a missing container: changed=%v %q", resp.Changed, resp.Reason)
	}
	if in := inspect(t, name); in != nil {
		t.Fatalf("checking created the container: %+v", in)
	}
	moduletest.Converge(t, c)
	before := inspect(t, name)
	c2 := task(t, &Container{Name: name, Image: v1, Env: map[string]string{"A": "2"}})
	if resp := moduletest.Check(t, c2, true); !resp.Changed || !strings.HasSuffix(resp.Reason, ": different env") {
		t.Fatalf("check of a changed env: changed=%v %q", resp.Changed, resp.Reason)
	}
	if after := inspect(t, name); after.ID != before.ID || slices.Contains(after.Env, "A=2") {
		t.Fatalf("checking changed the container: %+v, was %+v", after, before)
	}
}

func TestChangedConfigRecreatesExactlyOnce(t *testing.T) {
	v1, v2 := testImages(t)
	name := prefix + "-recreate"
	moduletest.ApplyTwice(t, task(t, &Container{Name: name, Image: v1, Env: map[string]string{"A": "1"}, Labels: map[string]string{"stack": "blue"}}))
	first := inspect(t, name).ID

	for _, step := range []struct {
		c          *Container
		reason     string
		diff       []string
		wantEnv    string
		wantLabels map[string]string
	}{
		{&Container{Name: name, Image: v1, Env: map[string]string{"A": "2"}, Labels: map[string]string{"stack": "blue"}},
			"recreate container " + name + ": different env", []string{"-env A=1\n", "+env A=2\n", "@@ env @@"}, "A=2", map[string]string{"stack": "blue"}},
		{&Container{Name: name, Image: v1, Env: map[string]string{"A": "2"}, Labels: map[string]string{"stack": "green"}},
			"recreate container " + name + ": different labels", []string{"-label stack=blue\n", "+label stack=green\n"}, "A=2", map[string]string{"stack": "green"}},
		{&Container{Name: name, Image: v2, Env: map[string]string{"A": "2"}, Labels: map[string]string{"stack": "green"}},
			"recreate container " + name + ": different image, labels", []string{"-label from.image=v1\n", "+label from.image=v2\n", "+image " + v2 + " ("}, "A=2", map[string]string{"stack": "green", "from.image": "v2"}},
		{&Container{Name: name, Image: v2, Env: map[string]string{"A": "2"}, Labels: map[string]string{"stack": "green"}, Command: "sh -c 'sleep 3600'"},
			"recreate container " + name + ": different command", []string{`+command ["sh","-c","sleep 3600"]` + "\n"}, "A=2", map[string]string{"stack": "green"}},
	} {
		before := inspect(t, name).ID
		c := task(t, step.c)
		res := moduletest.Converge(t, c)
		if !res.Changed || res.Check.Reason != step.reason {
			t.Fatalf("changed=%v, reason %q; want %q", res.Changed, res.Check.Reason, step.reason)
		}
		for _, d := range step.diff {
			if !strings.Contains(res.Check.Diff, d) {
				t.Errorf("diff lacks %q:\n%s", d, res.Check.Diff)
			}
		}
		after := inspect(t, name)
		if after.ID == before || after.ID == first || !after.Running {
			t.Errorf("%s: container %s was not recreated and started (id %s, was %s)", step.reason, name, after.ID, before)
		}
		if !slices.Contains(after.Env, step.wantEnv) {
			t.Errorf("env %v lacks %s", after.Env, step.wantEnv)
		}
		for k, v := range step.wantLabels {
			if after.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, after.Labels[k], v)
			}
		}
		// Exactly once: the next check finds nothing to do, and the
		// container is the one just made.
		if again := moduletest.Converge(t, c); again.Check.Changed || inspect(t, name).ID != after.ID {
			t.Fatalf("second converge after %q: %q", step.reason, again.Check.Reason)
		}
	}
}

func TestStoppedAndAbsentStates(t *testing.T) {
	v1, _ := testImages(t)
	name := prefix + "-states"
	run := task(t, &Container{Name: name, Image: v1})
	stop := task(t, &Container{Name: name, Image: v1, State: "stopped"})
	gone := task(t, &Container{Name: name, Image: v1, State: "absent"})

	// stopped creates a missing container without starting it.
	if res := moduletest.Converge(t, stop); !res.Changed || res.Check.Reason != "create (stopped) container "+name+" from "+v1 {
		t.Fatalf("stopped from absent: %q", res.Check.Reason)
	}
	if in := inspect(t, name); in == nil || in.Running {
		t.Fatalf("want a created, stopped container: %+v", in)
	}
	moduletest.ApplyTwice(t, run)
	id := inspect(t, name).ID
	if res := moduletest.Converge(t, stop); !res.Changed || res.Check.Reason != "stop container "+name {
		t.Fatalf("stop: %q", res.Check.Reason)
	}
	if in := inspect(t, name); in.Running || in.ID != id {
		t.Fatalf("want the same container, stopped: %+v", in)
	}
	if res := moduletest.Converge(t, stop); res.Check.Changed || res.Check.Reason != "container "+name+" is exited, as wanted" {
		t.Fatalf("stopped twice: %q", res.Check.Reason)
	}
	if res := moduletest.Converge(t, run); !res.Changed || res.Check.Reason != "start container "+name+" (exited)" || inspect(t, name).ID != id {
		t.Fatalf("start: %q", res.Check.Reason)
	}
	moduletest.ApplyTwice(t, gone)
	if in := inspect(t, name); in != nil {
		t.Fatalf("container still there: %+v", in)
	}
	if resp := moduletest.Check(t, gone, false); resp.Reason != "container "+name+" is absent" {
		t.Errorf("absent reason %q", resp.Reason)
	}
}

// TestEngineAPIFallback drives the engine with curl alone: the host's PATH
// has sh and curl but no docker CLI.
func TestEngineAPIFallback(t *testing.T) {
	v1, v2 := testImages(t)
	net := network(t, "api")
	name := prefix + "-api"
	t.Setenv("PATH", curlOnlyPath(t))
	c := task(t, &Container{Name: name, Image: v1, Env: map[string]string{"A": "1"}, Labels: map[string]string{"via": "api"},
		Ports: []string{"127.0.0.1::80"}, Networks: []string{net}, Command: []any{"sh", "-c", sleeper}})
	if fact := gatherFact(t, c); fact.Client != "curl" {
		t.Fatalf("client %q, want curl", fact.Client)
	}
	moduletest.ApplyTwice(t, c)
	first := inspect(t, name)
	if first == nil || !first.Running || !slices.Contains(first.Env, "A=1") || first.Labels["via"] != "api" || !slices.Equal(first.Nets, []string{net}) {
		t.Fatalf("container made through the API: %+v", first)
	}
	c2 := task(t, &Container{Name: name, Image: v2, Env: map[string]string{"A": "1"}, Labels: map[string]string{"via": "api"},
		Ports: []string{"127.0.0.1::80"}, Networks: []string{net}, Command: []any{"sh", "-c", sleeper}})
	if res := moduletest.Converge(t, c2); !res.Changed || res.Check.Reason != "recreate container "+name+": different image, labels" {
		t.Fatalf("recreate through the API: %q", res.Check.Reason)
	}
	if in := inspect(t, name); in.ID == first.ID || !in.Running {
		t.Fatalf("not recreated: %+v", in)
	}
	if res := moduletest.Converge(t, c2); res.Check.Changed {
		t.Fatalf("second converge: %q", res.Check.Reason)
	}
	moduletest.ApplyTwice(t, task(t, &Container{Name: name, Image: v2, State: "absent"}))
	if inspect(t, name) != nil {
		t.Fatal("not removed through the API")
	}
}

// gatherFact runs the docker fact for one container the way the engine
// does and returns it.
func gatherFact(t *testing.T, c *Container) containerFact {
	t.Helper()
	resp := moduletest.Check(t, c, false)
	if resp.Err != nil {
		t.Fatal(resp.Err)
	}
	keys := []string{}
	for _, k := range c.Facts() {
		keys = append(keys, k.Key)
	}
	sh := exec.Command("/bin/sh", "-s")
	sh.Stdin = strings.NewReader(modules.Prelude + fact{}.Script(keys))
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	vals, err := fact{}.Parse(out, keys)
	if err != nil {
		t.Fatal(err)
	}
	return vals[ContainerKey(c.Name).Key].(containerFact)
}

// TestVolumes binds a host folder into a container: apply twice changes
// once, the container sees the folder, and another mount recreates it.
func TestVolumes(t *testing.T) {
	v1, _ := testImages(t)
	dir := t.TempDir()
	name := prefix + "-vol"
	c := task(t, &Container{Name: name, Image: v1, Volumes: []string{dir + ":/data:ro"}})
	moduletest.ApplyTwice(t, c)
	if out := mustDocker(t, "container", "inspect", "--format", "{{json .HostConfig.Binds}}", name); out != `["`+dir+`:/data:ro"]` {
		t.Fatalf("binds %s", out)
	}
	c2 := task(t, &Container{Name: name, Image: v1, Volumes: []string{dir + ":/data"}})
	if resp := moduletest.Check(t, c2, true); !resp.Changed || !strings.HasSuffix(resp.Reason, ": different volumes") ||
		!strings.Contains(resp.Diff, "-volume "+dir+":/data:ro\n+volume "+dir+":/data\n") {
		t.Fatalf("check of another mount: %q\n%s", resp.Reason, resp.Diff)
	}
}
