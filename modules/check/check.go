// Package check holds the controller-side health checks check.dns,
// check.http and check.tcp. A check tries its targets until all of them
// pass in the same try, or its tries run out; every try of every target is
// reported as it happens (modules.Env.CheckTry, the engine's "check"
// events). A check that passes returns a dict (ok, tries and what came
// back); one that fails raises an error saying, per target, what was
// expected and what came back, so a failed check fails its step and the
// step's undos run.
package check

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
)

// retryDoc is shared by every check's documentation.
const retryDoc = `A try sends one request to every target at once (in parallel) and passes
when all of them pass; otherwise the check waits interval and tries again,
up to tries times, and then fails with what each target answered. Every
try of every target is a "check" event (module, target, try, status, msg).
Waits end with the run's context (Ctrl-C, --timeout).

Under --check a target that is a host not created yet (its address is
"(known after create)") is reported as "would check" and gets no traffic;
real targets are checked in check mode too, since checks change nothing.
A passing check returns a dict with ok and tries (0 when every target was
skipped); a failing one raises an error, which fails the step it runs in.`

// target is one thing a check tries: an address or a URL, or a placeholder
// for a host not created yet.
type target struct {
	name        string // as reported: the address or URL, or the host's name
	placeholder bool
	host        string // the placeholder host's name, when known
}

// targetOf makes a target of an address or URL, which holds the
// placeholder address when it was made from a host not created yet.
func targetOf(s string) target {
	return target{name: s, placeholder: strings.Contains(s, inventory.NotCreated)}
}

// outcome is what one try of one target found.
type outcome struct {
	ok    bool
	msg   string // what came back; on failure also what was wanted
	value any    // what came back, for the check's result
}

// prober tries targets until all pass in the same try.
type prober struct {
	id       string // the module: "check.dns"
	what     string // what is checked, for errors: "www.example.test A"
	tries    int
	interval time.Duration
	try      func(ctx context.Context, target string) outcome
}

// result is a passed check: how many tries it took and what each target
// answered in the passing try.
type result struct {
	tries  int
	values map[string]any
}

// run checks the targets. Placeholders are reported as skipped under
// --check and are an error otherwise; if nothing else is left, no traffic
// is sent.
func (p *prober) run(ctx context.Context, env *modules.Env, targets []target) (result, error) {
	var real []string
	for _, t := range targets {
		if !t.placeholder {
			real = append(real, t.name)
			continue
		}
		if !env.Check {
			return result{}, fmt.Errorf("%s is not created yet (its address is %q)", t.name, inventory.NotCreated)
		}
		who := "its host"
		if t.host != "" {
			who = t.host
		}
		p.report(env, modules.CheckTry{Target: t.name, Status: "skipped", Msg: "would check " + p.what + ": " + who + " is not created yet"})
	}
	if len(real) == 0 {
		return result{values: map[string]any{}}, nil
	}
	for try := 1; ; try++ {
		outs := make([]outcome, len(real))
		var wg sync.WaitGroup
		for i, t := range real {
			wg.Go(func() { outs[i] = p.try(ctx, t) })
		}
		wg.Wait()
		var failed []string
		values := make(map[string]any, len(real))
		for i, t := range real {
			st := "ok"
			if !outs[i].ok {
				st = "failed"
				failed = append(failed, t+": "+outs[i].msg)
			}
			values[t] = outs[i].value
			p.report(env, modules.CheckTry{Target: t, Try: try, Status: st, Msg: outs[i].msg})
		}
		switch {
		case len(failed) == 0:
			return result{tries: try, values: values}, nil
		case ctx.Err() != nil:
			return result{}, fmt.Errorf("%s: stopped after %d %s (%v): %s", p.what, try, plural(try, "try", "tries"), ctx.Err(), strings.Join(failed, "; "))
		case try >= p.tries && len(real) == 1:
			why := failed[0]
			if strings.Contains(p.what, real[0]) {
				why = outs[0].msg // "GET URL" names its one target already
			}
			return result{}, fmt.Errorf("%s: failed after %d %s: %s", p.what, try, plural(try, "try", "tries"), why)
		case try >= p.tries:
			return result{}, fmt.Errorf("%s: %d of %d targets failed after %d %s: %s", p.what, len(failed), len(real),
				try, plural(try, "try", "tries"), strings.Join(failed, "; "))
		}
		if err := sleep(ctx, p.interval); err != nil {
			return result{}, fmt.Errorf("%s: stopped after %d %s (%v): %s", p.what, try, plural(try, "try", "tries"), err, strings.Join(failed, "; "))
		}
	}
}

func (p *prober) report(env *modules.Env, t modules.CheckTry) {
	if env.CheckTry != nil {
		t.Check = p.id
		env.CheckTry(t)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// validateRetry checks the arguments every check shares.
func validateRetry(tries int, interval time.Duration) error {
	if tries < 1 {
		return fmt.Errorf("tries must be at least 1, not %d", tries)
	}
	if interval < 0 {
		return fmt.Errorf("interval cannot be negative")
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
