#!/bin/sh
# orch lab machine init: the container's command, run under tini.
# Applies the seed once (like cloud-init's per-instance stage), starts the
# machine's services, makes sure sshd has a host key, then becomes sshd.
seed=/etc/orch-lab
log=/var/log/cloud-init-output.log

if [ -f "$seed/boot.sh" ] && [ ! -e /var/lib/orch-lab/booted ]; then
	mkdir -p /var/lib/orch-lab
	/bin/sh "$seed/boot.sh" >>"$log" 2>&1
	echo "orch lab boot: finished, exit $?" >>"$log"
	: >/var/lib/orch-lab/booted
fi

if [ -f "$seed/services" ]; then
	while read -r svc; do
		[ -n "$svc" ] && service "$svc" start >>"$log" 2>&1
	done <"$seed/services"
fi

# An injected key wins; otherwise one ed25519 key, so that the key the lab
# records is the only one sshd can offer.
if ! ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
	ssh-keygen -q -t ed25519 -N '' -C "root@$(hostname)" -f /etc/ssh/ssh_host_ed25519_key
fi
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
