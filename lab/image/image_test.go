package image

import (
	"context"
	"fmt"
	"github.com/orch-dev/orch/testkit/require"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMirrorFrom(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sources.list.d/other.sources", `Types: deb
URIs: http://mirror.invalid/other
Suites: nodistro
Components: main
`)
	write("sources.list.d/debian.sources", `Types: deb-src
URIs: http://mirror.invalid/src
Suites: bookworm
Components: main

Types: deb
URIs: http://mirror.invalid/off
Suites: bookworm
Components: main
Enabled: no

Types: deb
# a comment
URIs: http://mirror.invalid/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
`)
	write("sources.list.d/disabled.list.disabled", "deb http://mirror.invalid/disabled bookworm main\n")
	got, err := mirrorFrom(dir, "bookworm")
	if err != nil || got != "http://mirror.invalid/debian" {
		t.Errorf("deb822: got %q, %v", got, err)
	}

	// The classic file comes first and wins.
	write("sources.list", "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/classic bookworm main\n")
	if got, err := mirrorFrom(dir, "bookworm"); err != nil || got != "http://mirror.invalid/classic" {
		t.Errorf("one-line: got %q, %v", got, err)
	}
	if _, err := mirrorFrom(dir, "trixie"); err == nil || !strings.Contains(err.Error(), MirrorEnv) {
		t.Errorf("no source for trixie: err = %v", err)
	}
	t.Setenv(MirrorEnv, "http://mirror.invalid/env")
	if got, _ := Mirror("bookworm"); got != "http://mirror.invalid/env" {
		t.Errorf("%s not honoured: %q", MirrorEnv, got)
	}
}

func TestTag(t *testing.T) {
	if !regexp.MustCompile(`^orch-lab:[0-9a-f]{12}$`).MatchString(Tag()) {
		t.Errorf("tag %q", Tag())
	}
	before := Hash()
	Packages = append(Packages, "extra")
	defer func() { Packages = Packages[:len(Packages)-1] }()
	if Hash() == before {
		t.Error("the hash ignores the package list")
	}
	if !slices.IsSorted(Packages[:len(Packages)-1]) {
		t.Error("keep Packages sorted")
	}
}

func TestRootCommand(t *testing.T) {
	sudo := func(ok bool) func() bool { return func() bool { return ok } }
	if r, err := rootCommand(0, sudo(false)); err != nil || len(r) != 0 {
		t.Errorf("as root: %q %v", r, err)
	}
	if r, err := rootCommand(1000, sudo(true)); err != nil || !slices.Equal(r.argv("tar", "-c"), []string{"sudo", "-n", "--", "tar", "-c"}) {
		t.Errorf("with sudo: %q %v", r, err)
	}
	if _, err := rootCommand(1000, sudo(false)); err == nil || !strings.Contains(err.Error(), "needs root") {
		t.Errorf("without root or sudo: %v", err)
	}
}

// ensureForTest builds the image if the engine lacks it, and returns its
// tag with a context for the test's docker commands.
func ensureForTest(t *testing.T) (context.Context, string) {
	dockerOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	tag, err := Ensure(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, tag
}

func dockerOrSkip(t *testing.T) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		require.Missing(t, "no docker engine (docker info failed)")
	}
}

// TestImage builds the image if this engine lacks it (with debootstrap where
// no Debian base image is present) and checks what is inside.
func TestImage(t *testing.T) {
	_, tag := ensureForTest(t)
	out, err := exec.Command("docker", "image", "inspect", "--format",
		`{{index .Config.Labels "`+RecipeLabel+`"}} {{json .Config.Entrypoint}}`, tag).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := Hash() + ` ["/usr/bin/tini","--"]`; strings.TrimSpace(string(out)) != want {
		t.Errorf("image config %q, want %q", out, want)
	}
	script := `set -e
dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' ` + strings.Join(Packages, " ") + ` | grep -v ' ii ' || true
echo python: $(dpkg-query -W -f '${Package}\n' | grep -c '^python' || true)
echo hostkeys: $(ls /etc/ssh/ | grep -c ssh_host_ || true)
echo recursion: $(grep -c 'recursion no' /etc/bind/named.conf.options)
ls /etc/nginx/modules-enabled/ | grep -q stream && echo stream: yes
for s in ssh named nginx haproxy apt-cacher-ng; do test -x /etc/init.d/$s || echo "no init script for $s"; done
echo started at boot: $(ls /etc/rc2.d | grep '^S' | tr '\n' ' ')
for u in deploy deploy-pw; do echo "$u: $(getent passwd $u | cut -d: -f6,7) $(getent shadow $u | cut -d: -f2 | cut -c1-3)"; done
visudo -c -q && echo sudoers: ok
for tool in sudo socat curl haproxy apt-cacher-ng; do command -v $tool >/dev/null || echo "no $tool"; done
`
	got, err := exec.Command("docker", "run", "--rm", "--network", "none", tag, "/bin/sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	want := "python: 0\nhostkeys: 0\nrecursion: 1\nstream: yes\n" +
		"started at boot: S01ssh S01sudo\n" +
		"deploy: /home/deploy:/bin/bash *\n" +
		"deploy-pw: /home/deploy-pw:/bin/bash $y$\n" + // a yescrypt hash: it has a password
		"sudoers: ok\n"
	if string(got) != want {
		t.Errorf("image contents:\n%s\nwant:\n%s", got, want)
	}
}

// insideEnv makes this test binary, run in a lab image container, do the
// part of TestInstallsBuildTools that needs a machine without debootstrap.
const insideEnv = "ORCH_LAB_TEST_INSIDE"

// TestInstallsBuildTools runs the build's first step on a Debian machine
// that lacks debootstrap (a container of the lab image, as root): it
// installs it with apt-get and says so. It downloads the package lists, so
// it runs only when ORCH_LAB_TEST_BUILD=1, as in CI.
func TestInstallsBuildTools(t *testing.T) {
	if os.Getenv(insideEnv) == "1" {
		var notices []string
		logPath := filepath.Join(t.TempDir(), "build.log")
		root, err := rootCommand(os.Geteuid(), sudoWorks)
		if err != nil {
			t.Fatal(err)
		}
		missing := missingBuildTools()
		if !slices.Contains(missing, "debootstrap") {
			t.Fatalf("debootstrap is already here: %v", missing)
		}
		err = installBuildTools(context.Background(), root, missing, logPath, func(f string, a ...any) { notices = append(notices, fmt.Sprintf(f, a...)) })
		if err != nil {
			t.Fatal(err)
		}
		if left := missingBuildTools(); len(left) != 0 {
			t.Errorf("still missing after the install: %v", left)
		}
		if len(notices) != 1 || !strings.Contains(notices[0], "installing debootstrap with apt-get (as root)") {
			t.Errorf("notices: %q", notices)
		}
		return
	}
	if os.Getenv("ORCH_LAB_TEST_BUILD") != "1" {
		t.Skip("set ORCH_LAB_TEST_BUILD=1 to install debootstrap in a container")
	}
	ctx, tag := ensureForTest(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "-e", insideEnv+"=1", "-v", self+":/image.test:ro",
		tag, "/image.test", "-test.run", "^TestInstallsBuildTools$", "-test.v").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestInstallsBuildTools") {
		t.Fatalf("in a container of %s: %v\n%s", tag, err, out)
	}
}

// TestBootstrapBuild rebuilds the image from scratch under another tag. It
// takes about a minute, so it runs only when ORCH_LAB_TEST_BUILD=1; on a new
// machine TestImage goes through the same build anyway.
func TestBootstrapBuild(t *testing.T) {
	if os.Getenv("ORCH_LAB_TEST_BUILD") != "1" {
		t.Skip("set ORCH_LAB_TEST_BUILD=1 to rebuild the image from scratch")
	}
	dockerOrSkip(t)
	mirror, err := Mirror(Suite)
	if err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("orch-lab-test:%d", os.Getpid())
	start := time.Now()
	if err := bootstrap(context.Background(), tag, mirror, t.Logf); err != nil {
		t.Fatal(err)
	}
	t.Logf("built in %s", time.Since(start).Round(time.Second))
	exec.Command("docker", "rmi", tag).Run()
}
