package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/orch-dev/orch/engine"
	"github.com/orch-dev/orch/inventory"
)

func (c *cli) inventory(ctx context.Context, args []string) error {
	var (
		invs  listFlag
		limit string
		asJSON,
		lab bool
	)
	fs := newFlagSet("inventory", c.stderr)
	fs.Var(&invs, "i", "inventory file or directory (repeatable)")
	fs.StringVar(&limit, "limit", "", "only hosts matching `PATTERN`")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.BoolVar(&lab, "lab", false, "the local lab's inventory")
	pos, err := parse(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) > 0 {
		return &usageError{msg: "orch inventory takes no arguments", hint: "use --limit PATTERN to select hosts"}
	}
	var inv *inventory.Inventory
	if lab {
		var opts engine.Options
		if inv, err = c.labInventory(ctx, &opts); err != nil {
			return err
		}
	} else if inv, _, err = loadInventories(ctx, invs); err != nil {
		return &usageError{msg: err.Error()}
	}
	hosts := inv.Hosts()
	if limit != "" {
		if hosts, err = inv.Match(limit); err != nil {
			return &usageError{msg: "--limit: " + err.Error()}
		}
	}
	if asJSON {
		type jsonHost struct {
			Name       string         `json:"name"`
			Address    string         `json:"address"`
			Port       int            `json:"port,omitempty"`
			User       string         `json:"user,omitempty"`
			Connection string         `json:"connection,omitempty"`
			Groups     []string       `json:"groups"`
			Vars       map[string]any `json:"vars,omitempty"`
		}
		out := []jsonHost{}
		for _, h := range hosts {
			out = append(out, jsonHost{h.Name, h.Address, h.Port, h.User, h.Connection, nonNil(h.Groups), h.Vars})
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, h := range hosts {
		target := h.Address
		if h.User != "" {
			target = h.User + "@" + target
		}
		if h.Port != 0 {
			target = fmt.Sprintf("%s:%d", target, h.Port)
		}
		if h.Connection != "" && h.Connection != "ssh" {
			target += " (" + h.Connection + ")"
		}
		fmt.Fprintf(c.stdout, "%s\t%s\tgroups=%s\n", h.Name, target, strings.Join(h.Groups, ","))
		keys := make([]string, 0, len(h.Vars))
		for k := range h.Vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, _ := json.Marshal(h.Vars[k])
			fmt.Fprintf(c.stdout, "    %s = %s\n", k, v)
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
