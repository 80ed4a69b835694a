package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/orch-dev/orch/testkit/require"
)

// prefix names every docker object these tests make, so that concurrent
// test runs never collide and TestMain can remove what is left.
var prefix = fmt.Sprintf("orch-labtest-%d", os.Getpid())

// dockerBin is the docker CLI the tests themselves use, found before any
// test narrows PATH.
var dockerBin, _ = exec.LookPath("docker")

func TestMain(m *testing.M) {
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// cleanup removes the containers, networks and images of this process.
func cleanup() {
	if dockerBin == "" {
		return
	}
	if ids, _ := dockerOut("ps", "-aq", "--filter", "name=^"+prefix); ids != "" {
		dockerOut(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	if ids, _ := dockerOut("network", "ls", "-q", "--filter", "name=^"+prefix); ids != "" {
		dockerOut(append([]string{"network", "rm"}, strings.Fields(ids)...)...)
	}
	if refs, _ := dockerOut("images", "--format", "{{.Repository}}:{{.Tag}}", prefix+"-img"); refs != "" {
		dockerOut(append([]string{"rmi", "-f"}, strings.Fields(refs)...)...)
	}
}

func dockerOut(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(dockerBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerOut(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// needDocker skips (or, where ORCH_TEST_REQUIRE is set, fails) without a
// Docker engine.
func needDocker(t *testing.T) {
	t.Helper()
	if dockerBin == "" {
		require.Missing(t, "the docker CLI is not installed")
	}
	if _, err := dockerOut("info", "--format", "{{.ServerVersion}}"); err != nil {
		require.Missingf(t, "no Docker engine answers: %v", err)
	}
}

// sleeper is the image's command: sh as PID 1 ignores SIGTERM unless it
// traps it, and docker stop would then wait 10 seconds to kill it.
const sleeper = `trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done`

var images struct {
	once   sync.Once
	v1, v2 string
	err    error
}

// testImages imports two tiny images (busybox-static, no registry) that
// differ in a label: PREFIX-img:v1 and PREFIX-img:v2. Both set FOO=img
// and a CMD, so the tests see what the image itself brings.
func testImages(t *testing.T) (v1, v2 string) {
	t.Helper()
	needDocker(t)
	images.once.Do(func() {
		bb, err := exec.LookPath("busybox")
		if err != nil {
			images.err = fmt.Errorf("busybox is not installed (apt-get install busybox-static)")
			return
		}
		root := filepath.Join(os.TempDir(), prefix+"-rootfs")
		defer os.RemoveAll(root)
		os.MkdirAll(filepath.Join(root, "bin"), 0o755)
		data, err := os.ReadFile(bb)
		if err == nil {
			err = os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755)
		}
		for _, applet := range []string{"sh", "sleep", "cat", "env"} {
			if err == nil {
				err = os.Symlink("busybox", filepath.Join(root, "bin", applet))
			}
		}
		if err != nil {
			images.err = err
			return
		}
		cmd, _ := json.Marshal([]string{"sh", "-c", sleeper})
		for i, ref := range []*string{&images.v1, &images.v2} {
			*ref = fmt.Sprintf("%s-img:v%d", prefix, i+1)
			tar := exec.Command("tar", "-C", root, "-c", ".")
			imp := exec.Command(dockerBin, "import", "-c", "ENV FOO=img PATH=/bin", "-c", fmt.Sprintf("LABEL from.image=v%d", i+1),
				"-c", "CMD "+string(cmd), "-", *ref)
			pipe, _ := tar.StdoutPipe()
			imp.Stdin = pipe
			var errb bytes.Buffer
			imp.Stderr = &errb
			if err := tar.Start(); err != nil {
				images.err = err
				return
			}
			if err := imp.Run(); err != nil {
				images.err = fmt.Errorf("docker import: %v: %s", err, errb.String())
				return
			}
			tar.Wait()
		}
	})
	if images.err != nil {
		if strings.Contains(images.err.Error(), "not installed") {
			require.Missing(t, images.err.Error())
		}
		t.Fatal(images.err)
	}
	return images.v1, images.v2
}

// network creates a docker network for the test.
func network(t *testing.T, name string) string {
	t.Helper()
	name = prefix + "-" + name
	mustDocker(t, "network", "create", name)
	t.Cleanup(func() { dockerOut("network", "rm", name) })
	return name
}

// inspected is what the tests read back from the engine.
type inspected struct {
	ID      string `json:"Id"`
	Running bool
	Env     []string
	Labels  map[string]string
	Nets    []string
}

func inspect(t *testing.T, name string) *inspected {
	t.Helper()
	out, err := dockerOut("container", "inspect", "--format",
		`{"Id":{{json .Id}},"Running":{{.State.Running}},"Env":{{json .Config.Env}},"Labels":{{json .Config.Labels}},"Nets":[{{range $k, $v := .NetworkSettings.Networks}}{{json $k}},{{end}}""]}`, name)
	if err != nil {
		if strings.Contains(err.Error(), "No such container") {
			return nil
		}
		t.Fatal(err)
	}
	var in inspected
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	in.Nets = in.Nets[:len(in.Nets)-1]
	return &in
}
