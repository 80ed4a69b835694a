package sshconn

import (
	"os/exec"
	"strings"
	"testing"
)

func TestEscapedCommand(t *testing.T) {
	script := "printf '%s|' \"$1\" `echo a` \\ ! \n\techo ü %b \\0101 \\c done; exit 4"
	cmd, ok := escapedCommand(script)
	if !ok {
		t.Fatal("not ok")
	}
	if strings.ContainsAny(cmd[len("/bin/sh -c '"):len(cmd)-1], "'\n!\t") {
		t.Errorf("command holds characters a login shell may mangle: %s", cmd)
	}
	// The login shell's view: sh -c COMMAND.
	out, err := exec.Command("/bin/sh", "-c", cmd).CombinedOutput()
	want, werr := exec.Command("/bin/sh", "-c", script).CombinedOutput()
	if string(out) != string(want) || err == nil || werr == nil || err.Error() != werr.Error() {
		t.Errorf("escaped: %q %v\ndirect:  %q %v", out, err, want, werr)
	}
	if _, ok := escapedCommand(strings.Repeat("'", maxCommand/4)); ok {
		t.Error("oversized command accepted")
	}
}
