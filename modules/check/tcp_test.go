package check

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/orch-dev/orch/modules"
)

func TestTCPPassFailAndRetry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
			accepted <- struct{}{}
		}
	}()
	var rec recorder
	res, err := run(t, context.Background(), &tcpCall{Address: l.Addr().String(), Tries: 3, Interval: time.Millisecond}, rec.env(false))
	if err != nil {
		t.Fatal(err)
	}
	<-accepted // the listener really saw the connection
	if res["tries"] != 1 || rec.statuses() != "1:ok" {
		t.Fatalf("tries = %v, events %s", res["tries"], rec.statuses())
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	rec = recorder{}
	_, err = run(t, context.Background(), &tcpCall{Address: addr, Tries: 2, Interval: time.Millisecond}, rec.env(false))
	wantErr(t, err, "connect "+addr+": failed after 2 tries: want a connection, got dial tcp "+addr+": connect: connection refused")
	if rec.statuses() != "1:failed 2:failed" {
		t.Errorf("events %s", rec.statuses())
	}

	// The port starts listening after the second try.
	rec = recorder{}
	var late net.Listener
	rec.on = func(tr modules.CheckTry) {
		if tr.Try == 2 {
			if late, err = net.Listen("tcp", addr); err != nil {
				t.Error(err)
			}
		}
	}
	res, err = run(t, context.Background(), &tcpCall{Address: addr, Tries: 5, Interval: time.Millisecond}, rec.env(false))
	if late != nil {
		defer late.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if res["tries"] != 3 || rec.statuses() != "1:failed 2:failed 3:ok" {
		t.Fatalf("tries = %v, events %s", res["tries"], rec.statuses())
	}
}
