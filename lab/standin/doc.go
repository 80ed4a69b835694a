// Package standin runs a stand-in FreeBSD host for the lab: a Linux
// container whose jail, jls, jexec, bectl, sysrc, service, pkg, sysctl,
// shutdown and reboot are POSIX sh stand-ins (under root/, embedded) over
// real zfs-fuse datasets.
//
// These are stand-ins verified against recorded FreeBSD behaviour, not a
// FreeBSD kernel. They follow the FreeBSD 14 man pages' arguments, exit
// statuses and output formats; the Go tests of this package run each
// stand-in in a container and compare its output with the recordings under
// testdata/freebsd (where each file says where its output comes from),
// parsing both with the parsers the modules use (modules/internal/freebsd).
// What FreeBSD does and they do not is written in the scripts' headers and
// below; anything else that differs is a bug.
//
// # The host
//
// Start creates the container from the lab image plus zfs-fuse, busybox and
// the stand-ins (Ensure builds that image, orch-standin:HASH, with docker
// build on top of the lab image), on a given docker network with a given
// address, client key and host key, and returns once its sshd answers.
// The container gets SYS_ADMIN and NET_ADMIN, /dev/fuse and no seccomp
// filter, rather than --privileged: this machine's engine cannot grant
// every capability. Its zroot pool lives in a file on a docker volume, so it
// survives restarts; the first boot creates zroot, zroot/ROOT and
// zroot/ROOT/default (mountpoint=/, canmount=noauto, bootfs).
//
// Each start of the container is a boot (root/usr/libexec/standin/init):
// new kern.boot_id (16 random bytes, read with `sysctl -x kern.boot_id`, as
// on FreeBSD) and kern.boottime (the same ID, in Linux's form, is bound over
// /proc/sys/kernel/random/boot_id, which would otherwise be the Docker
// host's and the same across boots), the pool imported, a boot environment
// chosen as FreeBSD's loader chooses (the one-shot BE of `bectl activate -t`
// once, else bootfs), rc.conf's hostname and enabled rc.d services and
// jails started, then sshd. The NIC is renamed vtnet0, as FreeBSD names a
// virtio NIC.
//
// # Reboot and the boot-environment fallback
//
// `shutdown -r now` and `reboot` stop the jails and services, unmount the
// datasets, stop zfs-fuse cleanly and end the container's PID 1; Docker's
// restart policy (unless-stopped) starts it again, which is the next boot.
// A BE whose /sbin/init is not executable panics at boot ("panic: no init",
// as the kernel does when it cannot start init): the container exits again
// and the following boot falls back to bootfs, because the loader forgot
// the one-shot choice before trying it. So a plan that activates a new BE
// with -t, reboots and checks `bectl list` and the boot ID sees either the
// new BE booted (N) or, when the new BE is broken, the old one, as on
// FreeBSD. `shutdown -p now` halts: the container restarts but stays down
// until it is restarted again.
//
// # What differs from FreeBSD
//
// The booted BE is a dataset holding a small root tree (sbin/init,
// boot/kernel/kernel, etc/freebsd-version), not the container's root file
// system: files copied into a new BE do not appear at / after booting it.
// Mounting a BE (bectl mount) sets its mountpoint property while it is
// mounted. A jail is a chroot into its path, in its own UTS namespace (its
// hostname) and, when it has addresses, its own network namespace reached
// through a veth pair and proxy ARP, so its addresses are reachable on the
// lab network and wildcard binds inside it see only them (FreeBSD needs
// the addresses on an interface or interface= for that; the stand-in always
// makes them reachable). IPv6 addresses are recorded and listed, not
// configured. Hierarchical jails, vnet, and jail -e are not supported.
// security.jail.jailed is 1 in processes the stand-in started in a jail
// (they carry STANDIN_JAIL), not from a kernel. pkg installs from the
// stand-in's own package set (hello, darkhttpd) into its own database
// (/var/db/pkg/standin); nothing is fetched. /usr/freebsd-dist/base.txz is
// a small Linux userland with the stand-ins, to extract into jail
// templates.
package standin
