#!/bin/sh
# orch lab machine init: the container's command, run under tini.
# Applies the seed once (like cloud-init's per-instance stage), takes back
# the reserved IPs the machine held, starts what runlevel 2 starts (as
# sysvinit would at boot), makes sure sshd has a host key, then becomes sshd.
seed=/etc/orch-lab
log=/var/log/cloud-init-output.log

if [ -f "$seed/boot.sh" ] && [ ! -e /var/lib/orch-lab/booted ]; then
	mkdir -p /var/lib/orch-lab
	/bin/sh "$seed/boot.sh" >>"$log" 2>&1
	echo "orch lab boot: finished, exit $?" >>"$log"
	: >/var/lib/orch-lab/booted
fi

# Docker gives a restarted container the hostname it was created with; a
# machine the lab renamed gets its name back in /etc (the kernel's hostname
# needs a privilege the machine lacks: the lab's next start sets it).
if [ -s "$seed/hostname" ] && [ "$(cat "$seed/hostname")" != "$(hostname)" ]; then
	name=$(cat "$seed/hostname")
	echo "$name" >/etc/hostname
	sed "s/[[:space:]]$(hostname)\$/ $name $(hostname)/" /etc/hosts >/tmp/.orch-hosts && cat /tmp/.orch-hosts >/etc/hosts
	rm -f /tmp/.orch-hosts
fi

# The lab keeps this list current as reserved IPs move, running or not, so a
# restarted machine gets back what it holds. Unsolicited ARP tells the
# neighbours (the host included) where the address is now.
if [ -s "$seed/reserved-ips" ]; then
	while read -r cidr; do
		[ -n "$cidr" ] || continue
		ip addr add "$cidr" dev eth0 >>"$log" 2>&1
		(arping -q -U -c 2 -I eth0 "${cidr%/*}" >/dev/null 2>&1 &)
	done <"$seed/reserved-ips"
fi

# Services enabled for runlevel 2 (update-rc.d NAME enable), in their
# order; sshd is this script's own.
for s in /etc/rc2.d/S*; do
	[ -x "$s" ] || continue
	case "$s" in */S[0-9][0-9]ssh) continue ;; esac
	"$s" start >>"$log" 2>&1
done

# An injected key wins; otherwise one ed25519 key, so that the key the lab
# records is the only one sshd can offer.
if ! ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
	ssh-keygen -q -t ed25519 -N '' -C "root@$(hostname)" -f /etc/ssh/ssh_host_ed25519_key
fi
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
