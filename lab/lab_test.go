package lab_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/orch-dev/orch/testkit/require"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/orch-dev/orch/engine/conn/dockerconn"
	"github.com/orch-dev/orch/lab"
	"github.com/orch-dev/orch/lab/cloud"
	"github.com/orch-dev/orch/lab/labtest"
)

// One lab serves every test in this binary: the first test that needs it
// brings it up, and TestMain takes it down at the end.
var (
	labOnce    sync.Once
	testLab    *lab.Lab
	testOpts   lab.Options
	skipReason string
)

// serveCloudEnv makes this test binary act as the lab cloud process, the
// role `orch lab serve-cloud` plays for the real CLI.
const serveCloudEnv = "ORCH_LAB_TEST_SERVE_CLOUD"

// testPrefix marks the test labs' docker objects; the pid tells whose.
const testPrefix = "orch-labtest-"

func TestMain(m *testing.M) {
	if dir := os.Getenv(serveCloudEnv); dir != "" {
		if err := labtest.ServeCloud(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := exec.Command("docker", "info").Run(); err != nil {
		skipReason = "no docker engine (docker info failed)"
		return m.Run()
	}
	sweepStaleLabs()
	state, err := os.MkdirTemp("", "orch-lab-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(state)
	testOpts = lab.Options{
		Dir:          state,
		Prefix:       fmt.Sprintf("%s%d", testPrefix, os.Getpid()),
		Logf:         logf,
		CloudCommand: []string{os.Args[0]},
		CloudEnv:     []string{serveCloudEnv + "=" + state},
	}
	code := m.Run()
	if testLab == nil {
		return code
	}
	if err := lab.Down(context.Background(), testOpts); err != nil {
		fmt.Fprintln(os.Stderr, "lab tests: down:", err)
		return 1
	}
	if left := dockerObjects(testOpts.Prefix); left != "" {
		fmt.Fprintln(os.Stderr, "lab tests: down left docker objects behind:", left)
		return 1
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "lab tests: down left the state dir behind")
		return 1
	}
	return code
}

func logf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }

// sweepStaleLabs removes what test binaries that crashed left behind: their
// state dirs, containers and networks.
func sweepStaleLabs() {
	stale := func(prefix string) bool {
		pid, err := strconv.Atoi(strings.TrimPrefix(prefix, testPrefix))
		return strings.HasPrefix(prefix, testPrefix) && err == nil && syscall.Kill(pid, 0) != nil
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "orch-lab-test-*"))
	for _, dir := range dirs {
		var st struct{ Prefix string }
		data, _ := os.ReadFile(filepath.Join(dir, "lab.json"))
		if json.Unmarshal(data, &st) == nil && stale(st.Prefix) {
			logf("lab tests: removing the stale test lab %s", st.Prefix)
			lab.Down(context.Background(), lab.Options{Dir: dir, Prefix: st.Prefix})
			os.RemoveAll(dir)
		}
	}
	out, _ := exec.Command("docker", "network", "ls", "--filter", "label=dev.orch.lab", "--format", `{{.Label "dev.orch.lab"}}`).Output()
	for _, prefix := range strings.Fields(string(out)) {
		if stale(prefix) {
			logf("lab tests: removing the stale test lab %s", prefix)
			lab.Down(context.Background(), lab.Options{Dir: filepath.Join(os.TempDir(), "orch-lab-test-none"), Prefix: prefix})
		}
	}
}

func dockerObjects(prefix string) string {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=dev.orch.lab="+prefix).Output()
	nets, _ := exec.Command("docker", "network", "ls", "-q", "--filter", "label=dev.orch.lab="+prefix).Output()
	return strings.TrimSpace(string(out) + string(nets))
}

func needLab(t *testing.T) *lab.Lab {
	t.Helper()
	labOnce.Do(func() {
		if skipReason != "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		start := time.Now()
		l, err := lab.Up(ctx, testOpts)
		if err != nil {
			skipReason = "lab up failed: " + err.Error()
			lab.Down(context.Background(), testOpts)
			return
		}
		logf("lab tests: up in %s", time.Since(start).Round(time.Millisecond))
		testLab = l
	})
	if testLab == nil {
		if strings.HasPrefix(skipReason, "no docker") {
			require.Missing(t, skipReason)
		}
		t.Fatal(skipReason)
	}
	return testLab
}

func status(t *testing.T) map[string]lab.HostStatus {
	t.Helper()
	st, err := needLab(t).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]lab.HostStatus{}
	for _, h := range st {
		m[h.Name] = h
	}
	return m
}

// snapshot is every lab container with the time it started.
func snapshot(t *testing.T) string {
	t.Helper()
	ids, err := exec.Command("docker", "ps", "-aq", "--filter", "label=dev.orch.lab="+testOpts.Prefix).Output()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("docker", append([]string{"inspect", "--format", "{{.Id}} {{.State.StartedAt}}"}, strings.Fields(string(ids))...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestUpIsIdempotent(t *testing.T) {
	l := needLab(t)
	before := snapshot(t)
	env := l.Env()
	start := time.Now()
	l2, err := lab.Up(context.Background(), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("second up took %s", took)
	if after := snapshot(t); after != before {
		t.Errorf("second up changed containers:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := l2.Env(); !maps.Equal(got, env) {
		t.Errorf("second up changed the environment: %v -> %v", env, got)
	}
	if took > 10*time.Second {
		t.Errorf("second up took %s", took)
	}
}

// TestOneStatePerLab: a lab's docker objects are never adopted by another
// state folder, which would not know their host keys.
func TestOneStatePerLab(t *testing.T) {
	needLab(t)
	other := t.TempDir()
	_, err := lab.Up(context.Background(), lab.Options{Dir: other, Prefix: testOpts.Prefix, Logf: logf})
	if err == nil || !strings.Contains(err.Error(), "belongs to the state in "+testOpts.Dir) || !strings.Contains(err.Error(), "ORCH_LAB_STATE="+testOpts.Dir) {
		t.Fatalf("Up from another state folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "lab.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused Up wrote a lab state: %v", err)
	}
}

func TestStatus(t *testing.T) {
	l := needLab(t)
	st := status(t)
	want := map[string]string{"ns1": "dns", "ns2": "dns", "lb1": "lb", "lb2": "lb", "bsd1": "freebsd"}
	for name, group := range want {
		h, ok := st[name]
		if !ok {
			t.Errorf("status lacks %s: %v", name, st)
			continue
		}
		addr, err := netip.ParseAddr(h.Address)
		if err != nil || !l.Subnet().Contains(addr) {
			t.Errorf("%s: address %q not in %s", name, h.Address, l.Subnet())
		}
		if !slices.Equal(h.Groups, []string{group}) {
			t.Errorf("%s: groups %v, want [%s]", name, h.Groups, group)
		}
	}
	list, _ := l.Status(context.Background())
	data, _ := json.Marshal(list[:1])
	if !bytes.HasPrefix(data, []byte(`[{"name":"`)) || !bytes.Contains(data, []byte(`"address":"`)) || !bytes.Contains(data, []byte(`"groups":["`)) {
		t.Errorf("status JSON = %s", data)
	}

	hosts, err := l.Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if h.Port != 22 || h.User != "root" || h.Key != l.KeyPath() || h.Connection != "ssh" || h.Address != st[h.Name].Address {
			t.Errorf("inventory host %+v", *h)
		}
	}
	inv, err := os.ReadFile(filepath.Join(l.Dir(), "inventory.yaml"))
	if err != nil || !bytes.Contains(inv, []byte("ns1:\n          ansible_host: "+st["ns1"].Address)) {
		t.Errorf("inventory.yaml: %v\n%s", err, inv)
	}
}

func TestEnv(t *testing.T) {
	l := needLab(t)
	env := l.Env()
	for _, k := range []string{"LINODE_URL", "LINODE_TOKEN", "DIGITALOCEAN_URL", "DIGITALOCEAN_TOKEN"} {
		if env[k] == "" {
			t.Errorf("%s is empty", k)
		}
	}
	lines := l.EnvLines()
	// KEY=value lines that a shell can eval and a script can split on "=".
	if len(lines) != 4 || lines[0] != "DIGITALOCEAN_TOKEN="+env["DIGITALOCEAN_TOKEN"] || lines[3] != "LINODE_URL="+env["LINODE_URL"] {
		t.Errorf("env lines: %q", lines)
	}
	// The cloud answers with the token and refuses without it.
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/v4/linode/instances", env["LINODE_TOKEN"], 200},
		{"/v4/linode/instances", "wrong", 401},
		{"/v2/droplets", env["DIGITALOCEAN_TOKEN"], 200},
	} {
		req, _ := http.NewRequest("GET", env["LINODE_URL"]+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s with token %.6s…: %d, want %d", c.path, c.token, resp.StatusCode, c.want)
		}
	}
	// Open reads the same lab back.
	again, err := lab.Open(testOpts.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(again.Env(), env) {
		t.Errorf("Open: env %v, want %v", again.Env(), env)
	}
}

// execIn runs a script in a lab container through the docker connection.
func execIn(t *testing.T, container, script string) string {
	t.Helper()
	c, err := dockerconn.Dial(context.Background(), container, dockerconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Exec(context.Background(), script, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("%s: %q: exit %d: %s", container, script, res.ExitCode, res.Stderr)
	}
	return strings.TrimSpace(string(res.Stdout))
}

func TestDNS(t *testing.T) {
	needLab(t)
	st := status(t)
	probe := testOpts.Prefix + "-lb2"
	for _, c := range []struct{ server, flags string }{
		{"ns1", ""}, {"ns2", "+tcp"},
		{"lb1", ""}, {"lb1", "+tcp"}, {"lb2", ""}, {"lb2", "+tcp"},
	} {
		script := fmt.Sprintf("dig +short +time=1 +tries=1 %s @%s %s A", c.flags, st[c.server].Address, lab.ProbeName)
		var got string
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if got = runAllowFail(t, probe, script); got == lab.ProbeValue || time.Now().After(deadline) {
				break
			}
		}
		if got != lab.ProbeValue {
			t.Errorf("dig %s @%s: %q, want %s", c.flags, c.server, got, lab.ProbeValue)
		}
	}
	// The upstreams live in their own file, included from the stream block,
	// so that nginx.upstream can rewrite them alone.
	for _, lb := range []string{"lb1", "lb2"} {
		c := testOpts.Prefix + "-" + lb
		if got := execIn(t, c, "grep -c '^[[:space:]]*include "+lab.UpstreamPath+";' /etc/nginx/nginx.conf"); got != "1" {
			t.Errorf("%s: nginx.conf includes %s %s times", lb, lab.UpstreamPath, got)
		}
		want := fmt.Sprintf("upstream dns {\n\tserver %s:53;\n\tserver %s:53;\n}", st["ns1"].Address, st["ns2"].Address)
		if got := execIn(t, c, "grep -v '^#' "+lab.UpstreamPath); got != want {
			t.Errorf("%s: %s:\n%s\nwant:\n%s", lb, lab.UpstreamPath, got, want)
		}
		if got := execIn(t, c, "nginx -t 2>&1"); !strings.Contains(got, "test is successful") {
			t.Errorf("%s: nginx -t: %s", lb, got)
		}
	}
	// Services run under the sysvinit scripts, so plans can manage them.
	if got := execIn(t, testOpts.Prefix+"-lb1", "service nginx reload >/dev/null && service nginx status"); !strings.Contains(got, "running") {
		t.Errorf("nginx status after reload: %q", got)
	}
	if got := execIn(t, testOpts.Prefix+"-ns1", "service named status"); !strings.Contains(got, "running") {
		t.Errorf("named status: %q", got)
	}
	if got := execIn(t, testOpts.Prefix+"-ns1", "dpkg-query -W -f '${Package}\\n' | grep -c '^python' || true"); got != "0" {
		t.Errorf("python packages in the image: %s", got)
	}
}

func runAllowFail(t *testing.T, container, script string) string {
	c, err := dockerconn.Dial(context.Background(), container, dockerconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, _ := c.Exec(context.Background(), script, nil)
	return strings.TrimSpace(string(res.Stdout))
}

// sshRun connects as root with golang.org/x/crypto/ssh, checking the host
// key strictly against known_hosts, and runs cmd.
func sshRun(addr, knownHostsPath, keyPath, cmd string) (string, error) {
	return sshRunAs("root", addr, knownHostsPath, keyPath, cmd, "")
}

// sshRunAs is sshRun as user, with stdin.
func sshRunAs(user, addr, knownHostsPath, keyPath, cmd, stdin string) (string, error) {
	hostKeys, err := knownhosts.New(knownHostsPath)
	if err != nil {
		return "", err
	}
	pem, err := os.ReadFile(keyPath)
	if err != nil {
		return "", err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return "", err
	}
	client, err := ssh.Dial("tcp", net.JoinHostPort(addr, "22"), &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         5 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	sess.Stdin = strings.NewReader(stdin)
	out, err := sess.CombinedOutput(cmd)
	return strings.TrimSpace(string(out)), err
}

func TestSSHStrictHostKeys(t *testing.T) {
	l := needLab(t)
	st := status(t)
	for _, name := range []string{"ns1", "ns2", "lb1", "lb2", "bsd1"} {
		got, err := sshRun(st[name].Address, l.KnownHostsPath(), l.KeyPath(), "hostname")
		if err != nil {
			t.Errorf("ssh %s: %v", name, err)
		} else if got != name {
			t.Errorf("ssh %s: hostname %q", name, got)
		}
	}
	// A known_hosts that pins ns1's address to lb1's key must fail.
	data, err := os.ReadFile(l.KnownHostsPath())
	if err != nil {
		t.Fatal(err)
	}
	var lb1Key string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == st["lb1"].Address {
			lb1Key = f[1] + " " + f[2]
		}
	}
	if lb1Key == "" {
		t.Fatalf("no known_hosts line for lb1 (%s):\n%s", st["lb1"].Address, data)
	}
	bad := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(bad, []byte(st["ns1"].Address+" "+lb1Key+"\n"), 0o644)
	_, err = sshRun(st["ns1"].Address, bad, l.KeyPath(), "true")
	var keyErr *knownhosts.KeyError
	if !errors.As(err, &keyErr) || len(keyErr.Want) == 0 {
		t.Errorf("ssh with a wrong host key: err = %v, want a knownhosts.KeyError", err)
	}
}

func TestMachines(t *testing.T) {
	l := needLab(t)
	m := l.Machines()
	ctx := context.Background()

	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(hostPriv, "")
	hostSigner, _ := ssh.NewSignerFromKey(hostPriv)
	hostPub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostSigner.PublicKey())))
	userData := fmt.Sprintf(`#cloud-config
write_files:
  - path: /etc/orch-test/hello.txt
    content: |
      hello from cloud-init
    permissions: '0640'
  - path: /etc/orch-test/b64
    encoding: b64
    content: aGVsbG8=
runcmd:
  - echo ran > /etc/orch-test/runcmd
  - [sh, -c, "echo $((1+2)) > /etc/orch-test/argv"]
ssh_keys:
  ed25519_private: |
%s
  ed25519_public: %s
packages: [nothing]
`, indent(string(pem.EncodeToMemory(block)), "    "), hostPub)

	name := "vm1"
	a, err := m.Start(ctx, cloud.MachineSpec{Name: name, Image: "linode/debian12", Tags: []string{"web"}, UserData: []byte(userData)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(context.Background(), a.ID) })
	b, err := m.Start(ctx, cloud.MachineSpec{Name: "vm2", Tags: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(context.Background(), b.ID) })
	if _, err := m.Start(ctx, cloud.MachineSpec{Name: "vm2"}); err == nil {
		t.Error("a second machine named vm2 started")
	}

	container := a.ID // the container name changes with Rename; its ID does not
	got := execIn(t, container, `cat /etc/orch-test/hello.txt; stat -c %a /etc/orch-test/hello.txt; cat /etc/orch-test/b64 /etc/orch-test/runcmd /etc/orch-test/argv; grep -c 'ignored: packages' /var/log/cloud-init-output.log`)
	if want := "hello from cloud-init\n640\nhelloran\n3\n1"; got != want {
		t.Errorf("cloud-init applied:\n%s\nwant:\n%s", got, want)
	}
	if got := execIn(t, container, "cat /etc/ssh/ssh_host_*_key.pub"); !strings.HasPrefix(got, hostPub) {
		t.Errorf("host key %q, want the injected %q", got, hostPub)
	}
	// The lab recorded the injected key: strict checking passes.
	if got, err := sshRun(a.Address, l.KnownHostsPath(), l.KeyPath(), "hostname"); err != nil || got != name {
		t.Errorf("ssh %s: %q %v", name, got, err)
	}
	if st := status(t); st[name].Address != a.Address || !slices.Equal(st[name].Groups, []string{"web"}) {
		t.Errorf("status of %s: %+v", name, st[name])
	}

	// Rename keeps the machine (same ID, same address) under a new name.
	if err := m.Rename(ctx, a.ID, "vm1-renamed"); err != nil {
		t.Fatal(err)
	}
	st := status(t)
	if _, ok := st[name]; ok || st["vm1-renamed"].Address != a.Address {
		t.Errorf("after rename: %v", st)
	}
	if got, err := sshRun(a.Address, l.KnownHostsPath(), l.KeyPath(), "hostname; cat /etc/hostname; grep -c vm1-renamed /etc/hosts"); err != nil || got != "vm1-renamed\nvm1-renamed\n1" {
		t.Errorf("hostname after rename: %q %v", got, err)
	}

	// A reserved IP follows AssignIP, and strict host key checking follows it.
	ips := m.ReservedIPs()
	if len(ips) == 0 {
		t.Fatal("no reserved IPs")
	}
	for _, ip := range ips {
		if addr, _ := netip.ParseAddr(ip); !l.Subnet().Contains(addr) {
			t.Errorf("reserved IP %s outside %s", ip, l.Subnet())
		}
	}
	ip := ips[0]
	for _, step := range []struct{ id, want string }{{a.ID, "vm1-renamed"}, {b.ID, "vm2"}, {a.ID, "vm1-renamed"}} {
		if err := m.AssignIP(ctx, ip, step.id); err != nil {
			t.Fatal(err)
		}
		var got string
		var err error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if got, err = sshRun(ip, l.KnownHostsPath(), l.KeyPath(), "hostname"); err == nil && got == step.want {
				break
			}
		}
		if got != step.want {
			t.Errorf("%s after assigning it to %s: hostname %q, %v", ip, step.want, got, err)
		}
	}
	// A machine keeps its address, its name and its reserved IP across a
	// restart of its container. Docker restores the kernel hostname it was
	// created with; the next Up mends that.
	docker(t, "restart", "-t", "1", a.ID)
	if got := waitSSH(t, l, a.Address, "cat /etc/hostname", "vm1-renamed"); got != "vm1-renamed" {
		t.Errorf("vm1 after a restart, at its address: %q", got)
	}
	if got := waitSSH(t, l, ip, "cat /etc/hostname", "vm1-renamed"); got != "vm1-renamed" {
		t.Errorf("%s after vm1 restarted: %q", ip, got)
	}
	if _, err := lab.Up(ctx, testOpts); err != nil {
		t.Fatal(err)
	}
	if got, err := sshRun(a.Address, l.KnownHostsPath(), l.KeyPath(), "hostname; sudo -n true"); err != nil || got != "vm1-renamed" {
		t.Errorf("vm1's hostname after Up: %q %v", got, err)
	}
	// One that held it while stopped does not take it back when it starts.
	if err := m.AssignIP(ctx, ip, b.ID); err != nil {
		t.Fatal(err)
	}
	docker(t, "stop", "-t", "1", b.ID)
	if err := m.AssignIP(ctx, ip, a.ID); err != nil {
		t.Fatal(err)
	}
	docker(t, "start", b.ID)
	if got := waitSSH(t, l, b.Address, "hostname", "vm2"); got != "vm2" {
		t.Errorf("vm2 after a restart: %q", got)
	}
	if got := execIn(t, b.ID, "ip -o addr show dev eth0 | grep -c ' "+ip+"/' || true"); got != "0" {
		t.Errorf("vm2 took %s back when it started", ip)
	}
	if got := waitSSH(t, l, ip, "hostname", "vm1-renamed"); got != "vm1-renamed" {
		t.Errorf("%s after vm2 restarted: %q", ip, got)
	}

	if err := m.AssignIP(ctx, ip, ""); err != nil {
		t.Fatal(err)
	}
	if got := execIn(t, container, "ip -o addr show dev eth0 | grep -c ' "+ip+"/' || true"); got != "0" {
		t.Errorf("%s still on vm1 after unassign", ip)
	}
	if err := m.AssignIP(ctx, "192.0.2.1", a.ID); err == nil {
		t.Error("assigned an address that is not reserved")
	}

	// Remove takes the machine, its known_hosts entry and its name away.
	if err := m.Remove(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, b.ID); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if _, ok := status(t)["vm2"]; ok {
		t.Error("vm2 still listed after Remove")
	}
	kh, _ := os.ReadFile(l.KnownHostsPath())
	if bytes.Contains(kh, []byte(b.Address+" ")) {
		t.Errorf("known_hosts still has removed vm2 (%s)", b.Address)
	}
}

func docker(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// waitSSH runs cmd on addr over SSH (strict host keys) until it prints
// want, for a machine that is booting or an address that moves.
func waitSSH(t *testing.T, l *lab.Lab, addr, cmd, want string) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var err error
		if got, err = sshRun(addr, l.KnownHostsPath(), l.KeyPath(), cmd); err == nil && got == want {
			break
		}
	}
	return got
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

// TestCloudCreatesMachines goes through the lab cloud's Linode API, as the
// linode module will: an instance created there is a lab machine.
func TestCloudCreatesMachines(t *testing.T) {
	l := needLab(t)
	env := l.Env()
	call := func(method, path string, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, env["LINODE_URL"]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+env["LINODE_TOKEN"])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
		var out map[string]any
		json.Unmarshal(data, &out)
		return out
	}
	created := call("POST", "/v4/linode/instances", `{"label":"cloud1","region":"us-east","type":"g6-nanode-1","image":"linode/debian12","root_pass":"Secret-123-pass","tags":["dns"]}`)
	id := fmt.Sprint(created["id"])
	var inst map[string]any
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if inst = call("GET", "/v4/linode/instances/"+id, ""); inst["status"] == "running" {
			break
		}
	}
	if inst["status"] != "running" {
		t.Fatalf("instance never ran: %v", inst)
	}
	st := status(t)
	if h, ok := st["cloud1"]; !ok || !slices.Equal(h.Groups, []string{"dns"}) {
		t.Errorf("cloud1 in status: %+v (%v)", h, ok)
	}
	if got, err := sshRun(st["cloud1"].Address, l.KnownHostsPath(), l.KeyPath(), "hostname"); err != nil || got != "cloud1" {
		t.Errorf("ssh cloud1: %q %v", got, err)
	}
	call("DELETE", "/v4/linode/instances/"+id, "")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if _, ok := status(t)["cloud1"]; !ok {
			return
		}
	}
	t.Error("cloud1 still in the lab after DELETE")
}

// TestUpRepairs runs last: it breaks the lab and lets Up mend it. The
// cloud's state survives the kill of its process.
func TestUpRepairs(t *testing.T) {
	l := needLab(t)
	env := l.Env()
	c := linodeClient(t, l)
	before := dnsInstances(t, c)
	var cp struct{ PID int }
	data, err := os.ReadFile(filepath.Join(l.Dir(), "cloud.json"))
	if err != nil || json.Unmarshal(data, &cp) != nil || cp.PID == 0 {
		t.Fatalf("cloud.json: %s %v", data, err)
	}
	if err := syscall.Kill(cp.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("docker", "stop", "-t", "1", testOpts.Prefix+"-lb2").CombinedOutput(); err != nil {
		t.Fatalf("docker stop: %v %s", err, out)
	}
	if st := status(t); st["lb2"].Address != "" {
		t.Errorf("a stopped lb2 has address %q", st["lb2"].Address)
	}
	l2, err := lab.Up(context.Background(), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(l2.Env(), env) {
		t.Errorf("the restarted cloud has another endpoint: %v, was %v", l2.Env(), env)
	}
	after := dnsInstances(t, c)
	if len(after) != len(before) || len(after) == 0 {
		t.Fatalf("instances before the kill: %+v, after: %+v", before, after)
	}
	for i := range after {
		b, a := before[i], after[i]
		if a.ID != b.ID || a.Label != b.Label || a.Status != b.Status || a.IPv4[0].String() != b.IPv4[0].String() {
			t.Errorf("instance before the kill: %+v, after: %+v", b, a)
		}
	}
	req, _ := http.NewRequest("GET", env["LINODE_URL"]+"/v4/linode/instances", nil)
	req.Header.Set("Authorization", "Bearer "+env["LINODE_TOKEN"])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("cloud after up: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	st := status(t)
	script := fmt.Sprintf("dig +short +time=1 +tries=1 @%s %s A", st["lb2"].Address, lab.ProbeName)
	var got string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = runAllowFail(t, testOpts.Prefix+"-ns1", script); got == lab.ProbeValue {
			break
		}
	}
	if got != lab.ProbeValue {
		t.Errorf("DNS through the restarted lb2: %q", got)
	}
}
