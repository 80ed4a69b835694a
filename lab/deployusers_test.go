package lab_test

import (
	"strings"
	"testing"
)

// TestDeployUsers logs in as the image's two non-root users with the lab's
// client key: deploy may sudo without a password, deploy-pw only with its
// password, orch-lab-sudo.
func TestDeployUsers(t *testing.T) {
	l := needLab(t)
	addr := status(t)["lb1"].Address
	run := func(user, cmd, stdin string) (string, error) {
		t.Helper()
		return sshRunAs(user, addr, l.KnownHostsPath(), l.KeyPath(), cmd, stdin)
	}
	for _, c := range []struct {
		user, cmd, stdin, want string
		fails                  bool
	}{
		{"deploy", "id -un; sudo -n id -u", "", "deploy\n0", false},
		{"deploy-pw", "id -un", "", "deploy-pw", false},
		{"deploy-pw", "sudo -n id -u", "", "sudo: a password is required", true},
		{"deploy-pw", "sudo -S -p '' id -u", "orch-lab-sudo\n", "0", false},
		{"deploy-pw", "sudo -S -p '' id -u", "wrong\n", "Sorry, try again", true},
	} {
		got, err := run(c.user, c.cmd, c.stdin)
		if (err != nil) != c.fails || !strings.Contains(got, c.want) {
			t.Errorf("%s: %s: %q, err %v; want %q (failing: %v)", c.user, c.cmd, got, err, c.want, c.fails)
		}
	}
}
