// Package shell quotes strings for POSIX sh, for every package that writes
// scripts: modules, connections and the lab.
package shell

import "strings"

// safe are the bytes that need no quoting in any position of a word.
const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:@,+%"

// Quote returns s as one POSIX sh word: bare when it holds only safe
// characters, single-quoted otherwise.
func Quote(s string) string {
	if s != "" && strings.Trim(s, safe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
