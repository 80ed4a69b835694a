package zfstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/orch-dev/orch/testkit/require"
)

// Commands: Debian's zfs-fuse installs them in /sbin.
const (
	ZFS    = "/sbin/zfs"
	Zpool  = "/sbin/zpool"
	Daemon = "/sbin/zfs-fuse"
)

// PoolSize is the size of each test pool's backing file (sparse). zfs-fuse
// refuses vdevs under 64 MiB.
const PoolSize = 256 << 20

// stateDir holds the locks and the marker of a daemon this package started.
const stateDir = "/run/orch-zfstest"

var (
	// The files under stateDir; see the package doc for the protocol.
	useLock   = filepath.Join(stateDir, "use.lock")
	startLock = filepath.Join(stateDir, "start.lock")
	ownedPID  = filepath.Join(stateDir, "zfs-fuse.pid") // present only when this package started the daemon
)

// Pool is a file-backed pool that lives for one test.
type Pool struct {
	Name       string // unique: orchtest-PID-N
	Mountpoint string // where the pool's root dataset is mounted
	File       string // the backing file
}

var poolSeq atomic.Int64

// Available says why zfs-fuse cannot be used here, or nil when it can.
func Available() error {
	for _, bin := range []string{ZFS, Zpool, Daemon} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("zfstest: %s is missing (apt-get install zfs-fuse; scripts/install-deps does)", bin)
		}
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return errors.New("zfstest: /dev/fuse is missing")
	}
	if os.Geteuid() != 0 {
		return errors.New("zfstest: zfs-fuse pools need root")
	}
	return nil
}

// New creates a pool for tb, starting the zfs-fuse daemon if none runs, and
// destroys it when tb ends. Where ZFS cannot be had, the test skips (or fails
// under ORCH_TEST_REQUIRE, see package require).
func New(tb testing.TB) *Pool {
	tb.Helper()
	if err := Available(); err != nil {
		require.Missing(tb, err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := acquire(ctx); err != nil {
		require.Missing(tb, err.Error())
	}
	dir := tb.TempDir()
	p := &Pool{
		Name:       fmt.Sprintf("orchtest-%d-%d", os.Getpid(), poolSeq.Add(1)),
		Mountpoint: filepath.Join(dir, "mnt"),
		File:       filepath.Join(dir, "vdev"),
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.destroy(ctx); err != nil {
			tb.Errorf("zfstest: %v", err)
		}
		release()
	})
	if err := p.create(ctx); err != nil {
		tb.Fatalf("zfstest: %v", err)
	}
	return p
}

// ZFS runs zfs with args and returns its standard output; a failure fails
// the test with zfs's own message.
func (p *Pool) ZFS(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := Run(context.Background(), ZFS, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// Run runs a zfs or zpool command and returns its standard output. A
// non-zero exit is an error carrying the command and its standard error.
func Run(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (p *Pool) create(ctx context.Context) error {
	f, err := os.Create(p.File)
	if err != nil {
		return err
	}
	err = f.Truncate(PoolSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = Run(ctx, Zpool, "create", "-m", p.Mountpoint, p.Name, p.File)
	return err
}

func (p *Pool) destroy(ctx context.Context) error {
	if _, err := Run(ctx, Zpool, "list", "-H", "-o", "name", p.Name); err != nil {
		return nil // never created, or already gone
	}
	// zfs-fuse lets go of files a while after they are closed (from a few
	// milliseconds to seconds): until then the pool is "busy". A sync
	// shortens the wait.
	syscall.Sync()
	for {
		_, err := Run(ctx, Zpool, "destroy", "-f", p.Name)
		if err == nil || !strings.Contains(err.Error(), "pool is busy") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// The daemon is shared by every test process of the machine. A process
// holds a shared lock on useLock while it has pools; the daemon is started
// under startLock and stopped only by a process that gets useLock
// exclusively, so never under another process's feet.
var (
	mu      sync.Mutex
	users   int      // this process's live pools
	useFile *os.File // holds the shared lock while users > 0
)

func acquire(ctx context.Context) error {
	mu.Lock()
	defer mu.Unlock()
	if users == 0 {
		f, err := lockFile(ctx, useLock, syscall.LOCK_SH)
		if err != nil {
			return err
		}
		useFile = f
	}
	if err := ensureDaemon(ctx); err != nil {
		if users == 0 {
			useFile.Close()
		}
		return err
	}
	users++
	return nil
}

func release() {
	mu.Lock()
	defer mu.Unlock()
	if users--; users > 0 {
		return
	}
	useFile.Close()
	stopIfUnused()
}

// ensureDaemon starts zfs-fuse unless a daemon answers, and clears pools
// that dead test processes left behind.
func ensureDaemon(ctx context.Context) error {
	sf, err := lockFile(ctx, startLock, syscall.LOCK_EX)
	if err != nil {
		return err
	}
	defer sf.Close()
	if !answers(ctx) {
		// A daemon that died leaves its pid file and socket; both block a new one.
		os.Remove(ownedPID)
		os.Remove("/var/run/zfs/zfs_socket")
		if err := startDaemon(ctx); err != nil {
			return err
		}
		for !answers(ctx) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("zfstest: zfs-fuse did not answer: %w", ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	removeStalePools(ctx)
	return nil
}

// startDaemon runs zfs-fuse, which detaches itself. Its output goes to a
// log file, not a pipe: the detached daemon would hold a pipe open forever.
func startDaemon(ctx context.Context) error {
	logPath := filepath.Join(stateDir, "zfs-fuse.log")
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, Daemon, "--pidfile", ownedPID)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("zfstest: starting zfs-fuse: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func answers(ctx context.Context) bool {
	_, err := Run(ctx, Zpool, "list", "-H", "-o", "name")
	return err == nil
}

var testPool = regexp.MustCompile(`^orchtest-(\d+)-\d+$`)

// removeStalePools destroys the pools of test processes that are gone
// (killed before their cleanup ran). zfs-fuse re-imports them from its
// cache on every start, faulted once their files are deleted.
func removeStalePools(ctx context.Context) {
	out, err := Run(ctx, Zpool, "list", "-H", "-o", "name")
	if err != nil {
		return
	}
	for _, name := range strings.Fields(out) {
		m := testPool.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || alive(pid) {
			continue
		}
		Run(ctx, Zpool, "destroy", "-f", name)
	}
}

// stopIfUnused stops a daemon this package started once no test process
// uses it and no pool is left.
func stopIfUnused() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data, err := os.ReadFile(ownedPID)
	if err != nil {
		return // not ours: a system or CI daemon keeps running
	}
	uf, err := lockFile(ctx, useLock, syscall.LOCK_EX|syscall.LOCK_NB)
	if err != nil {
		return // another test process still uses it
	}
	defer uf.Close()
	if out, err := Run(ctx, Zpool, "list", "-H", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || syscall.Kill(pid, syscall.SIGTERM) != nil {
		os.Remove(ownedPID)
		return
	}
	// zfs-fuse takes a few seconds to sync and exit.
	for alive(pid) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	os.Remove(ownedPID)
}

// alive reports whether pid runs: a daemon that exited stays a zombie
// until init reaps it.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// lockFile opens path and flocks it with how (LOCK_SH or LOCK_EX, maybe
// with LOCK_NB), waiting until ctx ends. Closing the file drops the lock.
func lockFile(ctx context.Context, path string, how int) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || how&syscall.LOCK_NB != 0 {
			f.Close()
			return nil, fmt.Errorf("zfstest: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("zfstest: lock %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
	}
}
