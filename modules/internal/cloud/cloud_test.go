package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

func TestHostKeyCloudConfig(t *testing.T) {
	k, err := NewHostKey()
	if err != nil {
		t.Fatal(err)
	}
	out := k.CloudConfig()
	if !strings.HasPrefix(out, CloudConfigHeader+"\n") {
		t.Fatalf("no header: %q", out)
	}
	var cfg struct {
		SSHKeys map[string]string `yaml:"ssh_keys"`
	}
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, out)
	}
	if cfg.SSHKeys["ed25519_private"] != k.Private || cfg.SSHKeys["ed25519_public"] != k.Public {
		t.Errorf("ssh_keys = %v\n%s", cfg.SSHKeys, out)
	}
	signer, err := ssh.ParsePrivateKey([]byte(k.Private))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))); got != k.Public {
		t.Errorf("public key %q does not match the private key's %q", k.Public, got)
	}
}

func TestKnownHostsLine(t *testing.T) {
	k, _ := NewHostKey()
	if got := KnownHostsLine("198.51.100.7", k.Public); got != "198.51.100.7 "+k.Public {
		t.Errorf("line = %q", got)
	}
	for _, tt := range []struct{ address, key string }{
		{"", k.Public}, {"198.51.100.7", ""}, {"198.51.100.7", "not a key"},
	} {
		if got := KnownHostsLine(tt.address, tt.key); got != "" {
			t.Errorf("KnownHostsLine(%q, %q) = %q, want none", tt.address, tt.key, got)
		}
	}
}

func TestHostAndIDFromHost(t *testing.T) {
	tags := []string{"dns"}
	h := Host("ns1", "198.51.100.7", tags, "linode_id", 42)
	tags[0] = "changed"
	if h.Name != "ns1" || h.Address != "198.51.100.7" || h.User != "root" || h.Vars["linode_id"] != 42 || h.Vars["tags"].([]string)[0] != "dns" {
		t.Errorf("host = %+v", h)
	}
	for _, v := range []any{42, int64(42), float64(42), "42"} {
		h.Vars["linode_id"] = v
		if id, err := IDFromHost(h, "linode", "linode_id"); err != nil || id != 42 {
			t.Errorf("%T: %d, %v", v, id, err)
		}
	}
	h.Vars["linode_id"] = "x"
	if _, err := IDFromHost(h, "linode", "linode_id"); err == nil || err.Error() != "linode: host ns1 has no linode_id var" {
		t.Errorf("bad var: %v", err)
	}
	if _, err := IDFromHost(nil, "linode", "linode_id"); err == nil || err.Error() != "linode: no host" {
		t.Errorf("no host: %v", err)
	}
}

func TestScrub(t *testing.T) {
	err := fmt.Errorf("call: %w", errors.New("bad header Bearer s3cr3t"))
	if got := Scrub(err, "s3cr3t"); got.Error() != "call: bad header Bearer [redacted]" || errors.Unwrap(got) != nil {
		t.Errorf("scrubbed = %v", got)
	}
	if got := Scrub(err, "other"); got != err {
		t.Errorf("an error without the token was changed: %v", got)
	}
	if Scrub(nil, "s3cr3t") != nil {
		t.Error("nil became an error")
	}
}

func TestHTTPClient(t *testing.T) {
	if hc := HTTPClient(nil); hc.Timeout != 2*time.Minute {
		t.Errorf("default timeout %v", hc.Timeout)
	}
	mine := &http.Client{Timeout: time.Second}
	hc := HTTPClient(mine)
	hc.Transport = http.DefaultTransport
	if hc == mine || mine.Transport != nil || hc.Timeout != time.Second {
		t.Error("the caller's client was not copied")
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {" 3 ", 3 * time.Second}, {"-5", 0}, {"soon", 0}, {"3600", 2 * time.Minute},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
	} {
		if got := RetryAfter(tt.in); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := RetryAfter(time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)); got < 58*time.Second || got > time.Minute {
		t.Errorf("a date a minute away waits %v", got)
	}
}

func TestBackoff(t *testing.T) {
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 10: 30 * time.Second} {
		for range 20 {
			if got := Backoff(time.Second, 30*time.Second, attempt); got < want/2 || got > want {
				t.Errorf("attempt %d waits %v, want %v to %v", attempt, got, want/2, want)
			}
		}
	}
}

func TestPause(t *testing.T) {
	r := NewRetry(0, 0)
	if r != (Retry{Attempts: 8, Delay: time.Second, MaxDelay: 30 * time.Second}) {
		t.Errorf("defaults = %+v", r)
	}
	r = Retry{Attempts: 2, Delay: time.Millisecond, MaxDelay: time.Millisecond}
	if err := r.Pause(context.Background(), 1, 0); err != nil {
		t.Errorf("first pause: %v", err)
	}
	if err := r.Pause(context.Background(), 2, 0); err == nil || err.Error() != "giving up after 2 attempts" {
		t.Errorf("last pause: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Pause(ctx, 1, time.Hour); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "stopped retrying: ") {
		t.Errorf("cancelled pause: %v", err)
	}
}
