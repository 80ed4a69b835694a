package digitalocean

import (
	"context"
	"fmt"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules"
	"github.com/orch-dev/orch/modules/internal/cloud"
)

func init() {
	modules.Register(modules.Info{ID: "digitalocean.create", New: func() any { return new(createCall) }, Doc: `Creates one droplet per name, unless one with that name exists, and waits until all are active.

Returns the droplets as hosts (name, public IPv4, user root, vars droplet_id
and tags) for ctx.apply. orch generates an ed25519 host key per droplet,
merges it into the cloud-config user data (user_data must be empty or a
#cloud-config document) and pins it, so the first SSH connection is verified
strictly. Since the user data stays readable in the droplet's metadata, that
first connection replaces the key with one generated on the droplet and
pins the new one (an event host_key says so). image is a slug or a numeric snapshot ID. Under --check nothing is
created. Needs DIGITALOCEAN_TOKEN; DIGITALOCEAN_URL points at another
endpoint, such as the lab cloud (embedders set
engine.Options.Endpoints["digitalocean"]).`})
	modules.Register(modules.Info{ID: "digitalocean.droplets", New: func() any { return new(dropletsCall) }, Doc: `Lists droplets, optionally only those with a tag, as hosts: a dynamic inventory.`})
	modules.Register(modules.Info{ID: "digitalocean.assign_ip", New: func() any { return new(assignCall) }, Doc: `Points a reserved IP at a droplet, taking it from whichever droplet held it: the floating-IP swap.`})
	modules.Register(modules.Info{ID: "digitalocean.delete", New: func() any { return new(deleteCall) }, Doc: `Deletes the droplets behind hosts returned by digitalocean.create or digitalocean.droplets.`})
}

type createCall struct {
	Names    []string `arg:"names,required" doc:"one droplet per name"`
	Region   string   `arg:"region,required" doc:"e.g. \"ams3\""`
	Size     string   `arg:"size,required" doc:"e.g. \"s-1vcpu-1gb\""`
	Image    string   `arg:"image,required" doc:"a slug, or a numeric snapshot ID"`
	UserData *string  `arg:"user_data" doc:"a #cloud-config document"`
	Tags     []string `arg:"tags" doc:"tags for every droplet"`
}

func (c *createCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	cl, err := newClient(env)
	if err != nil {
		return nil, err
	}
	if env.Check {
		existing := map[string]*inventory.Host{}
		for _, name := range c.Names {
			d, err := cl.byName(ctx, name)
			if err != nil {
				return nil, cl.scrub(fmt.Errorf("digitalocean.create %s: %w", name, err))
			}
			if d != nil {
				existing[name] = d.Host()
			}
		}
		return cloud.Placeholders(env, "digitalocean.create", c.Names, existing, c.Tags)
	}
	req := CreateRequest{Names: c.Names, Region: c.Region, Size: c.Size, Image: c.Image, Tags: c.Tags}
	if c.UserData != nil {
		req.UserData = *c.UserData
	}
	ds, err := cl.Create(ctx, req)
	hosts, recErr := record(env, ds)
	if err != nil {
		return nil, cloud.CleanUp(ctx, env, "digitalocean.create", ds, err,
			func(d Droplet) (*inventory.Host, int, bool) { return d.Host(), d.ID, d.Created },
			func(ctx context.Context, ids []int) error { return cl.Delete(ctx, ids...) })
	}
	return hosts, recErr
}

// record hands droplets to the engine with their pinned host keys, even
// when Create failed part way, so they are known and can be cleaned up.
func record(env *modules.Env, ds []Droplet) ([]*inventory.Host, error) {
	return cloud.Record(env, "digitalocean.create", ds, func(d Droplet) (*inventory.Host, string, bool) {
		return d.Host(), d.KnownHostsLine(), d.Created
	})
}

type dropletsCall struct {
	Tag string `arg:"tag" doc:"only droplets with this tag"`
}

func (c *dropletsCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	cl, err := newClient(env)
	if err != nil {
		return nil, err
	}
	ds, err := cl.Droplets(ctx, c.Tag)
	if err != nil {
		return nil, err
	}
	return record(env, ds)
}

type assignCall struct {
	IP   string          `arg:"ip,required" doc:"the reserved IP"`
	Host *inventory.Host `arg:"host,required" doc:"the droplet to point it at"`
}

func (c *assignCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	id, err := IDFromHost(c.Host)
	if err != nil {
		return nil, err
	}
	if env.Check {
		env.Logf("check: digitalocean.assign_ip would point %s at %s", c.IP, c.Host.Name)
		return nil, nil
	}
	cl, err := newClient(env)
	if err != nil {
		return nil, err
	}
	if err := cl.AssignIP(ctx, c.IP, id); err != nil {
		return nil, err
	}
	env.Logf("digitalocean.assign_ip: %s -> %s", c.IP, c.Host.Name)
	return nil, nil
}

type deleteCall struct {
	Hosts []*inventory.Host `arg:"hosts,required" doc:"hosts returned by digitalocean.create or digitalocean.droplets"`
}

func (c *deleteCall) Call(ctx context.Context, env *modules.Env) (any, error) {
	return nil, cloud.Delete(ctx, env, "digitalocean.delete", c.Hosts, IDFromHost, func(ctx context.Context, ids []int) error {
		cl, err := newClient(env)
		if err != nil {
			return err
		}
		return cl.Delete(ctx, ids...)
	})
}

// Inventory lists the droplets with tag (all of them when tag is "") as a
// dynamic inventory, reached with cfg: `orch run plan.star -i digitalocean:web`.
func Inventory(ctx context.Context, cfg Config, tag string) (*inventory.Inventory, error) {
	cl, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ds, err := cl.Droplets(ctx, tag)
	if err != nil {
		return nil, err
	}
	return cloud.Inventory("digitalocean", ds)
}

// newClient reaches the run's digitalocean endpoint (modules.Env.Endpoints).
func newClient(env *modules.Env) (*Client, error) {
	ep := env.Endpoint(Provider)
	return New(Config{Token: ep.Token, URL: ep.URL})
}
