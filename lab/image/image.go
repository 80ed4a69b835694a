// Package image builds the lab's container image: Debian with sshd, BIND,
// nginx, HAProxy, sudo, socat, curl, apt-cacher-ng and tini, two non-root
// users for become tests (see finish.sh), and no Python.
//
// The recipe is the package list below plus finish.sh (and the Dockerfile for
// the docker-build path). Its content hash names the image, orch-lab:<hash12>,
// so a built image is reused until the recipe changes.
//
// Where a Debian base image is already present in the engine, the image is
// built with docker build. Otherwise (the usual case: no registry reachable)
// the root file system is bootstrapped with debootstrap from the machine's own
// apt sources and loaded with docker import; the build installs debootstrap
// first (apt-get, as root or through sudo) where it is missing. Nothing is
// ever pulled unless $ORCH_LAB_PULL=1 asks for it.
package image

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/orch-dev/orch/lab/internal/dockercli"
	"github.com/orch-dev/orch/lab/internal/flock"
)

// Suite is the Debian release of the image.
const Suite = "bookworm"

// Packages is what the image installs on top of a minimal base. Recommends are
// never installed, which keeps Python and other agents out.
var Packages = []string{
	"apt-cacher-ng", // the lab's apt proxy runs from this image too
	"bind9",
	"curl",
	"dnsutils",
	"haproxy",
	"iproute2",
	"iputils-arping", // gratuitous ARP when a reserved IP moves
	"libnginx-mod-stream",
	"nginx",
	"openssh-server",
	"openssh-sftp-server",
	"procps",
	"socat",
	"sudo",
	"tini",
}

// Repository is the name of the image; tags are recipe hashes.
const Repository = "orch-lab"

// RecipeLabel is the image label holding the full recipe hash.
const RecipeLabel = "dev.orch.lab.recipe"

// PullEnv, set to 1, allows pulling a Debian base image from a registry.
const PullEnv = "ORCH_LAB_PULL"

// bases are the Debian images the docker-build path accepts, best first.
var bases = []string{"debian:bookworm-slim", "debian:bookworm", "debian:12-slim", "debian:12"}

var (
	//go:embed finish.sh
	finishScript string
	//go:embed Dockerfile
	dockerfile string
)

// recipeVersion changes when the build steps in this file change in a way
// that alters the image.
const recipeVersion = "1"

// Hash is the content hash of the recipe.
func Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "version %s\nsuite %s\npackages %s\n", recipeVersion, Suite, strings.Join(Packages, " "))
	fmt.Fprintf(h, "finish.sh %d\n%s\nDockerfile %d\n%s\n", len(finishScript), finishScript, len(dockerfile), dockerfile)
	return hex.EncodeToString(h.Sum(nil))
}

// Tag is the image reference of the current recipe.
func Tag() string { return Repository + ":" + Hash()[:12] }

// Ensure returns the tag of the lab image, building it first if the engine
// does not have it. Concurrent callers, in this process or others, wait for
// one build. logf receives progress lines.
func Ensure(ctx context.Context, logf func(format string, args ...any)) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	tag := Tag()
	if exists(ctx, tag) {
		return tag, nil
	}
	if err := dockercli.Available(ctx); err != nil {
		return "", fmt.Errorf("lab image: %w", err)
	}
	unlock, err := flock.Lock(ctx, filepath.Join(os.TempDir(), "orch-lab-image.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if exists(ctx, tag) { // another process built it while we waited
		return tag, nil
	}
	mirror, err := Mirror(Suite)
	if err != nil {
		return "", fmt.Errorf("lab image: %w", err)
	}
	start := time.Now()
	if base := findBase(ctx, logf); base != "" {
		logf("lab image: building %s from %s", tag, base)
		err = buildFromBase(ctx, tag, base, mirror)
	} else {
		logf("lab image: building %s with debootstrap from %s (about a minute)", tag, mirror)
		err = bootstrap(ctx, tag, mirror, logf)
	}
	if err != nil {
		return "", fmt.Errorf("lab image: %w", err)
	}
	logf("lab image: built %s in %s", tag, time.Since(start).Round(time.Second))
	return tag, nil
}

func exists(ctx context.Context, ref string) bool {
	_, err := dockercli.Run(ctx, nil, "image", "inspect", "--format", "{{.Id}}", ref)
	return err == nil
}

// findBase returns a Debian base image the engine has, pulling one only when
// PullEnv allows it.
func findBase(ctx context.Context, logf func(string, ...any)) string {
	for _, b := range bases {
		if exists(ctx, b) {
			return b
		}
	}
	if os.Getenv(PullEnv) != "1" {
		return ""
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := dockercli.Run(pctx, nil, "pull", bases[0]); err != nil {
		logf("lab image: cannot pull %s, using debootstrap: %v", bases[0], err)
		return ""
	}
	return bases[0]
}

func buildFromBase(ctx context.Context, tag, base, mirror string) error {
	dir, err := os.MkdirTemp("", "orch-lab-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "finish.sh"), []byte(finishScript), 0o755); err != nil {
		return err
	}
	_, err = dockercli.Run(ctx, nil, "build", "--quiet", "--tag", tag,
		"--label", RecipeLabel+"="+Hash(),
		"--build-arg", "BASE="+base,
		"--build-arg", "MIRROR="+mirror,
		"--build-arg", "SUITE="+Suite,
		"--build-arg", "PACKAGES="+strings.Join(Packages, " "),
		dir)
	return err
}

// bootstrap builds the image from a debootstrap root file system. The first
// stage only unpacks; a policy-rc.d that forbids starting services goes in
// before the second stage configures the packages, so no daemon starts on
// this machine during the build. The steps that need root run as root or
// through sudo (asRoot); debootstrap itself is installed when missing.
func bootstrap(ctx context.Context, tag, mirror string, logf func(string, ...any)) error {
	root, err := rootCommand(os.Geteuid(), sudoWorks)
	if err != nil {
		return err
	}
	logFile, err := os.CreateTemp("", "orch-lab-build-*.log")
	if err != nil {
		return err
	}
	logPath := logFile.Name()
	logFile.Close()
	defer os.Remove(logPath)
	if err := installBuildTools(ctx, root, missingBuildTools(), logPath, logf); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "orch-lab-rootfs-")
	if err != nil {
		return err
	}
	defer removeRootfs(root, dir, logf)

	args := []string{"--variant=minbase", "--foreign", "--include=" + strings.Join(Packages, ",")}
	if cache := cacheDir(); cache != "" {
		args = append(args, "--cache-dir="+cache) // a rebuild after a recipe change downloads nothing
	}
	if _, err := os.Stat(debootstrapKeyring); err == nil {
		args = append(args, "--keyring="+debootstrapKeyring)
	}
	args = append(args, Suite, dir, mirror)
	logf("lab image: debootstrap first stage")
	if err := runLogged(ctx, logPath, nil, root.argv("debootstrap", args...)...); err != nil {
		return err
	}
	policy := strings.NewReader("#!/bin/sh\nexit 101\n")
	if err := runLogged(ctx, logPath, policy, root.argv("chroot", dir, "/bin/sh", "-c", "cat > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d")...); err != nil {
		return err
	}
	logf("lab image: debootstrap second stage")
	if err := runLogged(ctx, logPath, nil, root.argv("chroot", dir, "/debootstrap/debootstrap", "--second-stage")...); err != nil {
		return err
	}
	if err := runLogged(ctx, logPath, strings.NewReader(finishScript), root.argv("chroot", dir, "/bin/sh", "-s")...); err != nil {
		return err
	}
	logf("lab image: importing")
	return importRootfs(ctx, root, dir, tag)
}

func importRootfs(ctx context.Context, root asRoot, dir, tag string) error {
	argv := root.argv("tar", "--numeric-owner", "--xattrs", "-C", dir, "-c", ".")
	tarCmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	tarOut, err := tarCmd.StdoutPipe()
	if err != nil {
		return err
	}
	var tarErr strings.Builder
	tarCmd.Stderr = &tarErr
	if err := tarCmd.Start(); err != nil {
		return err
	}
	_, importErr := dockercli.Run(ctx, tarOut, "import",
		"--change", `ENTRYPOINT ["/usr/bin/tini", "--"]`,
		"--change", `CMD ["/bin/sh"]`,
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"--change", "LABEL "+RecipeLabel+"="+Hash(),
		"-", tag)
	io.Copy(io.Discard, tarOut) // let tar finish if docker stopped reading
	if err := tarCmd.Wait(); err != nil {
		return fmt.Errorf("tar: %v: %s", err, strings.TrimSpace(tarErr.String()))
	}
	return importErr
}

// runLogged runs a build command (argv) with stdin (may be nil) and its
// output appended to logPath, and on failure returns the log's tail, where
// the reason is.
func runLogged(ctx context.Context, logPath string, stdin io.Reader, argv ...string) error {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, logFile, logFile
	// debootstrap runs dpkg and friends; cancelling must end them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, tail(logPath, 20))
	}
	return nil
}

func tail(path string, lines int) string {
	data, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

func cacheDir() string {
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	dir := filepath.Join(base, "orch", "debootstrap-"+Suite)
	if os.MkdirAll(dir, 0o755) != nil {
		return ""
	}
	return dir
}

// removeRootfs deletes a build root, first detaching anything still mounted
// inside it: removing through a leftover /dev or /proc mount would delete the
// host's own files.
func removeRootfs(root asRoot, dir string, logf func(string, ...any)) {
	for _, m := range mountsUnder(dir) {
		if len(root) == 0 {
			detach(m)
		} else {
			umount := root.argv("umount", "-l", m)
			exec.Command(umount[0], umount[1:]...).Run()
		}
	}
	if left := mountsUnder(dir); len(left) > 0 {
		logf("lab image: leaving %s in place: still mounted: %s", dir, strings.Join(left, " "))
		return
	}
	if len(root) == 0 {
		os.RemoveAll(dir)
		return
	}
	rm := root.argv("rm", "-rf", "--one-file-system", "--", dir)
	exec.Command(rm[0], rm[1:]...).Run()
}

// mountsUnder lists mount points inside dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			out = append([]string{f[1]}, out...)
		}
	}
	return out
}
