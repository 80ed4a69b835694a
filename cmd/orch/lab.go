package main

import (
	"context"
	"errors"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
)

const labInventoryName = "lab"

func (c *cli) lab(ctx context.Context, args []string) error { return errors.New("lab: not yet") }

func (c *cli) labInventory(ctx context.Context, opts *engine.Options) (*inventory.Inventory, error) {
	return nil, errors.New("lab: not yet")
}
