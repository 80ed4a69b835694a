//go:build !linux

package image

// detach does nothing where the lab image cannot be built (debootstrap and
// /proc/self/mounts are Linux's): no build root ever has mounts there.
func detach(string) {}
