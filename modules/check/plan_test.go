package check

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// TestChecksInAPlan runs checks from a plan through the engine: hosts from
// the inventory are accepted as servers, every try reaches the event
// stream as a "check" event, a passing check returns its dict, and a
// failing one fails its step with what came back.
func TestChecksInAPlan(t *testing.T) {
	ns := startBind(t, "www IN A 192.0.2.80")
	host, port, _ := net.SplitHostPort(ns.addr)
	dir := t.TempDir()
	src := fmt.Sprintf(`
def main(ctx):
    res = check.dns(ctx.hosts("dns"), "www.example.test", expect = "192.0.2.80", port = %s, interval = "1ms")
    print("dns", res["ok"], res["tries"], res["answers"])
    ctx.step("switch", lambda: check.dns("%s", "www.example.test", expect = "192.0.2.81", tries = 2, interval = "1ms"))
`, port, ns.addr)
	if err := os.WriteFile(filepath.Join(dir, "plan.star"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Load(filepath.Join(dir, "plan.star"))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse("inventory.star", []byte(fmt.Sprintf(`host(name = "ns1", address = %q, groups = ["dns"])`, host)))
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	var printed []string
	_, err = engine.Run(context.Background(), p, inv, engine.Options{StateDir: t.TempDir(), OnEvent: func(e engine.Event) {
		switch e.Event {
		case "check":
			b, _ := json.Marshal(e)
			events = append(events, string(b))
		case "print":
			printed = append(printed, e.Msg)
		}
	}})
	if err == nil || !strings.Contains(err.Error(), `step "switch" failed`) || !strings.Contains(err.Error(), "want [192.0.2.81], got [192.0.2.80]") {
		t.Fatalf("run error = %v; want the switch step to fail with what came back", err)
	}
	if want := fmt.Sprintf(`dns True 1 {"%s": ["192.0.2.80"]}`, ns.addr); len(printed) != 1 || printed[0] != want {
		t.Errorf("printed %q, want %q", printed, want)
	}
	want := []string{
		fmt.Sprintf(`{"event":"check","module":"check.dns","status":"ok","msg":"[192.0.2.80] (over udp)","target":"%s","try":1}`, ns.addr),
		fmt.Sprintf(`{"event":"check","module":"check.dns","status":"failed","msg":"want [192.0.2.81], got [192.0.2.80] (over udp)","target":"%s","try":1}`, ns.addr),
		fmt.Sprintf(`{"event":"check","module":"check.dns","status":"failed","msg":"want [192.0.2.81], got [192.0.2.80] (over udp)","target":"%s","try":2}`, ns.addr),
	}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("check events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
}
