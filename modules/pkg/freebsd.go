package pkg

import (
	"fmt"
	"strings"
)

// freebsdHelper runs a pkg command and names, on its last line, the
// packages the repositories do not have (libpkg's "No packages available
// to install matching 'NAME' have been found in the repositories") or the
// lock that pkg gave up waiting for.
const freebsdHelper = `_orch_pkg() {
  _orch_rc=0
  _orch_out=$("$@" </dev/null 2>&1) || _orch_rc=$?
  printf '%s\n' "$_orch_out"
  [ "$_orch_rc" -ne 0 ] || return 0
  _orch_miss=$(printf '%s\n' "$_orch_out" | sed -n "s/.*No packages available to install matching '\(.*\)' have been found in the repositories/\1/p" | tr '\n' ' ')
  if [ -n "$_orch_miss" ]; then echo "pkg: no such package in the pkg catalogue: ${_orch_miss% }"; fi
  case $_orch_out in *"Cannot get an advisory lock"*) echo "pkg: the package database was still locked after ${_orch_lock}s" ;; esac
  return "$_orch_rc"
}
`

// freebsdScript is the apply snippet: pkg update, then one pkg install
// or pkg delete for all the names, with -U so that the install does not
// refresh the catalogue on its own. pkg waits LOCK_WAIT seconds between
// LOCK_RETRIES tries for its database lock (pkg.conf(5)).
func freebsdScript(p *Pkg, pl plan) string {
	lock := seconds(p.LockTimeout)
	pkg := fmt.Sprintf("%s -o LOCK_WAIT=1 -o LOCK_RETRIES=%d", pkgCmd(p.Jail), lock)
	var b strings.Builder
	fmt.Fprintf(&b, "_orch_lock=%d\n%s", lock, freebsdHelper)
	if pl.refresh != "" {
		b.WriteString("_orch_pkg " + pkg + " update\n")
		b.WriteString(inJail(p.Jail, "mkdir -p "+freebsdRepos+" && touch "+freebsdStamp) + "\n")
	}
	if install := installList(p, pl); len(install) > 0 {
		b.WriteString("_orch_pkg " + pkg + " install -y -U" + quoteAll(install) + "\n")
	}
	if len(pl.remove) > 0 {
		b.WriteString("_orch_pkg " + pkg + " delete -y" + quoteAll(pl.remove) + "\n")
	}
	return b.String()
}
