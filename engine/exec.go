package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/orch-dev/orch/engine/conn"
	"github.com/orch-dev/orch/internal/shell"
	"github.com/orch-dev/orch/inventory"
)

// exec runs a script on the host as id, within the run's per-exchange
// timeout, and splits its output into sections.
func (hr *hostRun) exec(ctx context.Context, sc *script, id identity) (map[sectionID]*section, error) {
	res, err := hr.r.execAs(ctx, hr.host, id, sc.take())
	if err != nil {
		return nil, err
	}
	sections, err := sc.parse(res.Stdout)
	if err == nil && len(sections) == 0 && res.ExitCode != 0 {
		if id.user != "" {
			return nil, becomeError(id, res)
		}
		err = fmt.Errorf("the script did not start")
	}
	if err != nil {
		return nil, fmt.Errorf("%w (exit %d: %s)", err, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return sections, nil
}

// execAs runs a script on a host as id, bounded by --timeout.
func (r *run) execAs(ctx context.Context, h *inventory.Host, id identity, script string) (conn.Result, error) {
	if r.opts.ExecTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.opts.ExecTimeout,
			fmt.Errorf("an exchange with %s took longer than --timeout %s; its processes were ended", h.Name, r.opts.ExecTimeout))
		defer cancel()
	}
	if id.user != "" {
		wrapped, err := becomeScript(id, script, r.opts.BecomePassword, "orch-"+nonce())
		if err != nil {
			return conn.Result{}, fmt.Errorf("%s: %w", h.Name, err)
		}
		script = wrapped
	}
	res, err := r.pool.exec(ctx, h, script)
	if err != nil && context.Cause(ctx) != nil && ctx.Err() != nil {
		return res, context.Cause(ctx)
	}
	return res, err
}

// uploadPath is where a task's upload lands: beside its target, or under
// become, in a private file of the login user that the apply copies.
func (hr *hostRun) uploadPath(it *item) string {
	switch {
	case it.as.user == "":
		return it.resp.Upload.Path
	case it.uploadTo == "":
		it.uploadTo = path.Join("/tmp", ".orch-upload-"+nonce())
	}
	return it.uploadTo
}

func (hr *hostRun) upload(ctx context.Context, it *item) error {
	c, err := hr.r.pool.get(ctx, hr.host)
	if err != nil {
		return err
	}
	up := it.resp.Upload
	mode := up.Mode
	if it.as.user != "" {
		mode = 0o600 // the login user's until the apply copies it into place
	}
	to := hr.uploadPath(it)
	err = c.WriteFile(ctx, to, up.Data, mode)
	if err != nil && strings.Contains(err.Error(), "SSH_FX_FAILURE") {
		err = hr.explainUpload(ctx, c, to, len(up.Data), err)
	}
	return err
}

// explainUpload says why an SFTP write failed where the protocol cannot:
// OpenSSH's sftp-server reports a full disk as a plain "Failure". One more
// exchange reads the free space of the target's file system.
func (hr *hostRun) explainUpload(ctx context.Context, c conn.Conn, to string, size int, err error) error {
	res, derr := c.Exec(ctx, "df -Pk -- "+shell.Quote(path.Dir(to))+" | tail -n 1", nil)
	fields := strings.Fields(string(res.Stdout))
	if derr != nil || res.ExitCode != 0 || len(fields) < 4 {
		return fmt.Errorf("%w (SFTP gives no reason: the file system may be full, read-only or out of inodes)", err)
	}
	free, perr := strconv.ParseInt(fields[3], 10, 64)
	if perr == nil && free*1024 < int64(size) {
		return fmt.Errorf("no space left on device: %s has %d KiB free and the file is %d KiB (%w)", path.Dir(to), free, (size+1023)/1024, err)
	}
	return fmt.Errorf("%w (SFTP gives no reason; %s has %s KiB free: it may be read-only or out of inodes)", err, path.Dir(to), fields[3])
}

func nonce() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
