package digitalocean

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/orch-dev/orch/modules/internal/cloud"
)

var fixedKey = cloud.HostKey{
	Private: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\nBBBB\n-----END OPENSSH PRIVATE KEY-----\n",
	Public:  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFixed",
}

func fixed() (cloud.HostKey, error) { return fixedKey, nil }

func TestWithHostKey(t *testing.T) {
	tests := []struct {
		name, in   string
		wantPinned string
		wantErr    string
		check      func(t *testing.T, out string, cfg map[string]any)
	}{
		{name: "empty", in: "", wantPinned: fixedKey.Public},
		{name: "blank", in: "\n  \n", wantPinned: fixedKey.Public},
		{
			name: "merged into a cloud-config", wantPinned: fixedKey.Public,
			in: "#cloud-config\n# keep me\nruncmd:\n  - echo hi # and me\npackages: [nginx]\n",
			check: func(t *testing.T, out string, cfg map[string]any) {
				if cfg["runcmd"] == nil || cfg["packages"] == nil {
					t.Errorf("user keys lost: %s", out)
				}
				if !strings.Contains(out, "# keep me") || !strings.Contains(out, "# and me") {
					t.Errorf("comments lost: %s", out)
				}
			},
		},
		{
			name: "other host key types are kept", wantPinned: fixedKey.Public,
			in: "#cloud-config\nssh_keys:\n  rsa_private: secret\n  rsa_public: ssh-rsa AAAA\n",
			check: func(t *testing.T, out string, cfg map[string]any) {
				if cfg["ssh_keys"].(map[string]any)["rsa_public"] != "ssh-rsa AAAA" {
					t.Errorf("rsa key lost: %s", out)
				}
			},
		},
		{name: "null ssh_keys", in: "#cloud-config\nssh_keys:\n", wantPinned: fixedKey.Public},
		{name: "empty cloud-config", in: "#cloud-config\n", wantPinned: fixedKey.Public},
		{name: "CRLF header", in: "#cloud-config\r\nruncmd: [ls]\r\n", wantPinned: fixedKey.Public},
		{
			name: "the user's own key is pinned", wantPinned: "ssh-ed25519 AAAAUser",
			in: "#cloud-config\nssh_keys:\n  ed25519_private: |\n    x\n  ed25519_public: ssh-ed25519 AAAAUser\n",
			check: func(t *testing.T, out string, _ map[string]any) {
				if !strings.HasSuffix(out, "ed25519_public: ssh-ed25519 AAAAUser\n") || strings.Contains(out, "Fixed") {
					t.Errorf("user data changed: %s", out)
				}
			},
		},
		{name: "private without public", in: "#cloud-config\nssh_keys:\n  ed25519_private: x\n", wantErr: "without ed25519_public"},
		{name: "shell script", in: "#!/bin/sh\necho hi\n", wantErr: "#cloud-config"},
		{name: "multipart", in: "Content-Type: multipart/mixed; boundary=x\n", wantErr: "#cloud-config"},
		{name: "bad YAML", in: "#cloud-config\nruncmd: [\n", wantErr: "not valid YAML"},
		{name: "not a mapping", in: "#cloud-config\n- a\n", wantErr: "must be a mapping"},
		{name: "ssh_keys a list", in: "#cloud-config\nssh_keys: [a]\n", wantErr: "ssh_keys must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, pinned, err := withHostKey(tt.in, fixed)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pinned != tt.wantPinned {
				t.Errorf("pinned %q, want %q", pinned, tt.wantPinned)
			}
			if !strings.HasPrefix(out, "#cloud-config\n") && !strings.HasPrefix(out, "#cloud-config\r\n") {
				t.Fatalf("no header: %q", out)
			}
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
				t.Fatalf("output is not YAML: %v\n%s", err, out)
			}
			keys, _ := cfg["ssh_keys"].(map[string]any)
			if keys["ed25519_public"] != tt.wantPinned {
				t.Errorf("ssh_keys = %v\n%s", keys, out)
			}
			if tt.wantPinned == fixedKey.Public && keys["ed25519_private"] != fixedKey.Private {
				t.Errorf("private key = %q\n%s", keys["ed25519_private"], out)
			}
			if tt.check != nil {
				tt.check(t, out, cfg)
			}
		})
	}
}
