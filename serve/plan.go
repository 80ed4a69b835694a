package serve

import (
	"context"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/plan"
)

// InventoryFunc loads the inventory of a run and names its sources, for the
// journal and the run lock.
type InventoryFunc func(ctx context.Context) (inv *inventory.Inventory, sources []string, err error)

// PlanRunner returns the RunFunc that runs the plan at planPath (a file, or
// a shipped plan's name) for a delivery, with the delivery as ctx.event. The
// plan and the inventory are loaded afresh for every delivery: a deploy that
// updates the plan's checkout takes effect at the next delivery, and a
// dynamic inventory is read again. opts is the template of every run; its
// RunID, Event and Inventories are set per delivery.
func PlanRunner(planPath string, loadInventory InventoryFunc, opts engine.Options) RunFunc {
	return func(ctx context.Context, d Delivery) (*engine.Report, error) {
		p, err := plan.Load(planPath)
		if err != nil {
			return nil, err
		}
		defer p.Close()
		inv, sources, err := loadInventory(ctx)
		if err != nil {
			return nil, err
		}
		o := opts
		o.RunID, o.Inventories = d.RunID, sources
		o.Event = &plan.Event{Name: d.Event, Delivery: d.ID, Payload: d.Payload}
		return engine.Run(ctx, p, inv, o)
	}
}
