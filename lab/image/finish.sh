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

# Services start where a machine's role enables them (update-rc.d NAME
# enable): the container's init starts what runlevel 2 would start at boot,
# as sysvinit does. The image enables none of its daemons; sshd is the
# container's main process.
for s in apt-cacher-ng haproxy named nginx; do
	update-rc.d "$s" disable >/dev/null
done

# Two non-root users for become tests, lab fixtures both: deploy may sudo
# without a password; deploy-pw must give its password, orch-lab-sudo
# (a published test password, never to be used outside the lab). Both log in
# with the lab's client key, which each machine's seed installs. '*' is no
# password, which sshd does not treat as a locked account.
useradd --create-home --shell /bin/bash deploy
usermod -p '*' deploy
useradd --create-home --shell /bin/bash deploy-pw
echo 'deploy-pw:orch-lab-sudo' | chpasswd
cat > /etc/sudoers.d/orch-lab <<'CONF'
# orch lab fixtures for become tests.
Defaults lecture = never
deploy ALL=(ALL:ALL) NOPASSWD: ALL
deploy-pw ALL=(ALL:ALL) ALL
CONF
chmod 0440 /etc/sudoers.d/orch-lab
visudo -c -q -f /etc/sudoers.d/orch-lab

# The lab's apt proxy runs apt-cacher-ng as its own user, in the foreground.
chown apt-cacher-ng:apt-cacher-ng /run/apt-cacher-ng

# Later installs stay as lean as the image, and package list updates
# fetch no translations.
printf 'APT::Install-Recommends "false";\nAcquire::Languages "none";\n' > /etc/apt/apt.conf.d/99orch-lab

if dpkg-query -W -f '${Package}\n' | grep -q '^python'; then
	echo "orch lab image: a python package was pulled in:" >&2
	dpkg-query -W -f '${Package}\n' | grep '^python' >&2
	exit 1
fi

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log /var/log/bootstrap.log
rm -f /usr/sbin/policy-rc.d
