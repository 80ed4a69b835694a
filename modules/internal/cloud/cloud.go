// Package cloud holds what orch's cloud provider modules (linode,
// digitalocean) share: the host keys they generate and pin for new
// machines, the retry policy for requests an API turns away for now, the
// shape of the inventory hosts they return, and the Starlark-facing loops
// that hand those hosts to the engine.
//
// Each provider keeps its own API calls, error texts and public types; this
// package only holds the logic that must not drift between them.
package cloud

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/orch-dev/orch/inventory"
)

// Host returns a machine as an inventory host that orch reaches as root,
// in groups named after its tags. Vars hold the provider's ID under idVar
// ("linode_id", "droplet_id"), which IDFromHost reads back, and a copy of
// tags.
func Host(name, address string, tags []string, idVar string, id int) *inventory.Host {
	vars := map[string]any{"tags": slices.Clone(tags)}
	if idVar != "" {
		vars[idVar] = id
	}
	return &inventory.Host{
		Name:    name,
		Address: address,
		User:    "root",
		Groups:  groupsOf(tags),
		Vars:    vars,
	}
}

// groupsOf lists the distinct tags that can name a group.
func groupsOf(tags []string) []string {
	var out []string
	for _, t := range tags {
		if t != "" && !strings.ContainsAny(t, ", :!&*?[]~\t") && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// KnownHostsLine returns the known_hosts line that pins hostKey, in
// authorized_keys format, for address, or "" when either is unknown or the
// key does not parse.
func KnownHostsLine(address, hostKey string) string {
	if hostKey == "" || address == "" {
		return ""
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
	if err != nil {
		return ""
	}
	return knownhosts.Line([]string{knownhosts.Normalize(address)}, key)
}

// IDFromHost returns the int var idVar of a host that Host made. The var
// may also arrive as int64, float64 or a numeric string, as it does after
// a round trip through Starlark or JSON. Errors start with provider.
func IDFromHost(h *inventory.Host, provider, idVar string) (int, error) {
	if h == nil {
		return 0, errors.New(provider + ": no host")
	}
	switch v := h.Vars[idVar].(type) {
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case float64:
		return int(v), nil
	case string:
		if id, err := strconv.Atoi(v); err == nil {
			return id, nil
		}
	}
	return 0, fmt.Errorf("%s: host %s has no %s var", provider, h.Name, idVar)
}

// Scrub keeps token out of err: should a server ever echo it, the message
// is rewritten and the chain, which still holds it, is dropped.
func Scrub(err error, token string) error {
	if err == nil || token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), token, "[redacted]"))
}

// HTTPClient returns a copy of hc that a provider client may wrap without
// touching the caller's, or, when hc is nil, a client whose requests give
// up after two minutes.
func HTTPClient(hc *http.Client) *http.Client {
	if hc == nil {
		return &http.Client{Timeout: 2 * time.Minute}
	}
	copied := *hc
	return &copied
}
