package plan

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

const eventPlan = `
def main(ctx):
    if ctx.event == None:
        print("no event")
        return
    p = ctx.event.payload
    print(ctx.event.name, ctx.event.delivery, p["ref"], p["head_commit"]["id"], p["repository"]["id"], p["forced"])
`

func TestCtxEvent(t *testing.T) {
	var payload any
	if err := json.Unmarshal([]byte(`{"ref": "refs/heads/main", "head_commit": {"id": "9f1a813"}, "repository": {"id": 1296269}, "forced": false}`), &payload); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		event *Event
		want  string
	}{
		{"outside serve", nil, "no event"},
		{"push", &Event{Name: "push", Delivery: "72d3162e-cc78-11e3-81ab-4c9367dc0958", Payload: payload},
			"push 72d3162e-cc78-11e3-81ab-4c9367dc0958 refs/heads/main 9f1a813 1296269 False"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Load(writePlan(t, map[string]string{"plan.star": eventPlan}))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			r := newRunner()
			if err := p.Run(context.Background(), r, RunOptions{Event: c.event}); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(r.out, "|"); got != c.want {
				t.Errorf("print = %q, want %q", got, c.want)
			}
		})
	}
}

// The payload is frozen: a plan cannot change what a later role reads.
func TestCtxEventIsFrozen(t *testing.T) {
	p, err := Load(writePlan(t, map[string]string{"plan.star": "def main(ctx):\n    ctx.event.payload[\"ref\"] = \"x\"\n"}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Run(context.Background(), newRunner(), RunOptions{Event: &Event{Name: "push", Payload: map[string]any{"ref": "main"}}})
	if err == nil || !strings.Contains(err.Error(), "plan.star:2:") || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("err = %v", err)
	}
}
