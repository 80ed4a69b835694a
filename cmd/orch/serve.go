package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/charmbracelet/log"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
	"github.com/orch-dev/orch/serve"
)

// serve runs the webhook until ctx ends (Ctrl-C or SIGTERM): the running
// run is cancelled, its undos run, and orch exits.
func (c *cli) serve(ctx context.Context, args []string) error {
	var (
		f                           runFlags
		listen, planPath, secretEnv string
		runTimeout                  time.Duration
		queue                       int
	)
	fs := newFlagSet("serve", c.stderr)
	f.register(fs)
	fs.StringVar(&listen, "listen", "", "`ADDR` to listen on, e.g. 127.0.0.1:9000")
	fs.StringVar(&planPath, "plan", "", "the `PLAN` each delivery runs, loaded afresh every time")
	fs.StringVar(&secretEnv, "secret-env", "", "environment `VAR` holding the webhook secret")
	fs.DurationVar(&runTimeout, "run-timeout", serve.DefaultRunTimeout, "deadline of each run")
	fs.IntVar(&queue, "queue", serve.DefaultQueue, "deliveries that may wait while one runs")
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) > 0 || listen == "" || planPath == "" || secretEnv == "" {
		return &usageError{msg: "orch serve needs --listen, --plan and --secret-env, and no arguments",
			hint: "WEBHOOK_SECRET=… orch serve --listen 127.0.0.1:9000 --plan deploy.star -i inventory.ini --secret-env WEBHOOK_SECRET"}
	}
	secret := os.Getenv(secretEnv)
	if secret == "" {
		return &usageError{msg: "$" + secretEnv + " is empty or unset: orch serve refuses to start without a webhook secret"}
	}
	// The plan's commands on this machine must not be able to read it.
	os.Unsetenv(secretEnv)
	if err := c.readBecomePassword(&f, false); err != nil {
		return err
	}
	opts, err := f.engineOptions()
	if err != nil {
		return err
	}
	opts.Secrets = cloudTokens()
	// Load both now, so that a mistake fails here and not at the first
	// delivery; each delivery loads them again.
	p, err := plan.Load(planPath)
	if err != nil {
		return planError(err)
	}
	p.Close()
	_, sources, err := c.loadInventories(ctx, f.inventories, playbookDir(planPath))
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	if f.hostKeyCheck == "off" {
		c.log.Warn("host key checking is off: any machine can pose as your hosts")
	}

	srv, err := serve.New(serve.Options{
		Secret: []byte(secret),
		Run: serve.PlanRunner(planPath, func(ctx context.Context) (*inventory.Inventory, []string, error) {
			return c.loadInventories(ctx, f.inventories, playbookDir(planPath))
		}, opts),
		Deliveries: deliveriesFile(planPath, sources),
		RunTimeout: runTimeout,
		Queue:      queue,
		Log:        c.logServe,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		srv.Close()
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          c.log.StandardLog(log.StandardLogOptions{ForceLevel: log.WarnLevel}),
	}
	c.log.Info("listening", "addr", ln.Addr().String(), "plan", planPath, "run-timeout", runTimeout)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
		err = nil
	case err = <-served:
	}
	c.log.Info("stopping: a running run is cancelled, and its undos run")
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	hs.Shutdown(shutdown)
	if cerr := srv.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// deliveriesFile is where serve remembers delivery IDs: one file per plan
// and inventory, in the state directory that also holds the runs.
func deliveriesFile(planPath string, sources []string) string {
	if abs, err := filepath.Abs(planPath); err == nil && fileExists(planPath) {
		planPath = abs
	}
	sum := sha256.Sum256([]byte(planPath + "\x00" + strings.Join(sources, "\x00")))
	return filepath.Join(stateDir(), "serve", "deliveries-"+hex.EncodeToString(sum[:8]))
}

// logServe prints one webhook log entry as a log line with key=value pairs.
func (c *cli) logServe(e serve.Entry) {
	var kv []any
	add := func(k string, v any, ok bool) {
		if ok {
			kv = append(kv, k, v)
		}
	}
	add("method", e.Method, e.Method != "")
	add("path", e.Path, e.Path != "")
	add("remote", e.Remote, e.Remote != "")
	add("status", e.Status, e.Status != 0)
	add("delivery", e.Delivery, e.Delivery != "")
	add("event", e.Event, e.Event != "")
	add("run", e.RunID, e.RunID != "")
	d := e.Duration.Round(time.Microsecond)
	if d >= time.Second {
		d = d.Round(time.Millisecond)
	}
	add("duration", d, d != 0)
	if s := e.Summary; s != nil {
		kv = append(kv, "hosts", s.Hosts, "changed", s.Changed, "failed", s.Failed, "unreachable", s.Unreachable)
	}
	add("error", e.Err, e.Err != "")
	switch {
	case strings.HasPrefix(e.Msg, "run failed"), e.Msg == "run dropped", e.Status >= 500:
		c.log.Error(e.Msg, kv...)
	case e.Status >= 400, e.Msg == "waiting for the run lock":
		c.log.Warn(e.Msg, kv...)
	default:
		c.log.Info(e.Msg, kv...)
	}
}
