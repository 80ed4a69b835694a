// Package digitalocean implements orch's controller-side DigitalOcean calls
// on top of godo: create droplets (idempotently, by name) from an image slug
// or a numeric snapshot ID, list them by tag, move a reserved IP, rename and
// delete them.
//
// Every droplet Create makes gets an ed25519 SSH host key generated on the
// controller and installed through cloud-init user data, and Create returns
// its public key, so the engine can pin it in known_hosts and verify the
// very first connection strictly. The caller's user data is kept: see
// CreateRequest.UserData for how the key is merged into it.
//
// Requests the API turns away for now (429, 5xx, 422 "pending event") are
// retried with backoff, honouring Retry-After; waits end with the caller's
// context. The API token never appears in errors.
package digitalocean

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/godo"
	"golang.org/x/oauth2"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules/internal/cloud"
)

// Provider names this package's endpoint in modules.Env.Endpoints and
// engine.Options.Endpoints.
const Provider = "digitalocean"

// The environment variables cmd/orch reads into the digitalocean endpoint. The
// package itself reads no environment.
const (
	TokenEnv = "DIGITALOCEAN_TOKEN"
	URLEnv   = "DIGITALOCEAN_URL" // optional base URL, for example the lab cloud's
)

// Config configures a Client. Only Token is required.
type Config struct {
	Token string
	// URL is the API's base URL ("http://127.0.0.1:8080" for the lab
	// cloud); a trailing "/v2" is accepted. Empty means DigitalOcean.
	URL string
	// HTTPClient sends the requests; the token is added to its Transport.
	HTTPClient *http.Client
	// PollInterval is the first wait between status polls (default 500ms);
	// it grows to 5s while a droplet boots or an action runs.
	PollInterval time.Duration
	// Attempts is how often one request is tried before giving up (default 8).
	Attempts int
	// RetryDelay is the first backoff between attempts (default 1s); it
	// doubles up to 30s unless the API sends Retry-After.
	RetryDelay time.Duration
}

// Client calls the DigitalOcean API. It is safe for concurrent use.
type Client struct {
	api   *godo.Client
	token string // kept only to scrub it from errors
	poll  time.Duration
	retry cloud.Retry
}

// New returns a client for cfg. It fails only for a missing token or a
// malformed URL; it sends no request.
func New(cfg Config) (*Client, error) {
	if cfg.Token == "" {
		return nil, errors.New("digitalocean: no API token (set " + TokenEnv + `, or Endpoints["digitalocean"] when embedding)`)
	}
	hc := cloud.HTTPClient(cfg.HTTPClient)
	hc.Transport = &oauth2.Transport{
		Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: cfg.Token}),
		Base:   hc.Transport,
	}
	var opts []godo.ClientOpt
	if cfg.URL != "" {
		base := strings.TrimSuffix(strings.TrimRight(cfg.URL, "/"), "/v2") + "/"
		opts = append(opts, godo.SetBaseURL(base))
	}
	// No godo RetryConfig: it would replace the HTTP client, and a create
	// must not be replayed blindly; call and createOne retry instead.
	api, err := godo.New(hc, opts...)
	if err != nil {
		return nil, fmt.Errorf("digitalocean: bad API URL: %w", err)
	}
	c := &Client{api: api, token: cfg.Token, poll: cfg.PollInterval, retry: cloud.NewRetry(cfg.Attempts, cfg.RetryDelay)}
	if c.poll <= 0 {
		c.poll = 500 * time.Millisecond
	}
	return c, nil
}

// Droplet is a droplet as orch sees it.
type Droplet struct {
	ID     int
	Name   string
	IPv4   string // public IPv4
	Region string
	Size   string
	Image  string // slug, or the numeric ID of a snapshot
	Tags   []string
	Status string
	// HostKey is the droplet's SSH host public key in authorized_keys
	// format, pinned at creation. It is empty for a droplet that existed
	// before the Create call that returned it, and from Droplets.
	HostKey string
	// Created is true when this Create call made the droplet.
	Created bool
}

// Host returns the droplet as an inventory host: Name is the droplet name,
// Address the public IPv4 address, User root, and Vars hold droplet_id and
// tags.
func (d Droplet) Host() *inventory.Host {
	return cloud.Host(d.Name, d.IPv4, d.Tags, "droplet_id", d.ID)
}

// KnownHostsLine returns the known_hosts line that pins HostKey for the
// droplet's address, or "" when the host key is not known.
func (d Droplet) KnownHostsLine() string {
	return cloud.KnownHostsLine(d.IPv4, d.HostKey)
}

// IDFromHost returns the droplet_id var of a host that Create or Droplets
// returned.
func IDFromHost(h *inventory.Host) (int, error) {
	return cloud.IDFromHost(h, "digitalocean", "droplet_id")
}

// CreateRequest is what Create makes: one droplet per name.
type CreateRequest struct {
	Names  []string
	Region string // "ams3"
	Size   string // "s-1vcpu-1gb"
	// Image is a public image slug ("debian-12-x64") or the numeric ID of a
	// snapshot ("58285042"). It must run cloud-init for the host key to be
	// pinned.
	Image string
	// UserData is cloud-init user data for every droplet. It must be empty
	// or a "#cloud-config" document: each droplet's fresh host key is merged
	// into its ssh_keys, everything else is kept. When it sets
	// ssh_keys.ed25519_public itself, that key is pinned instead and the
	// user data is sent unchanged.
	UserData string
	Tags     []string
}

// Create makes a droplet for every name that has none yet and waits,
// bounded by ctx, until all of them are active with a public address.
// Droplets that already exist are returned as they are (HostKey empty), so
// calling Create again never makes a duplicate; a name held by several
// droplets is an error. The result follows the order of req.Names. On
// error, the droplets created so far are returned as well, with their host
// keys, so the caller can still record and clean them up.
func (c *Client) Create(ctx context.Context, req CreateRequest) ([]Droplet, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	var out []Droplet
	for _, name := range req.Names {
		existing, err := c.byName(ctx, name)
		if err != nil {
			return out, c.scrub(fmt.Errorf("digitalocean.create %s: %w", name, err))
		}
		if existing != nil {
			out = append(out, *existing)
			continue
		}
		d, err := c.createOne(ctx, req, name)
		if err != nil {
			return out, c.scrub(fmt.Errorf("digitalocean.create %s: %w", name, err))
		}
		out = append(out, d)
	}
	if err := c.waitActive(ctx, out); err != nil {
		return out, c.scrub(err)
	}
	return out, nil
}

func (r CreateRequest) validate() error {
	var missing []string
	if len(r.Names) == 0 {
		missing = append(missing, "names")
	}
	for name, v := range map[string]string{"region": r.Region, "size": r.Size, "image": r.Image} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("digitalocean.create: missing %s", strings.Join(missing, ", "))
	}
	seen := map[string]bool{}
	for _, n := range r.Names {
		if n == "" || seen[strings.ToLower(n)] {
			return fmt.Errorf("digitalocean.create: names must be non-empty and distinct, got %q", r.Names)
		}
		seen[strings.ToLower(n)] = true
	}
	return nil
}

// createOne creates one droplet. Unlike other calls it is not simply
// replayed: a create that failed with a 5xx may have gone through, so every
// retry first looks the name up again.
func (c *Client) createOne(ctx context.Context, req CreateRequest, name string) (Droplet, error) {
	userData, pinned, err := withHostKey(req.UserData, cloud.NewHostKey)
	if err != nil {
		return Droplet{}, err
	}
	if len(userData) > maxUserData {
		return Droplet{}, fmt.Errorf("user_data with the host key is %d bytes, over the API's 64 KiB", len(userData))
	}
	image := godo.DropletCreateImage{Slug: req.Image}
	if id, err := strconv.Atoi(req.Image); err == nil {
		image = godo.DropletCreateImage{ID: id}
	}
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			// The key pinned is the one this call sent: if the droplet is
			// somebody else's, the first connection fails loudly.
			existing, err := c.byName(ctx, name)
			if err != nil {
				return Droplet{}, err
			}
			if existing != nil {
				existing.HostKey, existing.Created = pinned, true
				return *existing, nil
			}
		}
		gd, _, err := c.api.Droplets.Create(ctx, &godo.DropletCreateRequest{
			Name: name, Region: req.Region, Size: req.Size, Image: image,
			UserData: userData, Tags: req.Tags,
		})
		if err == nil {
			d := fromAPI(gd)
			d.HostKey, d.Created = pinned, true
			return d, nil
		}
		wait, ok := retryable(err)
		if !ok {
			return Droplet{}, err
		}
		if perr := c.retry.Pause(ctx, attempt, wait); perr != nil {
			return Droplet{}, fmt.Errorf("%w (%v)", err, perr)
		}
	}
}

// byName returns the droplet with that name (the API matches names without
// regard to case), or nil when there is none.
func (c *Client) byName(ctx context.Context, name string) (*Droplet, error) {
	var found []godo.Droplet
	err := c.call(ctx, func() error {
		var err error
		found, _, err = c.api.Droplets.ListByName(ctx, name, &godo.ListOptions{PerPage: 200})
		return err
	})
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		d := fromAPI(&found[0])
		return &d, nil
	}
	var ids []string
	for _, d := range found {
		ids = append(ids, strconv.Itoa(d.ID))
	}
	return nil, fmt.Errorf("%d droplets are named %s (IDs %s); names must be unique for orch", len(found), name, strings.Join(ids, ", "))
}

// waitActive polls until every droplet is active with a public address,
// filling them in place.
func (c *Client) waitActive(ctx context.Context, ds []Droplet) error {
	wait := c.poll
	for {
		pending := 0
		for i := range ds {
			if ds[i].Status == "active" && ds[i].IPv4 != "" {
				continue
			}
			var gd *godo.Droplet
			err := c.call(ctx, func() error {
				var err error
				gd, _, err = c.api.Droplets.Get(ctx, ds[i].ID)
				return err
			})
			if err != nil {
				if notFound(err) {
					return fmt.Errorf("digitalocean.create %s: droplet %d disappeared while booting", ds[i].Name, ds[i].ID)
				}
				return fmt.Errorf("digitalocean.create %s: %w", ds[i].Name, err)
			}
			fresh := fromAPI(gd)
			fresh.HostKey, fresh.Created = ds[i].HostKey, ds[i].Created
			ds[i] = fresh
			switch fresh.Status {
			case "active":
				if fresh.IPv4 == "" {
					pending++
				}
			case "new":
				pending++
			default: // off, archive
				return fmt.Errorf("digitalocean.create %s: droplet %d is %s, not active", fresh.Name, fresh.ID, fresh.Status)
			}
		}
		if pending == 0 {
			return nil
		}
		if err := cloud.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("digitalocean.create: waiting for %d droplet(s) to become active: %w", pending, err)
		}
		wait = cloud.NextPoll(wait)
	}
}

// Droplets lists the droplets that carry tag, or all droplets when tag is
// empty, reading every page.
func (c *Client) Droplets(ctx context.Context, tag string) ([]Droplet, error) {
	var out []Droplet
	opt := &godo.ListOptions{PerPage: 200}
	for {
		var page []godo.Droplet
		var resp *godo.Response
		err := c.call(ctx, func() error {
			var err error
			if tag != "" {
				page, resp, err = c.api.Droplets.ListByTag(ctx, tag, opt)
			} else {
				page, resp, err = c.api.Droplets.List(ctx, opt)
			}
			return err
		})
		if err != nil {
			return nil, c.scrub(fmt.Errorf("digitalocean.droplets: %w", err))
		}
		for i := range page {
			out = append(out, fromAPI(&page[i]))
		}
		if resp.Links == nil || resp.Links.IsLastPage() {
			return out, nil
		}
		cur, err := resp.Links.CurrentPage()
		if err != nil {
			return nil, fmt.Errorf("digitalocean.droplets: %w", err)
		}
		opt.Page = cur + 1
	}
}

// AssignIP points the reserved IP ip at droplet dropletID, taking it from
// any droplet that holds it, and waits until the move is done. Nothing
// happens when ip already points there.
func (c *Client) AssignIP(ctx context.Context, ip string, dropletID int) error {
	fail := func(err error) error {
		return c.scrub(fmt.Errorf("digitalocean.assign_ip %s to %d: %w", ip, dropletID, err))
	}
	var rip *godo.ReservedIP
	err := c.call(ctx, func() error {
		var err error
		rip, _, err = c.api.ReservedIPs.Get(ctx, ip)
		return err
	})
	if err != nil {
		return fail(err)
	}
	if rip.Droplet != nil && rip.Droplet.ID == dropletID {
		return nil
	}
	var action *godo.Action
	err = c.call(ctx, func() error {
		var err error
		action, _, err = c.api.ReservedIPActions.Assign(ctx, ip, dropletID)
		return err
	})
	if err != nil {
		return fail(err)
	}
	err = c.waitAction(ctx, action, func() (*godo.Action, error) {
		a, _, err := c.api.ReservedIPActions.Get(ctx, ip, action.ID)
		return a, err
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// Rename gives droplet id the name, unless it has it already, and waits
// until the rename is done.
func (c *Client) Rename(ctx context.Context, id int, name string) (Droplet, error) {
	fail := func(err error) (Droplet, error) {
		return Droplet{}, c.scrub(fmt.Errorf("digitalocean.rename %d to %s: %w", id, name, err))
	}
	get := func() (*godo.Droplet, error) {
		var gd *godo.Droplet
		err := c.call(ctx, func() error {
			var err error
			gd, _, err = c.api.Droplets.Get(ctx, id)
			return err
		})
		return gd, err
	}
	gd, err := get()
	if err != nil {
		return fail(err)
	}
	if gd.Name == name {
		return fromAPI(gd), nil
	}
	var action *godo.Action
	err = c.call(ctx, func() error {
		var err error
		action, _, err = c.api.DropletActions.Rename(ctx, id, name)
		return err
	})
	if err != nil {
		return fail(err)
	}
	err = c.waitAction(ctx, action, func() (*godo.Action, error) {
		a, _, err := c.api.DropletActions.Get(ctx, id, action.ID)
		return a, err
	})
	if err != nil {
		return fail(err)
	}
	if gd, err = get(); err != nil {
		return fail(err)
	}
	return fromAPI(gd), nil
}

// waitAction polls an action until it completes.
func (c *Client) waitAction(ctx context.Context, a *godo.Action, get func() (*godo.Action, error)) error {
	wait := c.poll
	for a.Status == godo.ActionInProgress {
		if err := cloud.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("waiting for action %d (%s): %w", a.ID, a.Type, err)
		}
		wait = cloud.NextPoll(wait)
		err := c.call(ctx, func() error {
			var err error
			a, err = get()
			return err
		})
		if err != nil {
			return err
		}
	}
	if a.Status != godo.ActionCompleted {
		return fmt.Errorf("action %d (%s) %s", a.ID, a.Type, a.Status)
	}
	return nil
}

// Delete deletes the droplets with the given IDs. A droplet that is already
// gone counts as deleted.
func (c *Client) Delete(ctx context.Context, ids ...int) error {
	var errs []error
	for _, id := range ids {
		err := c.call(ctx, func() error {
			_, err := c.api.Droplets.Delete(ctx, id)
			return err
		})
		if err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("digitalocean.delete %d: %w", id, err))
		}
	}
	return c.scrub(errors.Join(errs...))
}

func notFound(err error) bool {
	var er *godo.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound
}

func fromAPI(gd *godo.Droplet) Droplet {
	d := Droplet{
		ID: gd.ID, Name: gd.Name, Size: gd.SizeSlug, Tags: slices.Clone(gd.Tags), Status: gd.Status,
	}
	d.IPv4, _ = gd.PublicIPv4()
	if gd.Region != nil {
		d.Region = gd.Region.Slug
	}
	if gd.Image != nil {
		d.Image = gd.Image.Slug
		if d.Image == "" {
			d.Image = strconv.Itoa(gd.Image.ID)
		}
	}
	return d
}

// scrub keeps the token out of err.
func (c *Client) scrub(err error) error {
	return cloud.Scrub(err, c.token)
}
