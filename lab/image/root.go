package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// asRoot is how the build runs the commands that need root: directly when
// this process is root, through `sudo -n` when sudo lets this user in
// without a password, and not at all otherwise.
type asRoot []string

// rootCommand decides how to run commands as root. euid is this process's
// effective user ID; sudoOK reports whether `sudo -n true` succeeds.
func rootCommand(euid int, sudoOK func() bool) (asRoot, error) {
	if euid == 0 {
		return asRoot{}, nil
	}
	if sudoOK() {
		return asRoot{"sudo", "-n", "--"}, nil
	}
	return nil, errors.New("building the lab image with debootstrap needs root: run the first lab start as root, " +
		"or give this user sudo without a password (or load a Debian base image into docker, see " + PullEnv + ")")
}

func sudoWorks() bool {
	if _, err := exec.LookPath("sudo"); err != nil {
		return false
	}
	return exec.Command("sudo", "-n", "true").Run() == nil
}

// argv is name and args as this asRoot runs them.
func (r asRoot) argv(name string, args ...string) []string {
	return append(append(append([]string{}, r...), name), args...)
}

func (r asRoot) String() string {
	if len(r) == 0 {
		return "as root"
	}
	return "through sudo"
}

// debootstrapKeyring is where Debian's archive keyring lives on Debian and
// on Ubuntu (package debian-archive-keyring).
const debootstrapKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// missingBuildTools lists the Debian packages the debootstrap build needs
// and this machine lacks.
func missingBuildTools() []string {
	var missing []string
	if _, err := exec.LookPath("debootstrap"); err != nil {
		missing = append(missing, "debootstrap")
	}
	if _, err := os.Stat(debootstrapKeyring); err != nil {
		missing = append(missing, "debian-archive-keyring")
	}
	return missing
}

// installBuildTools installs what missingBuildTools names with apt-get,
// refreshing the package lists once if the first try cannot find them.
func installBuildTools(ctx context.Context, root asRoot, pkgs []string, logPath string, logf func(string, ...any)) error {
	if len(pkgs) == 0 {
		return nil
	}
	hint := "apt-get install -y " + strings.Join(pkgs, " ")
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("the lab image build needs %s, and this machine has no apt-get to install it: install it, or load a Debian base image into docker (see %s)",
			strings.Join(pkgs, " and "), PullEnv)
	}
	logf("lab image: installing %s with apt-get (%s), once, for the image build", strings.Join(pkgs, " "), root)
	install := root.argv("env", append([]string{"DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)...)
	if err := runLogged(ctx, logPath, nil, install...); err == nil {
		return nil
	}
	if err := runLogged(ctx, logPath, nil, root.argv("apt-get", "update", "-q")...); err != nil {
		return fmt.Errorf("%w\ninstall it yourself: %s", err, hint)
	}
	if err := runLogged(ctx, logPath, nil, install...); err != nil {
		return fmt.Errorf("%w\ninstall it yourself: %s", err, hint)
	}
	return nil
}
