//go:build !linux

package sshdtest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// signalTree signals the process group only: connection processes that sshd
// moved to their own sessions are missed.
func signalTree(_ map[int][]int, pid int, sig syscall.Signal) { _ = syscall.Kill(-pid, sig) }

func processTree() map[int][]int { return nil }

func sshdProcesses(pid int) []int { return []int{pid} }
