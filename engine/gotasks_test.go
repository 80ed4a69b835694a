package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/command"
	"github.com/orch-dev/orch/modules/file"
)

func localHosts(n int) []*inventory.Host {
	var hosts []*inventory.Host
	for i := 1; i <= n; i++ {
		hosts = append(hosts, &inventory.Host{Name: fmt.Sprintf("h%d", i), Connection: "local", Groups: []string{"web"}})
	}
	return hosts
}

// TestConvergeSharesTasksAndHostsSafely: many Converge calls at once may
// share one task list and one host list; each host gets its own prepared
// copy of every task, and the caller's values stay as they were.
func TestConvergeSharesTasksAndHostsSafely(t *testing.T) {
	dir := t.TempDir()
	content := "shared\n"
	tasks := []Task{{Args: &file.File{Path: filepath.Join(dir, "shared.txt"), Content: &content}}}
	hosts := localHosts(3)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		// State dirs of their own: runs sharing one would refuse each other's
		// hosts (the host lock), which is not what this test is about.
		state := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Converge(context.Background(), hosts, tasks, ConvergeOptions{Name: fmt.Sprint("c", i), Options: Options{StateDir: state}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("converge %d: %v", i, err)
		}
	}
	if f := tasks[0].Args.(*file.File); f.State != "" {
		t.Errorf("the caller's task was changed: State %q", f.State)
	}
	for _, h := range hosts {
		if len(h.Groups) != 1 || h.Vars != nil {
			t.Errorf("the caller's host was changed: %+v", h)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "shared.txt")); err != nil || string(b) != content {
		t.Errorf("shared.txt = %q, %v", b, err)
	}
}

// TestConvergeBatchesStopAfterMaxFail: as ctx.apply, a failed batch stops
// the batches after it, and the error says so.
func TestConvergeBatchesStopAfterMaxFail(t *testing.T) {
	dir := t.TempDir()
	rec := &recorder{}
	opts := ConvergeOptions{Options: Options{StateDir: t.TempDir(), OnEvent: rec.on}, Serial: 1,
		PerHost: func(h *inventory.Host) ([]Task, error) {
			cmd := "touch " + filepath.Join(dir, h.Name)
			if h.Name == "h2" {
				cmd = "echo broken >&2; exit 3"
			}
			return []Task{{Args: &command.Command{Cmd: cmd}}}, nil
		}}
	rep, err := Converge(context.Background(), localHosts(3), nil, opts)
	if !errors.Is(err, ErrTooManyFailures) || !strings.Contains(err.Error(), "h2") {
		t.Fatalf("err = %v, want too many failures naming h2", err)
	}
	if s := rep.Summary; s.Hosts != 2 || s.Changed != 1 || s.Failed != 1 || !rep.Touched {
		t.Errorf("summary %+v, touched %v", s, rep.Touched)
	}
	if _, err := os.Stat(filepath.Join(dir, "h3")); !os.IsNotExist(err) {
		t.Error("h3 ran after the batch of h2 failed")
	}
	var failed Event
	for _, e := range rec.of("task") {
		if e.Status == Failed {
			failed = e
		}
	}
	if failed.Host != "h2" || failed.Pos != "tasks[0]" || !strings.Contains(failed.Msg, "(tasks[0]) on h2") || !strings.Contains(failed.Msg, "broken") {
		t.Errorf("failed task event %+v", failed)
	}
}

// TestConvergeRefusesBadTasksBeforeTouchingHosts: arguments are prepared
// on the controller, so a bad task fails before any connection.
func TestConvergeRefusesBadTasksBeforeTouchingHosts(t *testing.T) {
	for _, c := range []struct {
		name  string
		tasks []Task
		want  string
	}{
		{"nil args", []Task{{}}, "tasks[0]: Args must be a pointer"},
		{"missing required", []Task{{Args: &file.File{}}}, `file (tasks[0]): missing argument "path"`},
		{"validate", []Task{{Args: &command.Command{Cmd: "true"}}, {Args: &file.File{Path: "/x", State: "dir"}}}, `file (tasks[1]): state "dir"`},
		{"src without files", []Task{{Args: &file.File{Path: "/x", Src: "motd"}}}, "set ConvergeOptions.Files"},
		{"negative timeout", []Task{{Args: &command.Command{Cmd: "true"}, Timeout: -1}}, "timeout must be positive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dialled := false
			opts := ConvergeOptions{Options: Options{StateDir: t.TempDir(), Dial: func(context.Context, *inventory.Host) (conn.Conn, error) {
				dialled = true
				return nil, errors.New("no")
			}}}
			rep, err := Converge(context.Background(), localHosts(1), c.tasks, opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if rep.Touched || dialled {
				t.Errorf("touched %v, dialled %v", rep.Touched, dialled)
			}
		})
	}
	if _, err := Converge(context.Background(), append(localHosts(1), localHosts(1)...), nil, ConvergeOptions{}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("a host given twice: %v", err)
	}
}

// mark is a module nobody registered: Converge runs it all the same.
type mark struct {
	Path string `arg:"path,required"`
}

func (m *mark) Probe(modules.ProbeRequest) string {
	return "[ -e " + modules.Quote(m.Path) + " ] && echo yes || echo no"
}
func (m *mark) Check(req modules.CheckRequest, resp *modules.CheckResponse) {
	if strings.TrimSpace(string(req.Output)) == "no" {
		resp.Changed, resp.Apply = true, "touch "+modules.Quote(m.Path)
	}
}

func TestConvergeLimitAndUnregisteredModules(t *testing.T) {
	dir := t.TempDir()
	rec := &recorder{}
	opts := ConvergeOptions{Options: Options{StateDir: t.TempDir(), Limit: "h1,h3", OnEvent: rec.on},
		PerHost: func(h *inventory.Host) ([]Task, error) {
			return []Task{{Args: &mark{Path: filepath.Join(dir, h.Name)}}}, nil
		}}
	rep, err := Converge(context.Background(), localHosts(3), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.Hosts != 2 || s.Changed != 2 {
		t.Errorf("summary %+v, want h1 and h3 changed", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "h2")); !os.IsNotExist(err) {
		t.Error("h2 was outside the limit and changed")
	}
	if tasks := rec.of("task"); len(tasks) != 2 || tasks[0].Module != "engine.mark" {
		t.Errorf("task events %+v, want two of module engine.mark", tasks)
	}
}
