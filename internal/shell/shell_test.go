package shell

import (
	"os/exec"
	"testing"
)

func TestQuoteRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", "/etc/motd", "http://127.0.0.1:8080", "a b", "it's", `"$HOME" $(id) ` + "`x`", "tab\tnew\nline", "-n", "*", "~root"} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q) = %s: sh read %q (%v)", s, Quote(s), out, err)
		}
	}
	if got := Quote("/etc/motd"); got != "/etc/motd" {
		t.Errorf("a safe word was quoted: %s", got)
	}
}
