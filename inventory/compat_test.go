package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Hosts orch cannot connect to load, match and list; they carry the reason.
func TestUnusableHostsLoad(t *testing.T) {
	inv := mustLoad(t, "testdata/ansible-cases/connections/hosts")
	tests := map[string]string{
		"win1": `ansible_connection "winrm": orch connects with ssh, local, docker or jail only`,
		"sw1":  `ansible_connection "network_cli": orch connects with ssh, local, docker or jail only`,
		"t1":   `ansible_host "{{ lookup('env', 'T1_IP') }}": a Jinja template, which orch does not render`,
		"t2":   `ansible_user "{{ deploy_user }}": a Jinja template, which orch does not render`,
		"b1":   "",
	}
	for name, want := range tests {
		if got := mustHost(t, inv, name).Unusable; got != want {
			t.Errorf("%s: Unusable = %q, want %q", name, got, want)
		}
	}
	if got, err := inv.Match("windows"); err != nil || !slices.Equal(names(got), []string{"win1"}) {
		t.Errorf("windows = %v, %v", names(got), err)
	}
	if h := mustHost(t, inv, "t1"); h.Port != 0 {
		t.Errorf("templated port: Port = %d", h.Port)
	}
}

func TestSSHArgsAndWarnings(t *testing.T) {
	inv := mustLoad(t, "testdata/ansible-cases/connections/hosts")
	b1, b2 := mustHost(t, inv, "b1"), mustHost(t, inv, "b2")
	if want := (SSHArgs{ProxyCommand: "ssh -W %h:%p -q jump@bastion", StrictHostKeyChecking: "off"}); !reflect.DeepEqual(b1.SSH, want) {
		t.Errorf("b1.SSH = %+v, want %+v", b1.SSH, want)
	}
	if want := (SSHArgs{ProxyJump: "jump@bastion:2222", UserKnownHostsFiles: []string{"/dev/null"}}); !reflect.DeepEqual(b2.SSH, want) {
		t.Errorf("b2.SSH = %+v, want %+v", b2.SSH, want)
	}
	if !b1.Become || b1.ConnectTimeout != 30*time.Second {
		t.Errorf("b1 become %v, timeout %v", b1.Become, b1.ConnectTimeout)
	}
	want := []string{
		"host b1: ansible_ssh_common_args: -o ServerAliveInterval=30 is not supported by orch and is ignored",
		"hosts b1, b2: ansible_become_pass is ignored: orch takes the become password from --ask-become-pass or ORCH_BECOME_PASS, never from the inventory",
		"host win1: ansible_password is ignored: orch logs in with keys (ssh-agent, IdentityFile, ssh_key), not passwords",
	}
	got := inv.Warnings()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("warnings lack %q; have:\n%s", w, strings.Join(got, "\n"))
		}
	}
	for _, w := range got {
		if strings.Contains(w, "hunter2") || strings.Contains(w, "Secret1") {
			t.Errorf("a warning shows a password: %s", w)
		}
	}
	// --limit keeps only the warnings of the hosts it keeps.
	lim, err := inv.Limit("win1")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range lim.Warnings() {
		if strings.Contains(w, "b1") {
			t.Errorf("limited inventory warns about b1: %s", w)
		}
	}
}

func TestBecomeMethods(t *testing.T) {
	inv := mustParse(t, "inventory.ini", "a ansible_become=yes ansible_become_method=doas ansible_become_user=op\nb ansible_become_method=su\nc become=true become_method=su\n")
	if a := mustHost(t, inv, "a"); !a.Become || a.BecomeMethod != "doas" || a.BecomeUser != "op" || a.Unusable != "" {
		t.Errorf("a = %+v", a)
	}
	// su without become: usable, the method kept so that a task that becomes fails.
	if b := mustHost(t, inv, "b"); b.Become || b.BecomeMethod != "su" || b.Unusable != "" {
		t.Errorf("b = %+v", b)
	}
	if c := mustHost(t, inv, "c"); c.Unusable != `become_method "su": orch can become with sudo or doas only` {
		t.Errorf("c.Unusable = %q", c.Unusable)
	}
}

func TestHostList(t *testing.T) {
	inv, err := Load("web1, web2:2222,[2001:db8::1]:2200,,web1")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(inv.Hosts()); !slices.Equal(got, []string{"web1", "web2", "2001:db8::1"}) {
		t.Errorf("hosts = %v", got)
	}
	if h := mustHost(t, inv, "web2"); h.Port != 2222 || !slices.Equal(h.Groups, []string{Ungrouped}) {
		t.Errorf("web2 = %+v", h)
	}
	if _, err := Load("web1:99999,"); err == nil || !strings.Contains(err.Error(), "port 99999 is not 1-65535") {
		t.Errorf("bad port: %v", err)
	}
	if _, err := Load("testdata/missing.ini"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file without a comma: %v", err)
	}
}

// The playbook dir's vars beat the inventory's, and apply to hosts of
// every source.
func TestPlaybookDirOption(t *testing.T) {
	inv, err := LoadWith("testdata/ansible-cases/playbook-dir/inventory/hosts", Options{PlaybookDir: "testdata/ansible-cases/playbook-dir/playbook"})
	if err != nil {
		t.Fatal(err)
	}
	got := mustHost(t, inv, "web1").Vars
	want := map[string]any{"a": "inv_web", "b": "pb_all", "g": "inv_all", "w": "inv_web", "x": "pb_web", "h": "pb_host", "hostonly": "inv_host"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("web1 vars = %v\nwant %v", got, want)
	}
}

func TestVarsFileErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hosts"), []byte("[web]\nweb1\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "group_vars"), 0o755)
	for content, want := range map[string]string{
		"when: 2024-02-30\n": `group_vars/web.yml:1: "2024-02-30": not a valid date`,
		"x: !!int abc\n":     `group_vars/web.yml:1: "abc" is not a valid !!int`,
		"x: !custom 1\n":     `group_vars/web.yml:1: unknown YAML tag !custom`,
	} {
		os.WriteFile(filepath.Join(dir, "group_vars", "web.yml"), []byte(content), 0o644)
		if _, err := Load(filepath.Join(dir, "hosts")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error = %v, want %q", content, err, want)
		}
	}
}
