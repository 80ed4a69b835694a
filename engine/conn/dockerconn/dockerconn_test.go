package dockerconn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/orch-dev/orch/testkit/require"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orch-dev/orch/engine/conn/dockerconn"
	"github.com/orch-dev/orch/lab/image"
)

// container is a throwaway container of the lab image shared by the tests,
// or "" when no docker engine is available.
var container, skipReason string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := exec.CommandContext(ctx, "docker", "info").Run(); err != nil {
		skipReason = "no docker engine (docker info failed)"
		return m.Run()
	}
	tag, err := image.Ensure(ctx, func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockerconn tests: cannot build the lab image:", err)
		return 1
	}
	name := fmt.Sprintf("orch-dockerconn-test-%d", os.Getpid())
	out, err := exec.CommandContext(ctx, "docker", "run", "-d", "--rm", "--name", name, "--network", "none",
		"--label", "dev.orch.test=dockerconn", tag, "sleep", "infinity").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dockerconn tests: docker run: %v: %s\n", err, out)
		return 1
	}
	container = name
	defer exec.Command("docker", "rm", "-f", name).Run()
	return m.Run()
}

func dial(t *testing.T) *dockerconn.Conn {
	t.Helper()
	if container == "" {
		require.Missing(t, skipReason)
	}
	c, err := dockerconn.Dial(context.Background(), container, dockerconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestExec(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	res, err := c.Exec(ctx, `echo "out $(hostname -s >/dev/null && echo ok)"; echo err >&2; exit 3`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Stdout); got != "out ok\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := string(res.Stderr); got != "err\n" {
		t.Errorf("stderr = %q", got)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code = %d, want 3", res.ExitCode)
	}

	res, err = c.Exec(ctx, "tr a-z A-Z; printf '%s' done", strings.NewReader("hello 'quoted' $HOME\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(res.Stdout), "HELLO 'QUOTED' $HOME\ndone"; got != want {
		t.Errorf("stdin round trip = %q, want %q", got, want)
	}

	// Binary output bigger than one stream frame comes back intact.
	res, err = c.Exec(ctx, "head -c 300000 /dev/zero | tr '\\0' x", nil)
	if err != nil || len(res.Stdout) != 300000 || res.Stdout[299999] != 'x' {
		t.Fatalf("large output: %d bytes, %v", len(res.Stdout), err)
	}

	// A script that exits without reading its input still succeeds.
	res, err = c.Exec(ctx, "exit 0", bytes.NewReader(make([]byte, 1<<20)))
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("unread stdin: %+v %v", res, err)
	}
	if got := c.Exchanges(); got != 4 {
		t.Errorf("exchanges = %d, want 4", got)
	}
}

func TestExecLongScript(t *testing.T) {
	c := dial(t)
	script := "x='" + strings.Repeat("a", 200<<10) + "'\necho ${#x}; cat"
	res, err := c.Exec(context.Background(), script, strings.NewReader("in"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(res.Stdout), fmt.Sprintf("%d\nin", 200<<10); got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func TestWriteFile(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	path := "/tmp/write-test/it's here.conf"
	if _, err := c.Exec(ctx, "mkdir -p /tmp/write-test", nil); err != nil {
		t.Fatal(err)
	}
	before := c.Exchanges()
	for _, content := range []string{"first\n", "second, longer\x00binary\n"} {
		if err := c.WriteFile(ctx, path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		res, err := c.Exec(ctx, "f='/tmp/write-test/it'\\''s here.conf'; cat \"$f\"; stat -c ' %a' \"$f\"; ls -A /tmp/write-test | wc -l", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(res.Stdout), content+" 640\n1\n"; got != want {
			t.Errorf("after WriteFile: %q, want %q", got, want)
		}
	}
	if got := c.Exchanges() - before; got != 4 {
		t.Errorf("exchanges = %d, want 4 (one per WriteFile and Exec)", got)
	}
	err := c.WriteFile(ctx, "/no/such/dir/file", []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "/no/such/dir/file") {
		t.Errorf("write into a missing directory: err = %v", err)
	}
}

func TestExecCancel(t *testing.T) {
	c := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Exec(ctx, "sleep 31; echo late", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %s", d)
	}
	// The script's processes are gone too.
	res, err := c.Exec(context.Background(), "ps -eo args | grep -c '^sleep 3[1]'", nil)
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "0" {
		t.Errorf("after cancel: %q %v", res.Stdout, err)
	}
}

func TestConcurrentExec(t *testing.T) {
	c := dial(t)
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Exec(context.Background(), fmt.Sprintf("echo %d", i), nil)
			if err == nil && string(res.Stdout) != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("exec %d: stdout %q", i, res.Stdout)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := c.Exchanges(); got != 30 {
		t.Errorf("exchanges = %d, want 30", got)
	}
}

func TestDialMissing(t *testing.T) {
	if container == "" {
		require.Missing(t, skipReason)
	}
	_, err := dockerconn.Dial(context.Background(), "orch-no-such-container", dockerconn.Options{})
	if !errors.Is(err, dockerconn.ErrNotFound) || !strings.Contains(err.Error(), "orch-no-such-container") {
		t.Errorf("err = %v", err)
	}
}

func BenchmarkExec(b *testing.B) {
	if container == "" {
		b.Skip(skipReason)
	}
	c, err := dockerconn.Dial(context.Background(), container, dockerconn.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		if _, err := c.Exec(context.Background(), "true", nil); err != nil {
			b.Fatal(err)
		}
	}
}
