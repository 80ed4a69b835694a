// Package dockerconn reaches a container through the Docker Engine API, for
// the `docker` connection: lab hosts and other local containers.
//
// It speaks the API's exec endpoints over the engine's unix socket with
// net/http instead of spawning `docker exec` for every script: one exec is
// three small HTTP requests (create, start with a hijacked stream, inspect)
// and no process on the controller, which makes it several times faster than
// the CLI and free of its quoting rules. Each Exec and each WriteFile is one
// exchange.
//
// The engine is found at Options.Host, else unix:///var/run/docker.sock;
// the package reads no environment (cmd/orch passes $DOCKER_HOST on), and
// docker CLI contexts are not read.
package dockerconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/internal/shell"
)

// DefaultHost is the engine address used when Options.Host names none.
const DefaultHost = "unix:///var/run/docker.sock"

// Options tune a connection. The zero value is ready to use.
type Options struct {
	Host          string // engine address, unix:///path or tcp://host:port
	User          string // user to run scripts as; "" means the container's default
	Privileged    bool   // run scripts with extended privileges (as docker exec --privileged)
	MaxConcurrent int    // scripts running at once; 0 means 10, like sshd's MaxSessions
}

// Conn is a connection to one container. It is safe for concurrent use.
type Conn struct {
	container string
	opts      Options
	client    *http.Client
	dial      func(ctx context.Context) (net.Conn, error)
	sem       chan struct{}
	exchanges atomic.Int64
	closed    atomic.Bool
	closeOnce sync.Once
}

var _ conn.Conn = (*Conn)(nil)

// maxArg bounds a script passed as an argument; Linux refuses a single
// argument over 128 KiB, so longer scripts travel as a file.
const maxArg = 100 << 10

// Dial connects to the engine and checks that container (a name or an ID)
// exists and is running. The error names the container: a malformed
// Options.Host, an engine that cannot be reached, or a container that is
// missing or stopped.
func Dial(ctx context.Context, container string, opts Options) (*Conn, error) {
	host := opts.Host
	if host == "" {
		host = DefaultHost
	}
	dial, err := dialer(host)
	if err != nil {
		return nil, fmt.Errorf("docker %s: %w", container, err)
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 10
	}
	c := &Conn{
		container: container,
		opts:      opts,
		dial:      dial,
		sem:       make(chan struct{}, opts.MaxConcurrent),
		client: &http.Client{Transport: &http.Transport{
			DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
			MaxIdleConnsPerHost: opts.MaxConcurrent,
			IdleConnTimeout:     30 * time.Second,
		}},
	}
	var info struct {
		State struct{ Running bool }
	}
	if err := c.call(ctx, http.MethodGet, "/containers/"+url.PathEscape(container)+"/json", nil, &info); err != nil {
		c.Close()
		return nil, fmt.Errorf("docker %s: %w", container, err)
	}
	if !info.State.Running {
		c.Close()
		return nil, fmt.Errorf("docker %s: container is not running", container)
	}
	return c, nil
}

func dialer(host string) (func(ctx context.Context) (net.Conn, error), error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("bad docker host %q: %v", host, err)
	}
	var d net.Dialer
	switch u.Scheme {
	case "unix":
		return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "unix", u.Path) }, nil
	case "tcp", "http":
		return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", u.Host) }, nil
	}
	return nil, fmt.Errorf("docker host %q: only unix:// and tcp:// (without TLS) are supported", host)
}

// Container is the name or ID the connection was opened with.
func (c *Conn) Container() string { return c.container }

// Exchanges returns the number of Exec and WriteFile calls made so far.
func (c *Conn) Exchanges() int64 { return c.exchanges.Load() }

// Close releases the connection's idle sockets. Running scripts are not
// interrupted; later calls fail.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.client.CloseIdleConnections()
	})
	return nil
}

// Exec runs script with /bin/sh -c in the container, feeding it stdin. The
// exit status of a script killed by a signal is reported as the shell does,
// 128+signal. Cancelling ctx sends SIGTERM to the script's process group.
func (c *Conn) Exec(ctx context.Context, script string, stdin io.Reader) (conn.Result, error) {
	if c.closed.Load() {
		return conn.Result{}, fmt.Errorf("docker %s: connection closed", c.container)
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return conn.Result{}, fmt.Errorf("docker %s: %w", c.container, ctx.Err())
	}
	c.exchanges.Add(1)
	res, err := c.exec(ctx, script, stdin)
	if err != nil {
		return res, fmt.Errorf("docker %s: %w", c.container, err)
	}
	return res, nil
}

// WriteFile replaces path with data: it writes a temp file in the same
// directory, sets its mode and renames it over path, so readers never see a
// partial file.
func (c *Conn) WriteFile(ctx context.Context, path string, data []byte, mode uint32) error {
	script := fmt.Sprintf(`set -e
f=%s
t=$(mktemp "$(dirname -- "$f")/.orch-tmp.XXXXXX")
trap 'rm -f "$t"' EXIT
cat > "$t"
chmod %04o "$t"
mv -f "$t" "$f"
trap - EXIT
`, shell.Quote(path), mode&0o7777)
	res, err := c.Exec(ctx, script, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("docker %s: write %s: %s", c.container, path, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

func (c *Conn) exec(ctx context.Context, script string, stdin io.Reader) (conn.Result, error) {
	// Without a caller's stdin, the script travels on stdin rather than as
	// an argument, which anyone listing processes could read (it may carry
	// a secret file's content); a { } group makes sh parse all of it first.
	run := `/bin/sh -c "$1"`
	hold := stdin == nil // the script travels on stdin, which stays open until it exits
	if hold {
		run, stdin = "/bin/sh", strings.NewReader(conn.GroupScript(script))
		script = ""
	} else if len(script) > maxArg {
		return c.execLong(ctx, script, stdin)
	}
	// The wrapper records the script's process group leader so that a
	// cancelled Exec can end it: the API has no call that kills an exec.
	token := randomToken()
	pidFile := "/tmp/.orch-exec-" + token
	wrapper := `{ echo $$ > ` + pidFile + `; } 2>/dev/null
` + run + `
rc=$?
rm -f ` + pidFile + `
exit $rc`
	create := map[string]any{
		"AttachStdin":  true,
		"AttachStdout": true,
		"AttachStderr": true,
		"Tty":          false,
		"Cmd":          []string{"/bin/sh", "-c", wrapper, "sh", script},
		"User":         c.opts.User,
		"Privileged":   c.opts.Privileged,
	}
	var created struct{ Id string }
	if err := c.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(c.container)+"/exec", create, &created); err != nil {
		return conn.Result{}, err
	}
	var stdout, stderr bytes.Buffer
	if err := c.startExec(ctx, created.Id, stdin, hold, &stdout, &stderr); err != nil {
		if ctx.Err() != nil {
			c.kill(pidFile)
			return conn.Result{}, ctx.Err()
		}
		return conn.Result{}, err
	}
	code, err := c.exitCode(ctx, created.Id)
	if err != nil {
		return conn.Result{}, err
	}
	return conn.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code}, nil
}

// execLong runs a script too long for an argument by writing it to a temp
// file first. It costs one more exchange.
func (c *Conn) execLong(ctx context.Context, script string, stdin io.Reader) (conn.Result, error) {
	path := "/tmp/.orch-script-" + randomToken()
	c.exchanges.Add(1)
	if err := c.writeTemp(ctx, path, []byte(script)); err != nil {
		return conn.Result{}, err
	}
	return c.exec(ctx, fmt.Sprintf("/bin/sh %s; rc=$?; rm -f %s; exit $rc", path, path), stdin)
}

// writeTemp writes a private temp file without counting an exchange; the
// caller counts it.
func (c *Conn) writeTemp(ctx context.Context, path string, data []byte) error {
	res, err := c.exec(ctx, "umask 077; cat > "+shell.Quote(path), bytes.NewReader(data))
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("write %s: %s", path, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// kill ends a cancelled script's process group, best effort: the context is
// already done, so it gets a short one of its own.
func (c *Conn) kill(pidFile string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	script := fmt.Sprintf(`p=$(cat %s 2>/dev/null) && kill -TERM "-$p" 2>/dev/null; rm -f %s`, pidFile, pidFile)
	create := map[string]any{"AttachStdout": true, "AttachStderr": true, "Cmd": []string{"/bin/sh", "-c", script},
		"User": c.opts.User, "Privileged": c.opts.Privileged}
	var created struct{ Id string }
	if c.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(c.container)+"/exec", create, &created) == nil {
		c.startExec(ctx, created.Id, nil, false, io.Discard, io.Discard)
	}
}

// startExec starts an exec instance and streams its output. The engine
// switches the HTTP connection to a raw stream; stdout and stderr arrive
// multiplexed in frames with an 8-byte header (stream, 0, 0, 0, size).
// With hold, stdin stays open after its content, until the exec ends.
func (c *Conn) startExec(ctx context.Context, id string, stdin io.Reader, hold bool, stdout, stderr io.Writer) error {
	raw, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	body := []byte(`{"Detach":false,"Tty":false}`)
	req, err := http.NewRequest(http.MethodPost, "http://docker/exec/"+id+"/start", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "tcp")
	if err := req.Write(raw); err != nil {
		return err
	}
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return apiError(resp.StatusCode, msg)
	}

	copyErr := make(chan error, 1)
	if stdin != nil {
		go func() {
			_, err := io.Copy(raw, stdin)
			// Half-close: the engine then closes the script's stdin.
			if cw, ok := raw.(interface{ CloseWrite() error }); ok && !hold {
				cw.CloseWrite()
			}
			copyErr <- err
		}()
	}
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		w := stdout
		if hdr[0] == 2 {
			w = stderr
		}
		if _, err := io.CopyN(w, br, int64(binary.BigEndian.Uint32(hdr[4:]))); err != nil {
			return err
		}
	}
	if stdin != nil {
		// The script may exit without reading all its input; that is its
		// business, so a broken pipe here is not an error.
		select {
		case <-copyErr:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// exitCode waits for the engine to record the exec's exit status, which can
// lag a moment behind the end of its output stream.
func (c *Conn) exitCode(ctx context.Context, id string) (int, error) {
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		var info struct {
			Running  bool
			ExitCode *int
		}
		if err := c.call(ctx, http.MethodGet, "/exec/"+id+"/json", nil, &info); err != nil {
			return 0, err
		}
		if !info.Running && info.ExitCode != nil {
			return *info.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// call makes one JSON request to the engine and decodes the answer into out.
func (c *Conn) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("docker engine: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp.StatusCode, data)
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// ErrNotFound reports that the engine does not know the container.
var ErrNotFound = errors.New("no such container")

func apiError(status int, body []byte) error {
	var m struct{ Message string }
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &m) == nil && m.Message != "" {
		msg = m.Message
	}
	if status == http.StatusNotFound {
		return fmt.Errorf("%s: %w", msg, ErrNotFound)
	}
	return fmt.Errorf("docker engine: %s (HTTP %d)", msg, status)
}

func randomToken() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
