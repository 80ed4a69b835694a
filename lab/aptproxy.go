package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/orch-dev/orch/lab/internal/dockercli"
	"github.com/orch-dev/orch/lab/internal/flock"
)

// The apt proxy is one apt-cacher-ng container per machine, shared by every
// lab on it: a package that any lab machine downloaded once is served from
// its cache afterwards, across labs, test runs and benchmark runs. It joins
// each lab's network at .5, and every lab machine's apt goes through it
// (AptProxyConf). Its cache is a docker volume that outlives it; the
// container goes when the last lab using it goes down.
const (
	AptProxyContainer = "orch-apt-proxy"
	AptProxyVolume    = "orch-apt-cache"
	aptProxyPort      = 3142
	labelAptProxy     = "dev.orch.apt-proxy"
	aptProxyLock      = "orch-apt-proxy.lock" // in the temp dir: one per machine
	aptProxyWait      = 30 * time.Second
)

// AptProxyURL is the URL lab machines use as their apt proxy.
func (l *Lab) AptProxyURL() string {
	return "http://" + net.JoinHostPort(hostAddr(l.subnet, aptOctet).String(), strconv.Itoa(aptProxyPort)) + "/"
}

// aptProxyNetworks reports the networks the apt proxy container is on, and
// whether it runs; ErrNoSuchObject when there is none.
func aptProxyNetworks(ctx context.Context) (map[string]bool, bool, error) {
	out, err := dockercli.Run(ctx, nil, "container", "inspect", "--format", "{{.State.Running}} {{json .NetworkSettings.Networks}}", AptProxyContainer)
	if err != nil {
		return nil, false, err
	}
	state, raw, _ := strings.Cut(out, " ")
	var nets map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &nets); err != nil {
		return nil, false, fmt.Errorf("docker inspect %s: %v", AptProxyContainer, err)
	}
	on := map[string]bool{}
	for n := range nets {
		on[n] = true
	}
	return on, state == "true", nil
}

// ensureAptProxy starts the machine's apt proxy or joins it to this lab's
// network, then waits until it answers there.
func (l *Lab) ensureAptProxy(ctx context.Context) error {
	unlock, err := flock.Lock(ctx, filepath.Join(os.TempDir(), aptProxyLock))
	if err != nil {
		return err
	}
	defer unlock()
	addr := hostAddr(l.subnet, aptOctet).String()
	nets, running, err := aptProxyNetworks(ctx)
	switch {
	case errors.Is(err, dockercli.ErrNoSuchObject):
		l.logf("lab: starting the apt proxy %s (apt-cacher-ng, cache in volume %s)", AptProxyContainer, AptProxyVolume)
		_, err = dockercli.Run(ctx, nil, "run", "-d", "--name", AptProxyContainer, "--label", labelAptProxy+"=1",
			"--network", l.st.Network, "--ip", addr,
			"--volume", AptProxyVolume+":/var/cache/apt-cacher-ng", "--user", "apt-cacher-ng",
			l.st.Image, "/usr/sbin/apt-cacher-ng", "ForeGround=1", "-c", "/etc/apt-cacher-ng")
		if err != nil {
			return fmt.Errorf("apt proxy: %w", err)
		}
	case err != nil:
		return fmt.Errorf("apt proxy: %w", err)
	default:
		if !nets[l.st.Network] {
			if _, err := dockercli.Run(ctx, nil, "network", "connect", "--ip", addr, l.st.Network, AptProxyContainer); err != nil {
				return fmt.Errorf("apt proxy: %w", err)
			}
		}
		if !running {
			if _, err := dockercli.Run(ctx, nil, "start", AptProxyContainer); err != nil {
				return fmt.Errorf("apt proxy: %w", err)
			}
		}
	}
	target := net.JoinHostPort(addr, strconv.Itoa(aptProxyPort))
	deadline := time.Now().Add(aptProxyWait)
	for {
		c, err := net.DialTimeout("tcp", target, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			logs, _ := dockercli.Run(context.WithoutCancel(ctx), nil, "logs", "--tail", "10", AptProxyContainer)
			return fmt.Errorf("apt proxy: %s does not answer: %v\n%s", target, err, logs)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leaveAptProxy takes the apt proxy off a lab network that goes away, and
// removes the container (not its cache) once no lab uses it.
func leaveAptProxy(ctx context.Context, network string, logf func(string, ...any)) error {
	unlock, err := flock.Lock(ctx, filepath.Join(os.TempDir(), aptProxyLock))
	if err != nil {
		return err
	}
	defer unlock()
	nets, _, err := aptProxyNetworks(ctx)
	if errors.Is(err, dockercli.ErrNoSuchObject) {
		return nil
	}
	if err != nil {
		return err
	}
	if nets[network] {
		if _, err := dockercli.Run(ctx, nil, "network", "disconnect", "--force", network, AptProxyContainer); err != nil && !errors.Is(err, dockercli.ErrNoSuchObject) {
			return err
		}
		delete(nets, network)
	}
	if len(nets) == 0 {
		logf("lab: removing the apt proxy %s; its cache stays in volume %s", AptProxyContainer, AptProxyVolume)
		if _, err := dockercli.Run(ctx, nil, "rm", "-f", AptProxyContainer); err != nil && !errors.Is(err, dockercli.ErrNoSuchObject) {
			return err
		}
	}
	return nil
}
