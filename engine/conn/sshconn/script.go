package sshconn

import (
	"fmt"
	"strings"
)

// maxCommand bounds the exec request's command line. Linux limits one
// argument to 128 KiB (MAX_ARG_STRLEN) and the login shell receives the whole
// command as one argument.
const maxCommand = 100 << 10

// selfDeleting starts an uploaded script: sh keeps the file open, so removing
// it at once leaves nothing behind even if the script is killed.
const selfDeleting = "rm -f \"$0\"\n"

// escapedCommand builds a command line that runs script with /bin/sh whatever
// the user's login shell is. Every byte that some shell treats specially
// inside single quotes (newline and ! for csh, \ for fish, ' for all) or that
// sh treats specially inside double quotes is written as a printf %b octal
// escape, so the login shell passes the text through unchanged and sh decodes
// it. It reports false when the result would be too long.
func escapedCommand(script string) (string, bool) {
	const prefix, suffix = `/bin/sh -c 'eval "$(printf %b "`, `")"'`
	var b strings.Builder
	b.Grow(len(prefix) + len(script) + len(suffix))
	b.WriteString(prefix)
	for i := 0; i < len(script); i++ {
		ch := script[i]
		if ch >= ' ' && ch <= '~' && !strings.ContainsRune("'\"\\!$`", rune(ch)) {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, `\0%03o`, ch)
		}
		if b.Len() > maxCommand {
			return "", false
		}
	}
	b.WriteString(suffix)
	return b.String(), true
}
