package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/orch-dev/orch/internal/nginxconf"
	"github.com/orch-dev/orch/internal/shell"
	"github.com/orch-dev/orch/lab/standin"
)

// The lab's FreeBSD host, bsd1 (group freebsd), is a stand-in (package
// lab/standin): a Linux container whose jail, jls, jexec, bectl, sysrc,
// service and pkg follow recorded FreeBSD behaviour over real zfs-fuse
// datasets, not a FreeBSD kernel. Its nginx is the web front of the jail
// blue/green flow (plans/jail-bluegreen.star): the server names "live" and
// "test" on port 80 proxy to the upstreams of the same names, each in a
// file of its own that nginx.upstream rewrites. Until a release is
// deployed both point at a local server that answers 503.
const (
	// FreeBSDHost is the stand-in host's name.
	FreeBSDHost = "bsd1"
	// FreeBSDNginxConf is bsd1's nginx.conf, where FreeBSD's nginx package
	// keeps it.
	FreeBSDNginxConf = "/usr/local/etc/nginx/nginx.conf"
	// FreeBSDUpstreamDir holds bsd1's upstream files, live.conf and
	// test.conf.
	FreeBSDUpstreamDir = "/usr/local/etc/nginx/upstreams"
	// FreeBSDNoRelease is the placeholder server of both upstreams before
	// the first release: it answers 503.
	FreeBSDNoRelease = "127.0.0.1:8081"
)

// freebsdNginxConf routes by Host header: "live" (also the default server)
// and "test" each to their upstream.
const freebsdNginxConf = `# orch lab: bsd1's web front. Host "live" (the default) and "test" go to
# the upstreams of the same names, each in a file that nginx.upstream
# rewrites (plans/jail-bluegreen.star).
worker_processes 1;
pid /var/run/nginx.pid;
error_log /var/log/nginx-error.log;

events {
	worker_connections 512;
}

http {
	access_log off;
	include ` + FreeBSDUpstreamDir + `/live.conf;
	include ` + FreeBSDUpstreamDir + `/test.conf;

	server {
		listen 80 default_server;
		server_name live;
		location / {
			proxy_pass http://live;
			proxy_set_header Host $host;
		}
	}

	server {
		listen 80;
		server_name test;
		location / {
			proxy_pass http://test;
			proxy_set_header Host $host;
		}
	}

	server {
		listen ` + FreeBSDNoRelease + `;
		return 503 "no release deployed yet\n";
	}
}
`

// freebsdNginxRC is the rc.d script FreeBSD's nginx package installs, cut
// to what the stand-in's rc.subr runs.
const freebsdNginxRC = `#!/bin/sh
# PROVIDE: nginx
# REQUIRE: LOGIN
# KEYWORD: shutdown
. /etc/rc.subr
name=nginx
rcvar=nginx_enable
load_rc_config $name
: ${nginx_enable:="NO"}
command=/usr/sbin/nginx
command_args="-c ` + FreeBSDNginxConf + `"
pidfile=/var/run/nginx.pid
run_rc_command "$1"
`

// freebsdSetup installs bsd1's nginx config, enables and starts nginx.
func freebsdSetup() string {
	file := func(path, content string, mode string) string {
		return fmt.Sprintf("mkdir -p %s && printf '%%s' %s > %s.new && chmod %s %s.new && mv %s.new %s\n",
			shell.Quote(filepath.Dir(path)), shell.Quote(content), shell.Quote(path), mode, shell.Quote(path), shell.Quote(path), shell.Quote(path))
	}
	up := func(name string) string {
		return string(nginxconf.Upstream(name, []string{FreeBSDNoRelease}, false))
	}
	return "set -e\n" +
		file(FreeBSDNginxConf, freebsdNginxConf, "644") +
		file(FreeBSDUpstreamDir+"/live.conf", up("live"), "644") +
		file(FreeBSDUpstreamDir+"/test.conf", up("test"), "644") +
		file("/usr/local/etc/rc.d/nginx", freebsdNginxRC, "755") +
		"nginx -t -q -c " + FreeBSDNginxConf + "\n" +
		"sysrc nginx_enable=YES >/dev/null\n" +
		"service nginx start >/dev/null\n"
}

// createStandin creates and boots a stand-in host of the topology with the
// lab's client key and the host key the lab keeps for its name, then sets
// up its nginx.
func (l *Lab) createStandin(ctx context.Context, h defaultHost) error {
	signer, priv, err := l.hostKey(h.name)
	if err != nil {
		return err
	}
	pub, err := os.ReadFile(l.KeyPath() + ".pub")
	if err != nil {
		return err
	}
	addr := hostAddr(l.subnet, h.octet).String()
	if err := l.recordHostKeys(ctx, addr, []ssh.PublicKey{signer.PublicKey()}); err != nil {
		return err
	}
	host, err := standin.Start(ctx, standin.Options{
		Name:           l.st.Prefix + "-" + h.name,
		Hostname:       h.name,
		Network:        l.st.Network,
		Address:        addr,
		AuthorizedKeys: []string{strings.TrimSpace(string(pub))},
		HostKey:        priv,
		Labels: map[string]string{
			labelLab:    l.st.Prefix,
			labelGroups: strings.Join(h.groups, ","),
			labelKind:   "default",
		},
		Logf: l.logf,
	})
	if err != nil {
		return err
	}
	res, err := host.Exec(ctx, freebsdSetup())
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("exit %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stdout)+" "+string(res.Stderr)))
	}
	if err != nil {
		host.Remove(context.WithoutCancel(ctx))
		return fmt.Errorf("%s: nginx: %w", h.name, err)
	}
	return nil
}
