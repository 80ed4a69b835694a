package standin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/orch-dev/orch/lab/image"
	"github.com/orch-dev/orch/lab/internal/dockercli"
	"github.com/orch-dev/orch/lab/internal/flock"
)

// Root is the stand-ins' file tree, copied to / in the image.
//
//go:embed all:root
var Root embed.FS

// Packages are the Debian packages the stand-in host adds to the lab image.
var Packages = []string{"zfs-fuse", "busybox-static", "xz-utils"}

// Repository names the image; tags are recipe hashes.
const Repository = "orch-standin"

// dockerfile builds on the lab image. Symlinks cannot be embedded, so they
// are made here.
const dockerfile = `ARG BASE
FROM ${BASE}
ARG MIRROR
ARG SUITE
ARG PACKAGES
RUN set -eu; \
    echo "deb $MIRROR $SUITE main" > /etc/apt/sources.list; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; \
    apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null; \
    rm -f /usr/sbin/policy-rc.d; apt-get clean; rm -rf /var/lib/apt/lists/*
COPY root/ /
RUN set -eu; ln -sf reboot /usr/sbin/halt; ln -sf reboot /usr/sbin/poweroff; mkdir -p /usr/local/etc/rc.d; \
    /usr/libexec/standin/mkbase; : > /etc/rc.conf
CMD ["/usr/libexec/standin/init"]
`

// Tag returns the image reference for a lab image base: a hash of the base,
// the packages, the Dockerfile and every stand-in file.
func Tag(base string) string {
	h := sha256.New()
	fmt.Fprintf(h, "base %s\npackages %s\nDockerfile %d\n%s\n", base, strings.Join(Packages, " "), len(dockerfile), dockerfile)
	var files []string
	fs.WalkDir(Root, "root", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	for _, p := range files {
		data, _ := Root.ReadFile(p)
		fmt.Fprintf(h, "%s %o %d\n", p, mode(data), len(data))
		h.Write(data)
	}
	return Repository + ":" + hex.EncodeToString(h.Sum(nil))[:12]
}

// mode gives scripts (#!) the executable bit; embedded files have none.
func mode(data []byte) os.FileMode {
	if bytes.HasPrefix(data, []byte("#!")) {
		return 0o755
	}
	return 0o644
}

// Ensure returns the stand-in image's tag, building it (and the lab image
// under it) when the engine does not have it. Concurrent callers wait for
// one build. logf receives progress lines.
func Ensure(ctx context.Context, logf func(format string, args ...any)) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	base, err := image.Ensure(ctx, logf)
	if err != nil {
		return "", err
	}
	tag := Tag(base)
	if exists(ctx, tag) {
		return tag, nil
	}
	unlock, err := flock.Lock(ctx, filepath.Join(os.TempDir(), "orch-standin-image.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if exists(ctx, tag) {
		return tag, nil
	}
	mirror, err := image.Mirror(image.Suite)
	if err != nil {
		return "", fmt.Errorf("standin image: %w", err)
	}
	dir, err := os.MkdirTemp("", "orch-standin-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := writeContext(dir); err != nil {
		return "", fmt.Errorf("standin image: %w", err)
	}
	logf("standin image: building %s on %s", tag, base)
	start := time.Now()
	if _, err := dockercli.Run(ctx, nil, "build", "--quiet", "--tag", tag,
		"--label", "dev.orch.standin.base="+base,
		"--build-arg", "BASE="+base, "--build-arg", "MIRROR="+mirror,
		"--build-arg", "SUITE="+image.Suite, "--build-arg", "PACKAGES="+strings.Join(Packages, " "),
		dir); err != nil {
		return "", fmt.Errorf("standin image: %w", err)
	}
	logf("standin image: built %s in %s", tag, time.Since(start).Round(time.Second))
	return tag, nil
}

func exists(ctx context.Context, ref string) bool {
	_, err := dockercli.Run(ctx, nil, "image", "inspect", "--format", "{{.Id}}", ref)
	return err == nil
}

// writeContext writes the Dockerfile and the stand-in tree into dir.
func writeContext(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	return fs.WalkDir(Root, "root", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := Root.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, mode(data)); err != nil {
			return err
		}
		return os.Chmod(target, mode(data)) // past the umask
	})
}
