package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/lab/cloud/cloudtest"
)

// TestSecretsReachNoArtifact runs a plan that uses every kind of secret
// (file and command with secret=True, an -e value named by --secret-arg,
// a become password, a cloud token) on a real sshd host, three times:
// human output with --diff -v, --json, and a resume that is given the
// secret arg again through the environment. Then it greps everything the
// runs left (stdout, stderr, and every file of the state directory:
// events, journal, locks, pinned keys) for each secret, and finds none.
func TestSecretsReachNoArtifact(t *testing.T) {
	f := startFaultFleet(t, 1)
	lab := cloudtest.Start(t, nil)
	secrets := map[string]string{
		"file content": "FILE-SECRET-1a2b",
		"command text": "CMD-SECRET-3c4d",
		"-e value":     "ARG-SECRET-5e6f",
		"become pass":  "BECOME-SECRET-7a8b",
		"cloud token":  lab.Tokens.Linode,
	}
	os.WriteFile(filepath.Join(f.work, "plan.star"), []byte(`
def main(ctx):
    key = ctx.args["api_key"]
    print("the key is", key)

    def role(h):
        r = h.vars["root"]
        file(path = r + "/token", content = "FILE-SECRET-1a2b\n", mode = "0600", secret = True)
        command("echo CMD-SECRET-3c4d > %s/cmd.out" % r, secret = True)
        command("echo using " + key + " > " + r + "/key.out")
        command("id -un > %s/who" % r, become = True)

    ctx.step("deploy", lambda: ctx.apply("all", role))
    print("instances:", len(linode.instances()))
    ctx.step("fail", lambda: ctx.apply("all", lambda h: command("echo CMD-SECRET-3c4d; echo " + key + " >&2; exit 1", secret = True)))
`), 0o644)
	env := []string{"ORCH_BECOME_PASS=" + secrets["become pass"], "LINODE_URL=" + lab.URL, "LINODE_TOKEN=" + lab.Tokens.Linode}
	base := []string{"run", "plan.star", "-i", "inventory.ini", "--known-hosts", f.KnownHosts, "--host-key-check", "strict",
		"-e", "api_key=" + secrets["-e value"], "--secret-arg", "api_key"}

	var outputs []string
	run := func(want int, args ...string) string {
		t.Helper()
		cmd := exec.Command("orch", args...)
		cmd.Dir = f.work
		cmd.Env = append(os.Environ(), append(env, "ORCH_STATE="+filepath.Join(f.work, "state"), "HOME="+f.work)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		if got := cmd.ProcessState.ExitCode(); got != want {
			t.Fatalf("orch %s exited %d, want %d:\n%s\n%s", strings.Join(args, " "), got, want, stdout.String(), stderr.String())
		}
		outputs = append(outputs, stdout.String(), stderr.String())
		return stdout.String()
	}
	human := run(1, append(base, "--diff", "-v")...)
	for _, want := range []string{"the key is ********", "command (secret)", "command echo using ******** > ", "instances: 0"} {
		if !strings.Contains(human, want) {
			t.Errorf("output lacks %q:\n%s", want, human)
		}
	}
	run(1, append(base, "--json")...)
	runs, _ := os.ReadDir(filepath.Join(f.work, "state", "runs"))
	env = append(env, "ORCH_ARG_api_key="+secrets["-e value"])
	resumed := run(1, "resume", runs[0].Name(), "--json")
	if !strings.Contains(resumed, `"step":"deploy","status":"skipped"`) {
		t.Errorf("the resume did not skip the deploy step:\n%s", resumed)
	}

	// The secrets did reach the host, where they belong.
	root := f.root("h1")
	for file, want := range map[string]string{"token": "FILE-SECRET-1a2b\n", "cmd.out": "CMD-SECRET-3c4d\n", "key.out": "using ARG-SECRET-5e6f\n", "who": "root\n"} {
		if got, _ := os.ReadFile(filepath.Join(root, file)); string(got) != want {
			t.Errorf("%s on the host: %q, want %q", file, got, want)
		}
	}

	var artifacts []string
	filepath.WalkDir(filepath.Join(f.work, "state"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			artifacts = append(artifacts, p)
		}
		return err
	})
	for _, want := range []string{"run.json", "events.jsonl", "steps.jsonl", "notes.jsonl", "result.json"} {
		if !slicesContainSuffix(artifacts, want) {
			t.Errorf("no %s among the artifacts: %v", want, artifacts)
		}
	}
	for what, s := range secrets {
		for i, out := range outputs {
			if strings.Contains(out, s) {
				t.Errorf("the %s is in the %s of run %d", what, []string{"stdout", "stderr"}[i%2], i/2+1)
			}
		}
		for _, p := range artifacts {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), s) {
				t.Errorf("the %s is in %s", what, p)
			}
		}
	}
}

func slicesContainSuffix(paths []string, suffix string) bool {
	for _, p := range paths {
		if strings.HasSuffix(p, string(filepath.Separator)+suffix) {
			return true
		}
	}
	return false
}
