package pkg

import (
	"fmt"
	"strings"
)

// aptHelper runs apt-get non-interactively, in the C locale so that its
// messages can be read, waiting for the package manager's locks until a
// deadline: dpkg's through apt's own DPkg::Lock::Timeout, the list lock
// (which apt-get update does not wait for) by trying again each second.
// It then names the lock's holder. A package the cache does not have is
// named on the last line.
const aptHelper = `_orch_apt() {
  _orch_end=$(( $(date +%s) + _orch_lock ))
  while :; do
    _orch_left=$(( _orch_end - $(date +%s) ))
    [ "$_orch_left" -gt 0 ] || _orch_left=0
    _orch_rc=0
    _orch_out=$(LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout="$_orch_left" \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null 2>&1) || _orch_rc=$?
    case $_orch_rc:$_orch_out in
    0:*) printf '%s\n' "$_orch_out"; return 0 ;;
    *"Could not get lock"* | *"Unable to acquire the dpkg frontend lock"*)
      if [ "$(date +%s)" -lt "$_orch_end" ]; then sleep 1; continue; fi
      printf '%s\n' "$_orch_out"
      _orch_who=$(printf '%s\n' "$_orch_out" | sed -n 's/.*Could not get lock \([^ ]*\)\. It is held by \(process [0-9]* ([^)]*)\).*/\1, held by \2/p' | sed -n '$p')
      echo "pkg: the package manager's lock was still held after ${_orch_lock}s${_orch_who:+: $_orch_who}"
      return 1 ;;
    esac
    printf '%s\n' "$_orch_out"
    _orch_miss=$(printf '%s\n' "$_orch_out" | sed -n -e 's/^E: Unable to locate package \(.*\)/\1/p' \
      -e "s/^E: Package '\(.*\)' has no installation candidate/\1/p" | tr '\n' ' ')
    if [ -n "$_orch_miss" ]; then echo "pkg: no such package in the apt cache: ${_orch_miss% }"; fi
    return "$_orch_rc"
  done
}
`

// aptScript is the apply snippet: the refresh, then one apt-get
// transaction for all the names.
func aptScript(p *Pkg, pl plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "_orch_lock=%d\n%s", seconds(p.LockTimeout), aptHelper)
	if pl.refresh != "" {
		// apt's own stamp of a successful update, which APT::Periodic
		// keeps too: it dates the cache for cache_max_age.
		b.WriteString("_orch_apt update\nmkdir -p /var/lib/apt/periodic\ntouch " + aptStamp + "\n")
	}
	if install := installList(p, pl); len(install) > 0 {
		b.WriteString("_orch_apt install" + quoteAll(install) + "\n")
	}
	if len(pl.remove) > 0 {
		b.WriteString("_orch_apt remove" + quoteAll(pl.remove) + "\n")
	}
	return b.String()
}

// installList is what the transaction installs: after a refresh for
// "latest", every name (the package manager upgrades what the fresh
// catalogue has newer and leaves the rest), else what the check found
// missing or old.
func installList(p *Pkg, pl plan) []string {
	if pl.refresh != "" && p.State == "latest" {
		return p.Names
	}
	return pl.install
}
