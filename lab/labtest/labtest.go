// Package labtest lets a test binary be the cloud process of the lab its
// tests start (lab.Options.CloudCommand = the test binary, CloudEnv = a
// variable naming the state dir), the part `orch lab serve-cloud` plays for
// the CLI. Only tests import it.
package labtest

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/orch-dev/orch/lab"
)

// ServeCloud serves the lab cloud of state dir dir until interrupted or
// until the test binary that started this one dies, so that a crashed test
// leaves no server behind. TestMain calls it when its variable is set:
//
//	if dir := os.Getenv(serveCloudEnv); dir != "" {
//		if err := labtest.ServeCloud(dir); err != nil { … os.Exit(1) }
//		os.Exit(0)
//	}
func ServeCloud(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	parent := os.Getppid()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for os.Getppid() == parent && ctx.Err() == nil {
			time.Sleep(time.Second)
		}
		cancel()
	}()
	return lab.ServeCloud(ctx, dir)
}
