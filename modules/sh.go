package modules

import "github.com/orch-dev/orch/internal/shell"

// Quote returns s as one POSIX sh word, for modules' snippets.
func Quote(s string) string { return shell.Quote(s) }

// Prelude defines the portable sh helpers that probes and applies may call.
// The engine sends it once per remote script. They work with GNU coreutils
// and with FreeBSD's base system alike.
//
// Probes call them in the current shell, never in $(…), so that probing a
// file costs one process for stat and one for its hash, and no subshells.
const Prelude = `
if command -v sha256sum >/dev/null 2>&1; then _orch_sha256() { sha256sum "$@"; }
elif command -v sha256 >/dev/null 2>&1; then _orch_sha256() { sha256 -r "$@"; }
else _orch_sha256() { openssl dgst -sha256 -r "$@"; }; fi
# Linux (a /proc/self) has a stat with -c, GNU's or BusyBox's: only elsewhere
# does telling GNU's from BSD's cost a process.
if [ -d /proc/self ] || stat -c %a / >/dev/null 2>&1; then _orch_statall() { stat -c '%f %u %g %U %G %n' "$@"; }
else _orch_statall() { stat -f '%Xp %u %g %Su %Sg %N' "$@"; }; fi
_orch_statsome() { # stats the arguments that exist, in order: none, no process
  _orch_n=$#
  for p; do if [ -e "$p" ] || [ -L "$p" ]; then set -- "$@" "$p"; fi; done
  shift "$_orch_n"
  if [ $# -gt 0 ]; then _orch_statall "$@"; fi
}
_orch_hashall() { # hashes the arguments that are regular files, in order
  _orch_n=$#
  for p; do if [ -f "$p" ] && [ ! -L "$p" ]; then set -- "$@" "$p"; fi; done
  shift "$_orch_n"
  if [ $# -gt 0 ]; then _orch_sha256 "$@"; fi
}
_orch_b64d() {
  if command -v base64 >/dev/null 2>&1; then base64 -d; else b64decode -r; fi
}
_orch_b64e() {
  if command -v base64 >/dev/null 2>&1; then base64 < "$1"; else b64encode -r - < "$1"; fi
}
_orch_werr() { # $1's write failed: printf says only "I/O error"; cat, adding one byte, says why ("No space left on device")
  if [ -f "$1" ] && [ ! -L "$1" ]; then printf x | cat >> "$1"; fi
  exit 1
}
_orch_mvlink() { # renames link $1 over $2, even when $2 is a link to a directory
  if mv --version >/dev/null 2>&1; then mv -Tf "$1" "$2"; else mv -hf "$1" "$2"; fi
}
_orch_kind() {
  if [ -L "$1" ]; then echo link
  elif [ -f "$1" ]; then echo file
  elif [ -d "$1" ]; then echo directory
  elif [ -e "$1" ]; then echo other
  else echo absent; fi
}
_orch_timeout() { # runs "$@" for at most $1 seconds, ending its whole process group
  _orch_t=$1; shift
  if command -v timeout >/dev/null 2>&1; then timeout -k 2 "$_orch_t" "$@"; return; fi
  "$@" & _orch_p=$!
  ( sleep "$_orch_t"; kill -TERM "$_orch_p" 2>/dev/null; sleep 2; kill -KILL "$_orch_p" 2>/dev/null ) &
  _orch_w=$!
  wait "$_orch_p"; _orch_rc=$?
  kill "$_orch_w" 2>/dev/null
  [ "$_orch_rc" -lt 128 ] || _orch_rc=124
  return "$_orch_rc"
}
`
