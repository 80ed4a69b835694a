#!/bin/sh
# Finishes the lab image inside its root file system, after the packages are
# installed: under chroot (debootstrap build) or in a RUN step (docker build).
set -eu

# Every container gets its own host key when it starts; none may be shared.
rm -f /etc/ssh/ssh_host_*

cat > /etc/ssh/sshd_config.d/orch-lab.conf <<'CONF'
# orch lab: root logs in with keys only.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
CONF

# An authoritative-only named: a recursive or validating one would query the
# root servers, and the lab must never send traffic off the machine.
cat > /etc/bind/named.conf.options <<'CONF'
options {
	directory "/var/cache/bind";
	recursion no;
	dnssec-validation no;
	notify no;
	listen-on { any; };
	listen-on-v6 { none; };
	allow-query { any; };
};
CONF

# Later installs stay as lean as the image.
printf 'APT::Install-Recommends "false";\n' > /etc/apt/apt.conf.d/99orch-lab

if dpkg-query -W -f '${Package}\n' | grep -q '^python'; then
	echo "orch lab image: a python package was pulled in:" >&2
	dpkg-query -W -f '${Package}\n' | grep '^python' >&2
	exit 1
fi

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log /var/log/bootstrap.log
rm -f /usr/sbin/policy-rc.d
