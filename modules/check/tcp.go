package check

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/orch-dev/orch/modules"
)

func init() {
	modules.Register(modules.Info{ID: "check.tcp", New: func() any { return new(tcpCall) }, Doc: `Connects from the controller until a TCP port accepts.

A try passes when a TCP connection to address is established within 3
seconds; the connection is closed again at once, without sending anything.

` + retryDoc})
}

// dialTimeout bounds one try.
const dialTimeout = 3 * time.Second

type tcpCall struct {
	Address  string        `arg:"address,required" doc:"host:port, e.g. \"192.0.2.10:443\" or \"[2001:db8::10]:22\""`
	Tries    int           `arg:"tries" default:"10" doc:"tries before the check fails"`
	Interval time.Duration `arg:"interval" default:"1s" doc:"wait between tries"`
}

var (
	_ modules.Call      = (*tcpCall)(nil)
	_ modules.Validator = (*tcpCall)(nil)
)

func (c *tcpCall) Validate(*modules.Env) error {
	if err := validateRetry(c.Tries, c.Interval); err != nil {
		return err
	}
	if targetOf(c.Address).placeholder {
		return nil
	}
	if _, port, err := net.SplitHostPort(c.Address); err != nil || port == "" {
		return fmt.Errorf("address %q is not host:port", c.Address)
	}
	return nil
}

func (c *tcpCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	p := &prober{id: "check.tcp", what: "connect " + c.Address, tries: c.Tries, interval: c.Interval, try: dial}
	res, err := p.run(ctx, env, []target{targetOf(c.Address)})
	if err != nil {
		return nil, err
	}
	return map[string]any{"ok": true, "tries": res.tries}, nil
}

func dial(ctx context.Context, addr string) outcome {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return outcome{msg: fmt.Sprintf("want a connection, got %v", err)}
	}
	conn.Close()
	return outcome{ok: true, msg: "connected from " + conn.LocalAddr().String()}
}
