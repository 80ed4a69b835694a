package lab

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// instance is the part of a Linode API instance the lab reads.
type instance struct {
	ID     int      `json:"id"`
	Label  string   `json:"label"`
	Status string   `json:"status"`
	IPv4   []string `json:"ipv4"`
	Tags   []string `json:"tags"`
}

// linodeAPI calls the lab cloud's Linode API, as linodego would.
func (l *Lab) linodeAPI(ctx context.Context, method, path string, header map[string]string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.CloudURL()+"/v4"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+l.tokens.Linode)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("lab cloud: %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// nameServerInstances lists the cloud's instances tagged dns, by label.
func (l *Lab) nameServerInstances(ctx context.Context) ([]instance, error) {
	var page struct {
		Data []instance `json:"data"`
	}
	filter := fmt.Sprintf(`{"tags":%q}`, DNSTag)
	if err := l.linodeAPI(ctx, http.MethodGet, "/linode/instances?page_size=500", map[string]string{"X-Filter": filter}, nil, &page); err != nil {
		return nil, err
	}
	slices.SortFunc(page.Data, func(a, b instance) int { return strings.Compare(a.Label, b.Label) })
	return page.Data, nil
}

// nameServerAddrs are the addresses of the running name servers, for the
// load balancers' upstreams.
func (l *Lab) nameServerAddrs(ctx context.Context) ([]netip.Addr, error) {
	ins, err := l.nameServerInstances(ctx)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, in := range ins {
		if in.Status != "running" || len(in.IPv4) == 0 {
			continue
		}
		a, err := netip.ParseAddr(in.IPv4[0])
		if err != nil {
			return nil, fmt.Errorf("lab cloud: instance %s: address %q", in.Label, in.IPv4[0])
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the lab cloud has no running instance tagged %s to put behind the load balancers", DNSTag)
	}
	return out, nil
}

// seedNameServers creates ns1 and ns2 in the lab cloud, tagged dns, and
// waits until they run. Up calls it once, on the lab's first start; after
// that the instances are the cloud's (plans replace them).
func (l *Lab) seedNameServers(ctx context.Context) error {
	have, err := l.nameServerInstances(ctx)
	if err != nil {
		return err
	}
	pub, err := os.ReadFile(l.KeyPath() + ".pub")
	if err != nil {
		return err
	}
	var ids []int
	for _, name := range nameServers {
		if i := slices.IndexFunc(have, func(in instance) bool { return in.Label == name }); i >= 0 {
			ids = append(ids, have[i].ID)
			continue
		}
		keyPath := filepath.Join(l.dir, hostKeysDir, name)
		signer, err := ensureKey(keyPath, "root@"+name)
		if err != nil {
			return err
		}
		priv, err := os.ReadFile(keyPath)
		if err != nil {
			return err
		}
		userData, err := nameServerUserData(l.subnet, string(priv), authorizedLine(signer.PublicKey(), "root@"+name))
		if err != nil {
			return err
		}
		l.logf("lab: creating %s in the lab cloud (Linode API, tag %s)", name, DNSTag)
		var in instance
		err = l.linodeAPI(ctx, http.MethodPost, "/linode/instances", nil, map[string]any{
			"label": name, "region": "lab", "type": "g6-nanode-1", "image": "linode/debian12",
			"tags": []string{DNSTag}, "authorized_keys": []string{strings.TrimSpace(string(pub))},
			"metadata": map[string]string{"user_data": base64.StdEncoding.EncodeToString(userData)},
		}, &in)
		if err != nil {
			return err
		}
		ids = append(ids, in.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, sshWait)
	defer cancel()
	for i, id := range ids {
		for {
			var in instance
			if err := l.linodeAPI(ctx, http.MethodGet, fmt.Sprintf("/linode/instances/%d", id), nil, nil, &in); err != nil {
				return err
			}
			if in.Status == "running" {
				break
			}
			if in.Status == "offline" {
				return fmt.Errorf("%s did not start; see %s:\n%s", nameServers[i], filepath.Join(l.dir, cloudLog), tailFile(filepath.Join(l.dir, cloudLog), 10))
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s did not start: %w", nameServers[i], ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}
