//go:build !unix

package conn

import "os/exec"

func setProcessGroup(cmd *exec.Cmd) {}
