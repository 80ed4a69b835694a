package image

import "syscall"

// detach lazily unmounts a leftover mount inside a build root.
func detach(mountPoint string) { syscall.Unmount(mountPoint, syscall.MNT_DETACH) }
