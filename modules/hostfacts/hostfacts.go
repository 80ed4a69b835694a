// Package hostfacts registers the facts of a host as a whole that plans
// read with h.fact(name) and modules read as FactKey{Fact: name}: os,
// kernel, arch, hostname, user, distribution, version, os_family,
// init_system, pkg_manager and boot_id. Each is a POSIX sh command plus a
// parser, tested on output captured from (or, where marked, transcribed
// for) Debian 12, Ubuntu 24.04, FreeBSD 14 and systemd hosts in
// testdata/facts. The commands use shell builtins wherever they can, so
// gathering every host fact costs a handful of processes in one exchange.
package hostfacts

import (
	"fmt"
	"strings"

	"github.com/orch-dev/orch/modules"
)

// Facts maps each fact's name to its definition.
var Facts = map[string]*modules.HostFact{
	"os": {Doc: `kernel name, lower case: "linux", "freebsd", "darwin"`,
		Command: "uname -s", Parser: lower},
	"kernel": {Doc: `kernel release: "6.1.0-27-amd64", "14.1-RELEASE"`,
		Command: "uname -r", Parser: line},
	"arch": {Doc: `machine hardware name: "x86_64", "amd64", "aarch64"`,
		Command: "uname -m", Parser: line},
	"hostname": {Doc: "the host's node name",
		Command: "uname -n", Parser: line},
	"user": {Doc: "the user the scripts run as (after become)",
		Command: "id -un", Parser: line},
	"distribution": {Doc: `ID from /etc/os-release: "debian", "ubuntu", "freebsd"`,
		Command: osRelease, Parser: osReleaseField("ID")},
	"version": {Doc: `VERSION_ID from /etc/os-release: "12", "24.04", "14.1"`,
		Command: osRelease, Parser: osReleaseField("VERSION_ID")},
	"os_family": {Doc: `ID_LIKE from /etc/os-release, else ID: "debian", "rhel fedora", "freebsd"`,
		Command: osRelease, Parser: osFamily},
	"init_system": {Doc: `what starts services: "systemd", "sysvinit" (service and update-rc.d), "rc" (FreeBSD rc.d and sysrc), "openrc", or "unknown"`,
		Command: initSystem, Parser: oneOf("systemd", "sysvinit", "rc", "openrc", "unknown")},
	"pkg_manager": {Doc: `the package manager: "apt", "pkg" (FreeBSD), "dnf", "yum", "apk", "zypper", or "unknown"`,
		Command: pkgManager, Parser: oneOf("apt", "pkg", "dnf", "yum", "apk", "zypper", "unknown")},
	"boot_id": {Doc: "an ID that changes when the host boots: Linux's kernel.random.boot_id, FreeBSD's kern.boot_id, else the boot time",
		Command: bootID, Parser: line},
}

func init() {
	for name, f := range Facts {
		modules.RegisterFact(name, f)
	}
}

// osRelease prints /etc/os-release with builtins only.
const osRelease = `if [ -r /etc/os-release ]; then while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < /etc/os-release; fi`

const initSystem = `if [ -d /run/systemd/system ]; then echo systemd
elif [ -f /etc/rc.subr ] && [ -x /usr/sbin/sysrc ]; then echo rc
elif [ -x /sbin/openrc ]; then echo openrc
elif [ -d /etc/init.d ] && command -v update-rc.d >/dev/null 2>&1; then echo sysvinit
else echo unknown; fi`

const pkgManager = `if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then echo apt
elif [ -x /usr/sbin/pkg ] && [ -f /etc/rc.subr ]; then echo pkg
elif command -v dnf >/dev/null 2>&1; then echo dnf
elif command -v yum >/dev/null 2>&1; then echo yum
elif command -v apk >/dev/null 2>&1; then echo apk
elif command -v zypper >/dev/null 2>&1; then echo zypper
else echo unknown; fi`

const bootID = `if [ -r /proc/sys/kernel/random/boot_id ]; then IFS= read -r b < /proc/sys/kernel/random/boot_id; echo "$b"
elif b=$(sysctl -n kern.boot_id 2>/dev/null) && [ -n "$b" ]; then echo "$b"
else sysctl -n kern.boottime 2>/dev/null || uptime -s; fi`

func line(out []byte) (any, error) {
	s := strings.TrimSpace(string(out))
	if s == "" || strings.Contains(s, "\n") {
		return nil, fmt.Errorf("want one line, got %q", s)
	}
	return s, nil
}

func lower(out []byte) (any, error) {
	v, err := line(out)
	if err != nil {
		return nil, err
	}
	return strings.ToLower(v.(string)), nil
}

func oneOf(values ...string) func([]byte) (any, error) {
	return func(out []byte) (any, error) {
		v, err := line(out)
		if err != nil {
			return nil, err
		}
		for _, want := range values {
			if v == want {
				return v, nil
			}
		}
		return nil, fmt.Errorf("unexpected value %q", v)
	}
}

// parseOSRelease reads os-release(5): KEY=value lines, values optionally
// quoted, with shell-style escapes inside double quotes.
func parseOSRelease(out []byte) map[string]string {
	vals := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		switch {
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`").Replace(v[1 : len(v)-1])
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = v[1 : len(v)-1]
		}
		vals[k] = v
	}
	return vals
}

// osReleaseField is a field of os-release, "" when the host has none.
func osReleaseField(key string) func([]byte) (any, error) {
	return func(out []byte) (any, error) { return parseOSRelease(out)[key], nil }
}

func osFamily(out []byte) (any, error) {
	vals := parseOSRelease(out)
	if like := vals["ID_LIKE"]; like != "" {
		return like, nil
	}
	return vals["ID"], nil
}
