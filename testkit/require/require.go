// Package require decides what a test does when something it needs (Docker,
// sshd, root, ZFS, a tool) is missing. On a developer's machine it skips with
// the reason; where ORCH_TEST_REQUIRE is set, as CI sets it, it fails, so a
// missing install step can never pass as a skipped test.
package require

import (
	"fmt"
	"os"
	"testing"
)

// Env is the variable that turns skips into failures.
const Env = "ORCH_TEST_REQUIRE"

// Strict reports whether missing prerequisites fail tests.
func Strict() bool { return os.Getenv(Env) != "" }

// Missing skips tb with why, or fails it when Strict.
func Missing(tb testing.TB, why string) {
	tb.Helper()
	if Strict() {
		tb.Fatalf("%s (%s is set: prerequisites must be present)", why, Env)
	}
	tb.Skip(why)
}

// Missingf is Missing with a format.
func Missingf(tb testing.TB, format string, args ...any) {
	tb.Helper()
	Missing(tb, fmt.Sprintf(format, args...))
}
