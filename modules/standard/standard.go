// Package standard registers every module that ships with orch. Import it
// for its side effects; an embedder that wants fewer modules imports them
// one by one instead.
package standard

import (
	_ "github.com/orch-dev/orch/modules/bectl"
	_ "github.com/orch-dev/orch/modules/check"
	_ "github.com/orch-dev/orch/modules/command"
	_ "github.com/orch-dev/orch/modules/digitalocean"
	_ "github.com/orch-dev/orch/modules/docker"
	_ "github.com/orch-dev/orch/modules/file"
	_ "github.com/orch-dev/orch/modules/haproxy"
	_ "github.com/orch-dev/orch/modules/jail"
	_ "github.com/orch-dev/orch/modules/linode"
	_ "github.com/orch-dev/orch/modules/nginx"
	_ "github.com/orch-dev/orch/modules/pkg"
	_ "github.com/orch-dev/orch/modules/service"
	_ "github.com/orch-dev/orch/modules/zfs"
)
