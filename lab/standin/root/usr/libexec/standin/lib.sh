# lib.sh: shared by the FreeBSD stand-ins of orch's lab (lab/standin).
# These scripts follow FreeBSD 14's commands (arguments, exit statuses,
# output formats as recorded under testdata/freebsd); they run on Linux,
# in a container, over real zfs-fuse datasets. They are not FreeBSD.
#
# A jail is a record under $jails (one file per attribute) and a "holder"
# process: a sleep in the jail's own UTS namespace (its hostname) and,
# when the jail has addresses, its own network namespace wired to the host
# by a veth pair. Jailed processes run in those namespaces, chrooted into
# the jail's path.

PROG=${0##*/}
run=/var/run/standin
jails=$run/jails
db=/var/db/standin
libexec=/usr/libexec/standin
SEP=$(printf '\037')

warnx() { printf '%s: %s\n' "$PROG" "$*" >&2; }
errx() { _code=$1; shift; warnx "$@"; exit "$_code"; }

is_true() {
	case $1 in
	[Tt][Rr][Uu][Ee] | [Yy][Ee][Ss] | [Oo][Nn] | 1) return 0 ;;
	esac
	return 1
}

# lock serialises changes to jails and boot environments.
lock() {
	mkdir -p "$run"
	exec 9>"$run/lock"
	flock 9
}

# param FILE NAME prints a parameter of a resolved parameter file (lines
# "name<TAB>value", lists joined by \037, newlines as \036), lists joined
# with commas. It fails when the parameter is not set.
param() {
	awk -F '\t' -v k="$2" '
		$1 == k { v = substr($0, length($1) + 2); gsub(/\036/, "\n", v); gsub(/\037/, ",", v); print v; found = 1; exit }
		END { exit !found }' "$1"
}

# param_items FILE NAME prints a list parameter one item a line, newlines
# inside an item still written as \036 (run_cmd decodes them).
param_items() {
	awk -F '\t' -v k="$2" '
		$1 == k { v = substr($0, length($1) + 2); n = split(v, item, "\037"); for (i = 1; i <= n; i++) if (item[i] != "") print item[i]; exit }' "$1"
}

# alive PID: the process exists and is not a zombie.
alive() {
	[ -n "$1" ] || return 1
	_state=$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
	[ -n "$_state" ] && [ "$_state" != Z ]
}

jail_attr() { cat "$jails/$1/$2" 2>/dev/null; }

# jail_running NAME: its record exists and its holder lives.
jail_running() {
	[ -d "$jails/$1" ] && alive "$(jail_attr "$1" holder)"
}

# jail_find NAME|JID sets J to the name of a running jail.
jail_find() {
	gc_jails
	case $1 in
	'' | *[!0-9]*) J=$1 ;;
	*) J=$(cat "$run/jids/$1" 2>/dev/null) || return 1 ;;
	esac
	[ -n "$J" ] && jail_running "$J"
}

# jail_pids NAME lists the processes in the jail (those in its UTS
# namespace), its holder left out.
jail_pids() {
	_holder=$(jail_attr "$1" holder)
	_ns=$(readlink "/proc/$_holder/ns/uts" 2>/dev/null) || return 0
	for _p in /proc/[0-9]*; do
		_pid=${_p#/proc/}
		[ "$_pid" = "$_holder" ] && continue
		[ "$(readlink "$_p/ns/uts" 2>/dev/null)" = "$_ns" ] && echo "$_pid"
	done
}

# gc_jails drops the records of jails whose holder died, and removes
# non-persistent jails whose last process has exited, as the kernel does.
gc_jails() {
	[ -d "$jails" ] || return 0
	for _d in "$jails"/*; do
		[ -d "$_d" ] || continue
		_n=${_d##*/}
		if ! alive "$(jail_attr "$_n" holder)"; then
			jail_teardown "$_n"
		elif ! is_true "$(jail_attr "$_n" persist)" && [ -z "$(jail_pids "$_n")" ] && [ ! -e "$_d/starting" ]; then
			kill -KILL "$(jail_attr "$_n" holder)" 2>/dev/null
			jail_teardown "$_n"
		fi
	done
}

# jail_teardown NAME undoes what creating the jail set up on the host:
# mounts, the proxy ARP entries, the record.
jail_teardown() {
	_d=$jails/$1
	_path=$(jail_attr "$1" path)
	if [ -f "$_d/mounts" ]; then
		# Newest first.
		sed '1!G;h;$!d' "$_d/mounts" | while read -r _m; do umount "$_m" 2>/dev/null || umount -l "$_m" 2>/dev/null; done
	fi
	_uplink=$(jail_attr "$1" uplink)
	for _a in $(jail_attr "$1" ip4 | tr , ' '); do
		ip neigh del proxy "$_a" dev "$_uplink" 2>/dev/null
	done
	rm -f "$run/jids/$(jail_attr "$1" jid)"
	rm -rf "$_d"
}

# jail_exec NAME CMD... runs CMD inside the jail: in its namespaces,
# chrooted into its path, with the jail's marker in the environment (the
# stand-in's sysctl reads security.jail.jailed from it).
jail_exec() {
	_n=$1
	shift
	_holder=$(jail_attr "$_n" holder)
	_nsflags=-u
	[ -n "$(jail_attr "$_n" ip4)" ] && _nsflags="-u -n"
	# shellcheck disable=SC2086
	nsenter -t "$_holder" $_nsflags -- env STANDIN_JAIL="$_n" STANDIN_JID="$(jail_attr "$_n" jid)" \
		chroot "$(jail_attr "$_n" path)" "$@"
}

# uplink prints the host's interface with the default route.
uplink() {
	ip -o route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }'
}

# json_str VALUE prints VALUE as a JSON string.
json_str() {
	printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g')"
}

# nicenum BYTES prints a size as zfs_nicenum() does (OpenZFS
# lib/libzutil/zutil_nicenum.c): 1024-based units, at most 5 characters,
# no decimals for exact multiples.
nicenum() {
	awk -v n="$1" 'BEGIN {
		split("K M G T P E", unit, " ")
		if (n < 1024) { printf "%d\n", n; exit }
		i = 0; v = n
		while (v >= 1024 && i < 6) { v = v / 1024; i++ }
		d = 1; for (k = 0; k < i; k++) d *= 1024
		if (n % d == 0) { printf "%d%s\n", n / d, unit[i]; exit }
		for (p = 2; p >= 0; p--) { s = sprintf("%.*f%s", p, n / d, unit[i]); if (length(s) <= 5) break }
		print s
	}'
}
