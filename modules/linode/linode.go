// Package linode implements orch's controller-side Linode calls on top of
// linodego: create instances (idempotently, by label), list them, rename
// and delete them.
//
// Every instance Create makes gets an ed25519 SSH host key generated on the
// controller and installed through cloud-init user data (metadata.user_data),
// and Create returns its public key, so the engine can pin it in
// known_hosts and verify the very first connection strictly.
//
// Requests the API turns away for now (429, 5xx, "Linode busy.") are retried
// with backoff, honouring Retry-After; waits end with the caller's context.
// The API token never appears in errors.
package linode

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/linode/linodego"

	"github.com/orch-dev/orch/inventory"
	"github.com/orch-dev/orch/modules/internal/cloud"
)

// Provider names this package's endpoint in modules.Env.Endpoints and
// engine.Options.Endpoints.
const Provider = "linode"

// The environment variables cmd/orch reads into the linode endpoint. The
// package itself reads no environment.
const (
	TokenEnv = "LINODE_TOKEN"
	URLEnv   = "LINODE_URL" // optional base URL, for example the lab cloud's
)

// Config configures a Client. Only Token is required.
type Config struct {
	Token string
	// URL is the API's base URL without the version ("http://127.0.0.1:8080"
	// for the lab cloud); a trailing "/v4" is accepted. Empty means Linode.
	URL string
	// HTTPClient sends the requests; its Transport gets wrapped with retries.
	HTTPClient *http.Client
	// PollInterval is the first wait between status polls (default 500ms);
	// it grows to 5s while an instance boots.
	PollInterval time.Duration
	// Attempts is how often one request is tried before giving up (default 8).
	Attempts int
	// RetryDelay is the first backoff between attempts (default 1s); it
	// doubles up to 30s unless the API sends Retry-After.
	RetryDelay time.Duration
}

// Client calls the Linode API. It is safe for concurrent use.
type Client struct {
	api   *linodego.Client
	token string // kept only to scrub it from errors
	poll  time.Duration
}

// New returns a client for cfg. It fails only for a missing token or a
// malformed URL; it sends no request.
func New(cfg Config) (*Client, error) {
	if cfg.Token == "" {
		return nil, errors.New("linode: no API token (set " + TokenEnv + `, or Endpoints["linode"] when embedding)`)
	}
	hc := cloud.HTTPClient(cfg.HTTPClient)
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = &retryTransport{base: base, retry: cloud.NewRetry(cfg.Attempts, cfg.RetryDelay)}

	api := linodego.NewClient(hc)
	// retryTransport retries, quietly. With resty's retries off, linodego
	// never reaches its retry hooks, which log; the quiet logger covers the
	// rest of resty's warnings.
	api.SetRetryCount(0)
	api.SetLogger(quietLogger{})
	api.SetToken(cfg.Token)
	api.SetAPIVersion(linodego.APIVersion)
	// Set the base URL explicitly: linodego would otherwise also read LINODE_URL.
	if cfg.URL == "" {
		api.SetBaseURL(linodego.APIProto + "://" + linodego.APIHost)
	} else if _, err := api.UseURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("linode: bad API URL: %w", err)
	}
	c := &Client{api: &api, token: cfg.Token, poll: cfg.PollInterval}
	if c.poll <= 0 {
		c.poll = 500 * time.Millisecond
	}
	return c, nil
}

// Instance is a Linode as orch sees it.
type Instance struct {
	ID     int
	Label  string
	IPv4   string // primary public IPv4
	Region string
	Type   string
	Image  string
	Tags   []string
	Status string
	// HostKey is the instance's SSH host public key in authorized_keys
	// format, pinned at creation. It is empty for an instance that existed
	// before the Create call that returned it, and from Instances.
	HostKey string
	// Created is true when this Create call made the instance.
	Created bool
}

// Host returns the instance as an inventory host: Name is the label,
// Address the IPv4 address, User root, and Vars hold linode_id and tags.
func (i Instance) Host() *inventory.Host {
	return cloud.Host(i.Label, i.IPv4, i.Tags, "linode_id", i.ID)
}

// KnownHostsLine returns the known_hosts line that pins HostKey for the
// instance's address, or "" when the host key is not known.
func (i Instance) KnownHostsLine() string {
	return cloud.KnownHostsLine(i.IPv4, i.HostKey)
}

// IDFromHost returns the linode_id var of a host that Create or Instances
// returned.
func IDFromHost(h *inventory.Host) (int, error) {
	return cloud.IDFromHost(h, "linode", "linode_id")
}

// CreateRequest is what Create makes: one instance per label.
type CreateRequest struct {
	Labels         []string
	Region         string // "us-east"
	Type           string // "g6-nanode-1"
	Image          string // "linode/debian12"; it must run cloud-init for the host key to be pinned
	Tags           []string
	AuthorizedKeys []string // public keys allowed to log in as root
}

// Create makes an instance for every label that has none yet and waits,
// bounded by ctx, until all of them run with an address. Instances that
// already exist are returned as they are (HostKey empty), so calling Create
// again never makes a duplicate. The result follows the order of
// req.Labels. On error, the instances created so far are returned as well,
// with their host keys, so the caller can still record and clean them up.
func (c *Client) Create(ctx context.Context, req CreateRequest) ([]Instance, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	existing, err := c.byLabel(ctx, req.Labels)
	if err != nil {
		return nil, c.scrub(fmt.Errorf("linode.create: %w", err))
	}
	var out []Instance
	for _, label := range req.Labels {
		if in, ok := existing[label]; ok {
			out = append(out, in)
			continue
		}
		in, err := c.createOne(ctx, req, label)
		if err != nil {
			return out, c.scrub(fmt.Errorf("linode.create %s: %w", label, err))
		}
		out = append(out, in)
	}
	if err := c.waitRunning(ctx, out); err != nil {
		return out, c.scrub(err)
	}
	return out, nil
}

func (r CreateRequest) validate() error {
	var missing []string
	if len(r.Labels) == 0 {
		missing = append(missing, "labels")
	}
	for name, v := range map[string]string{"region": r.Region, "type": r.Type, "image": r.Image} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("linode.create: missing %s", strings.Join(missing, ", "))
	}
	seen := map[string]bool{}
	for _, l := range r.Labels {
		if l == "" || seen[l] {
			return fmt.Errorf("linode.create: labels must be non-empty and distinct, got %q", r.Labels)
		}
		seen[l] = true
	}
	return nil
}

func (c *Client) createOne(ctx context.Context, req CreateRequest, label string) (Instance, error) {
	key, err := cloud.NewHostKey()
	if err != nil {
		return Instance{}, err
	}
	li, err := c.api.CreateInstance(ctx, linodego.InstanceCreateOptions{
		Region:         req.Region,
		Type:           req.Type,
		Label:          label,
		Image:          req.Image,
		RootPass:       randomPassword(),
		AuthorizedKeys: req.AuthorizedKeys,
		Tags:           req.Tags,
		Metadata:       &linodego.InstanceMetadataOptions{UserData: base64.StdEncoding.EncodeToString([]byte(key.CloudConfig()))},
	})
	if err != nil && labelTaken(err) {
		// A retried POST whose first try went through, or a concurrent
		// creator. The key pinned is the one this call sent: if the instance
		// is somebody else's, the first connection fails loudly, not silently.
		found, lerr := c.byLabel(ctx, []string{label})
		if lerr == nil {
			if in, ok := found[label]; ok {
				in.HostKey, in.Created = key.Public, true
				return in, nil
			}
		}
	}
	if err != nil {
		return Instance{}, err
	}
	in := fromAPI(li)
	in.HostKey, in.Created = key.Public, true
	return in, nil
}

// randomPassword is a root password nobody knows: the API wants one with an
// image, and access goes through authorized keys.
func randomPassword() string {
	return "Orch-" + rand.Text() + "-" + rand.Text()
}

func labelTaken(err error) bool {
	return linodego.ErrHasStatus(err, http.StatusBadRequest) && strings.Contains(err.Error(), "must be unique")
}

// byLabel looks labels up with one filtered list call.
func (c *Client) byLabel(ctx context.Context, labels []string) (map[string]Instance, error) {
	var nodes []linodego.FilterNode
	for _, l := range labels {
		nodes = append(nodes, &linodego.Comp{Column: "label", Operator: linodego.Eq, Value: l})
	}
	filter, err := linodego.Or("", "", nodes...).MarshalJSON()
	if err != nil {
		return nil, err
	}
	found, err := c.api.ListInstances(ctx, &linodego.ListOptions{Filter: string(filter)})
	if err != nil {
		return nil, err
	}
	out := map[string]Instance{}
	for _, li := range found {
		if slices.Contains(labels, li.Label) {
			out[li.Label] = fromAPI(&li)
		}
	}
	return out, nil
}

// waitRunning polls until every instance runs and has an address, filling
// them in place.
func (c *Client) waitRunning(ctx context.Context, ins []Instance) error {
	wait := c.poll
	for {
		pending := 0
		for i := range ins {
			if ins[i].Status == string(linodego.InstanceRunning) && ins[i].IPv4 != "" {
				continue
			}
			li, err := c.api.GetInstance(ctx, ins[i].ID)
			if err != nil {
				if linodego.IsNotFound(err) {
					return fmt.Errorf("linode.create %s: instance %d disappeared while booting", ins[i].Label, ins[i].ID)
				}
				return fmt.Errorf("linode.create %s: %w", ins[i].Label, err)
			}
			fresh := fromAPI(li)
			fresh.HostKey, fresh.Created = ins[i].HostKey, ins[i].Created
			ins[i] = fresh
			switch linodego.InstanceStatus(fresh.Status) {
			case linodego.InstanceRunning:
				if fresh.IPv4 == "" {
					pending++
				}
			case linodego.InstanceOffline, linodego.InstanceShuttingDown, linodego.InstanceDeleting:
				return fmt.Errorf("linode.create %s: instance %d is %s, not running", fresh.Label, fresh.ID, fresh.Status)
			default:
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		if err := cloud.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("linode.create: waiting for %d instance(s) to run: %w", pending, err)
		}
		wait = cloud.NextPoll(wait)
	}
}

// Instances lists the instances that carry tag and have label; an empty
// argument does not filter.
func (c *Client) Instances(ctx context.Context, tag, label string) ([]Instance, error) {
	f := &linodego.Filter{}
	if tag != "" {
		f.AddField(linodego.Eq, "tags", tag)
	}
	if label != "" {
		f.AddField(linodego.Eq, "label", label)
	}
	opts := &linodego.ListOptions{}
	if len(f.Children) > 0 {
		b, err := f.MarshalJSON()
		if err != nil {
			return nil, err
		}
		opts.Filter = string(b)
	}
	found, err := c.api.ListInstances(ctx, opts)
	if err != nil {
		return nil, c.scrub(fmt.Errorf("linode.instances: %w", err))
	}
	out := make([]Instance, 0, len(found))
	for _, li := range found {
		out = append(out, fromAPI(&li))
	}
	return out, nil
}

// Delete deletes the instances with the given IDs. An instance that is
// already gone counts as deleted.
func (c *Client) Delete(ctx context.Context, ids ...int) error {
	var errs []error
	for _, id := range ids {
		if err := c.api.DeleteInstance(ctx, id); err != nil && !linodego.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("linode.delete %d: %w", id, err))
		}
	}
	return c.scrub(errors.Join(errs...))
}

// Rename gives instance id the label, unless it has it already.
func (c *Client) Rename(ctx context.Context, id int, label string) (Instance, error) {
	li, err := c.api.GetInstance(ctx, id)
	if err == nil && li.Label != label {
		li, err = c.api.RenameInstance(ctx, id, label)
	}
	if err != nil {
		return Instance{}, c.scrub(fmt.Errorf("linode.rename %d to %s: %w", id, label, err))
	}
	return fromAPI(li), nil
}

// quietLogger drops resty's log lines: the library does not print.
type quietLogger struct{}

func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}

func fromAPI(li *linodego.Instance) Instance {
	in := Instance{
		ID: li.ID, Label: li.Label, Region: li.Region, Type: li.Type, Image: li.Image,
		Tags: slices.Clone(li.Tags), Status: string(li.Status),
	}
	for _, ip := range li.IPv4 {
		if ip != nil {
			in.IPv4 = ip.String()
			break
		}
	}
	return in
}

// scrub keeps the token out of err.
func (c *Client) scrub(err error) error {
	return cloud.Scrub(err, c.token)
}
