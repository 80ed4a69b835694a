package linode

import (
	"context"
	"fmt"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/internal/cloud"
)

func init() {
	modules.Register(modules.Info{ID: "linode.create", New: func() any { return new(createCall) }, Doc: `Creates one Linode per label, unless one with that label exists, and waits until all run.

Returns the instances as hosts (name = label, address = public IPv4, user
root, vars linode_id and tags) that can go straight to ctx.apply. orch
generates an ed25519 host key for every instance it creates, injects it
through cloud-init user data and pins it, so the first SSH connection is
verified strictly. Since the user data stays readable in the instance's
metadata, that first connection replaces the key with one generated on the
instance and pins the new one (an event host_key says so). Under --check nothing is created: existing instances are
returned and the rest are reported. Needs LINODE_TOKEN; LINODE_URL points
at another endpoint, such as the lab cloud (embedders set
engine.Options.Endpoints["linode"]).`})
	modules.Register(modules.Info{ID: "linode.instances", New: func() any { return new(instancesCall) }, Doc: `Lists Linodes, optionally only those with a tag or a label, as hosts: a dynamic inventory.`})
	modules.Register(modules.Info{ID: "linode.delete", New: func() any { return new(deleteCall) }, Doc: `Deletes the Linodes behind hosts returned by linode.create or linode.instances. Instances already gone count as deleted.`})
	modules.Register(modules.Info{ID: "linode.rename", New: func() any { return new(renameCall) }, Doc: `Gives a Linode a new label and returns the renamed host.`})
}

type createCall struct {
	Labels         []string `arg:"labels,required" doc:"one instance per label"`
	Region         string   `arg:"region,required" doc:"e.g. \"us-east\""`
	Type           string   `arg:"type,required" doc:"e.g. \"g6-nanode-1\""`
	Image          string   `arg:"image,required" doc:"e.g. \"linode/debian12\""`
	Tags           []string `arg:"tags" doc:"tags for every instance"`
	AuthorizedKeys []string `arg:"authorized_keys" doc:"public keys allowed to log in as root"`
}

func (c *createCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	cl, err := newClient(env)
	if err != nil {
		return nil, err
	}
	if env.Check {
		found, err := cl.Instances(ctx, "", "")
		if err != nil {
			return nil, err
		}
		existing := map[string]*inventory.Host{}
		for _, in := range found {
			existing[in.Label] = in.Host()
		}
		return cloud.Placeholders(env, "linode.create", c.Labels, existing, c.Tags)
	}
	ins, err := cl.Create(ctx, CreateRequest{Labels: c.Labels, Region: c.Region, Type: c.Type, Image: c.Image, Tags: c.Tags, AuthorizedKeys: c.AuthorizedKeys})
	hosts, recErr := record(env, ins)
	if err != nil {
		return nil, cloud.CleanUp(ctx, env, "linode.create", ins, err,
			func(in Instance) (*inventory.Host, int, bool) { return in.Host(), in.ID, in.Created },
			func(ctx context.Context, ids []int) error { return cl.Delete(ctx, ids...) })
	}
	return hosts, recErr
}

// record hands instances to the engine with their pinned host keys, even
// when Create failed part way, so they are known and can be cleaned up.
func record(env *modules.Env, ins []Instance) ([]*inventory.Host, error) {
	return cloud.Record(env, "linode.create", ins, func(in Instance) (*inventory.Host, string, bool) {
		return in.Host(), in.KnownHostsLine(), in.Created
	})
}

type instancesCall struct {
	Tag   string `arg:"tag" doc:"only instances with this tag"`
	Label string `arg:"label" doc:"only the instance with this label"`
}

func (c *instancesCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	cl, err := newClient(env)
	if err != nil {
		return nil, err
	}
	ins, err := cl.Instances(ctx, c.Tag, c.Label)
	if err != nil {
		return nil, err
	}
	return record(env, ins)
}

type deleteCall struct {
	Hosts []*inventory.Host `arg:"hosts,required" doc:"hosts returned by linode.create or linode.instances"`
}

func (c *deleteCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	return nil, cloud.Delete(ctx, env, "linode.delete", c.Hosts, IDFromHost, func(ctx context.Context, ids []int) error {
		cl, err := newClient(env)
		if err != nil {
			return err
		}
		return cl.Delete(ctx, ids...)
	})
}

type renameCall struct {
	Host  *inventory.Host `arg:"host,required" doc:"a host returned by linode.create or linode.instances"`
	Label string          `arg:"label,required" doc:"the new label"`
}

func (c *renameCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	if env.Check {
		env.Logf("check: linode.rename would rename %s to %s", c.Host.Name, c.Label)
		renamed := *c.Host
		renamed.Name = c.Label
		return &renamed, nil
	}
	id, err := IDFromHost(c.Host)
	if err != nil {
		return nil, err
	}
	cl, err := newClient(env)
	if err != nil {
		return nil, err
	}
	in, err := cl.Rename(ctx, id, c.Label)
	if err != nil {
		return nil, err
	}
	renamed := *c.Host
	renamed.Name, renamed.Groups, renamed.Vars = in.Label, in.Host().Groups, in.Host().Vars
	env.Hosts.RemoveHost(c.Host.Name)
	if err := env.Hosts.AddHost(&renamed, ""); err != nil {
		return nil, fmt.Errorf("linode.rename: %w", err)
	}
	env.Logf("linode.rename: %s is now %s", c.Host.Name, in.Label)
	return &renamed, nil
}

// Inventory lists the Linodes with tag (all of them when tag is "") as a
// dynamic inventory, reached with cfg: `orch run plan.star -i linode:web`.
func Inventory(ctx context.Context, cfg Config, tag string) (*inventory.Inventory, error) {
	cl, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ins, err := cl.Instances(ctx, tag, "")
	if err != nil {
		return nil, err
	}
	return cloud.Inventory("linode", ins)
}

// newClient reaches the run's linode endpoint (modules.Env.Endpoints).
func newClient(env *modules.Env) (*Client, error) {
	ep := env.Endpoint(Provider)
	return New(Config{Token: ep.Token, URL: ep.URL})
}
