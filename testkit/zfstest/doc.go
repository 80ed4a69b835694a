// Package zfstest gives tests real ZFS: Debian's zfs-fuse (0.7.0, a FUSE
// port of Solaris ZFS of about 2009) with one file-backed pool per test.
//
//	p := zfstest.New(t)             // pool orchtest-PID-N, mounted under t.TempDir()
//	p.ZFS(t, "create", p.Name+"/www")
//
// New starts the zfs-fuse daemon when none answers (root and /dev/fuse are
// needed) and destroys the pool when the test ends. Where zfs-fuse cannot
// run, the test skips, or fails under ORCH_TEST_REQUIRE (package require),
// as CI sets it. CI starts the daemon itself (.ci/run); a daemon this package
// started is stopped again by the last test process that used it, and only
// when no pool is left (a shared lock under /run/orch-zfstest tells whether
// another test process still uses it). Pools of killed test processes are
// destroyed by the next New.
//
// # What zfs-fuse does of what the modules need, and how FreeBSD differs
//
// The modules target FreeBSD 14's OpenZFS (2.2; read at tag zfs-2.2.6,
// cmd/zfs/zfs_main.c and man/man8). The zfs-fuse behaviours below are
// asserted by TestZFSFuseBehaviour, so the list stays true, except the two
// marked "observed" (seen in the stand-in host's boots, not asserted).
//
// zfs list: zfs-fuse has no -p. "zfs list -p" fails with "invalid option
// 'p'" and the usage on stderr, exit 2; OpenZFS has -p (exact numbers).
// "zfs list -H -o name,type,origin,mountpoint,mounted,canmount -t all"
// works the same on both: tab-separated, no header, "-" where a property
// does not apply (origin of a non-clone, mountpoint of a snapshot). Sizes
// in "zfs list" are always humanised on zfs-fuse ("2.26M"). So read numbers
// and every managed property through "zfs get -p", which both have.
//
// zfs get: "zfs get -H -p -o name,property,value,source PROPS DATASET..."
// works on both: one line per dataset and property, tab-separated, datasets
// in name order, numbers exact with -p (creation in Unix seconds, sizes in
// bytes), "-" as the value and source of a property that does not apply
// (compression of a snapshot). Sources read "-" (read-only), "default",
// "local", "inherited from POOL/DS"; user properties (name with a colon)
// that are unset read "-" "-". -r recurses and includes snapshots on both,
// -s local works on both. zfs-fuse has no -t (exit 2, "invalid option
// 't'"); OpenZFS has -t. A missing dataset: "cannot open 'X': dataset does
// not exist", exit 1, on both.
//
// zfs create / snapshot / clone: the same on both, with -p and -o k=v.
// An existing target fails with "cannot create 'X': dataset already
// exists" (snapshots: "cannot create snapshot 'X@S': dataset already
// exists"), exit 1. A clone of a missing snapshot: "cannot open 'X@S':
// dataset does not exist", exit 1.
//
// zfs destroy: a dataset with children or a snapshot with clones is
// refused with the same words on both, exit 1:
//
//	cannot destroy 'P/a': filesystem has children
//	use '-r' to destroy the following datasets:
//	P/a@s
//
//	cannot destroy 'P/a@s': snapshot has dependent clones
//	use '-R' to destroy the following datasets:
//	P/b
//
// -r and -R work on both. zfs-fuse lets go of a dataset's files a while
// after they are closed, from milliseconds to a few seconds: until then
// "zfs destroy" and "zfs unmount" fail with "cannot destroy 'X': dataset is
// busy" (zpool destroy: "pool is busy"), exit 1. Retry them (a sync
// shortens the wait); FreeBSD does not do this. zfs-fuse has no dry run: -n and -v fail with
// exit 2 (OpenZFS: "destroy -nv" lists what would go, "-p" parsable), so
// find dependents from the origin property instead. A missing snapshot:
// zfs-fuse says "cannot open 'X@S': dataset does not exist"; OpenZFS says
// "could not find any snapshots to destroy; check snapshot names." Both
// exit 1.
//
// zfs set / inherit: the same on both for the properties both have.
// "zfs inherit P" makes a local property read "default" or "inherited from
// ...", and an unset user property read "-". quota and reservation cannot
// be inherited: both print "'quota' property cannot be inherited" and
// "use 'zfs set quota=none' to clear", exit 1 (OpenZFS adds a line about
// "inherit -S"). After "zfs set quota=none", zfs-fuse reports value 0 with
// source "local". Property sets differ: zfs-fuse has "zoned" where FreeBSD
// has "jailed", and no lz4, zstd, encryption, acltype, dnodesize, relatime
// or special_small_blocks; an unknown property fails with "cannot set
// property for 'X': invalid property 'P'", exit 1 (OpenZFS words it the
// same way), a bad value with "'compression' must be one of ...".
//
// zfs send / receive: "zfs send P/a@s | zfs receive P/b" works, streams
// work within zfs-fuse. Receiving onto an existing dataset needs
// -F ("cannot receive new filesystem stream: destination 'X' exists /
// must specify -F to overwrite it", exit 1), as on OpenZFS. -u (do not
// mount) is accepted although zfs-fuse's usage does not list it. Streams
// between OpenZFS and zfs-fuse (whose on-disk version is much older) were
// not tried here: tests make their own.
//
// zfs promote: works on both; origins swap as documented.
//
// zfs mount / unmount: "zfs mount X", "zfs unmount X" and "zfs mount"
// (list) work; mounting a mounted dataset says "cannot mount 'X':
// filesystem already mounted", unmounting an unmounted one "cannot unmount
// 'X': not currently mounted", exit 1. canmount=noauto datasets are not
// mounted on their own, as on FreeBSD. Legacy mountpoints cannot be used:
// "zfs mount" refuses them and there is no mount -t zfs. Changing the
// mountpoint of a mounted dataset remounts it at once. zfs-fuse imports
// its pools from /var/lib/zfs/zpool.cache when the daemon starts but does
// not mount their datasets: run "zfs mount -a" (observed). There is no
// .zfs directory, so no snapshot browsing (zfs-fuse's STATUS file says so;
// observed).
//
// zpool: "zpool create -m MOUNTPOINT NAME FILE", "zpool list -H -o
// name,bootfs" and "zpool set bootfs=..." work; "zpool get" takes no -H,
// -o or -p on zfs-fuse (OpenZFS does), so read pool properties through
// "zpool list -H -o".
package zfstest
