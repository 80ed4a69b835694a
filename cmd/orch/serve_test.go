package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/log"

	"github.com/orch-dev/orch/serve"
)

// orch serve end to end: a real listener, a signed delivery that runs the
// plan on localhost, the secret kept from the plan's commands, and a clean
// stop when the context ends (as on Ctrl-C).
func TestServeRunsThePlanAndStops(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("ORCH_STATE", filepath.Join(dir, ".orch"))
	t.Setenv("HOOK_SECRET", "It's a Secret to Everybody")
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	plan := `
def main(ctx):
    ev = ctx.event
    def role(h):
        file(path = "%s/ref", content = ev.payload["ref"] + "\n")
        command(cmd = "env > %s/env")
    ctx.apply("all", role)
`
	if err := os.WriteFile("deploy.star", []byte(strings.ReplaceAll(plan, "%s", out)), 0o644); err != nil {
		t.Fatal(err)
	}

	logs, logw := io.Pipe()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	// next returns the first log line matching re; the minute guards
	// against a deadlock.
	next := func(re string) []string {
		t.Helper()
		guard := time.After(time.Minute)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("orch serve ended before logging %q:\n%s", re, strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if m := regexp.MustCompile(re).FindStringSubmatch(l); m != nil {
					return m
				}
			case <-guard:
				t.Fatalf("no log line %q:\n%s", re, strings.Join(seen, "\n"))
			}
		}
	}

	c := &cli{stdout: io.Discard, stderr: logw, log: log.NewWithOptions(logw, log.Options{Prefix: "orch"})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.serve(ctx, []string{"--listen", "127.0.0.1:0", "--plan", "deploy.star", "--secret-env", "HOOK_SECRET"})
		logw.Close()
	}()
	addr := next(`listening addr=(\S+)`)[1]
	if v, ok := os.LookupEnv("HOOK_SECRET"); ok {
		t.Errorf("the secret is still in the environment: %q", v)
	}

	body := `{"ref": "refs/heads/main"}`
	req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", serve.Sign([]byte("It's a Secret to Everybody"), []byte(body)))
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	req.Header.Set("X-GitHub-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	next(`request method=POST path=/ remote=\S+ status=202 delivery=72d3162e-cc78-11e3-81ab-4c9367dc0958 event=push run=\S+ duration=`)
	next(`run done delivery=72d3162e-cc78-11e3-81ab-4c9367dc0958 .* hosts=1 changed=1 failed=0 unreachable=0`)
	if b, _ := os.ReadFile(filepath.Join(out, "ref")); string(b) != "refs/heads/main\n" {
		t.Errorf("ref = %q", b)
	}
	env, err := os.ReadFile(filepath.Join(out, "env"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(env), "HOOK_SECRET") || strings.Contains(string(env), "Everybody") {
		t.Error("the plan's command could read the webhook secret")
	}

	cancel()
	next(`stopping`)
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	for _, l := range seen {
		if strings.Contains(l, "Everybody") || strings.Contains(l, "sha256=") {
			t.Errorf("a log line holds the secret or the signature: %s", l)
		}
	}
}
