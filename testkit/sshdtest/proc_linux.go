package sshdtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr {
	// Pdeathsig ends the servers even if the test binary is killed.
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// processTree maps each process to its children.
func processTree() map[int][]int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// The command name may contain spaces; fields resume after ")".
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		child, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		children[ppid] = append(children[ppid], child)
	}
	return children
}

// signalTree sends sig to pid and all its descendants, as listed by
// processTree (nil: read it now). sshd moves each connection's process into
// a new session, so signalling the process group is not enough.
func signalTree(children map[int][]int, pid int, sig syscall.Signal) {
	if children == nil {
		children = processTree()
	}
	var walk func(int)
	walk = func(p int) {
		// Stop first so the process cannot fork while we walk its children.
		_ = syscall.Kill(p, syscall.SIGSTOP)
		for _, c := range children[p] {
			walk(c)
		}
		_ = syscall.Kill(p, sig)
	}
	walk(pid)
}

// sshdProcesses lists pid and its descendants that are sshd processes (the
// listener and the per-connection ones), not the shells they started.
func sshdProcesses(pid int) []int {
	children := processTree()
	var out []int
	var walk func(int)
	walk = func(p int) {
		if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/comm"); strings.TrimSpace(string(comm)) == "sshd" || strings.HasPrefix(string(comm), "sshd-") {
			out = append(out, p)
		}
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
	return out
}
