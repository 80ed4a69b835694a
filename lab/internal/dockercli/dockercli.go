// Package dockercli runs the docker command-line client for the lab's
// infrequent, coarse operations: building and importing images, creating
// networks and containers, copying seed files in. Commands inside running
// containers go through engine/conn/dockerconn instead.
package dockercli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Host is the engine the docker command talks to, $DOCKER_HOST (as docker
// reads it; "" for its default socket), so that the lab's Engine API calls
// (dockerconn) reach the same engine as its docker commands.
func Host() string { return os.Getenv("DOCKER_HOST") }

// ErrNoSuchObject reports that docker does not know the container, network or
// image a command named.
var ErrNoSuchObject = errors.New("no such docker object")

// Run runs docker with args, feeding it stdin (may be nil), and returns its
// trimmed standard output. A failure carries docker's own error text.
func Run(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("docker %s: %w", verb(args), ctx.Err())
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		if isNotFound(msg) {
			return "", fmt.Errorf("docker %s: %s: %w", verb(args), msg, ErrNoSuchObject)
		}
		return "", fmt.Errorf("docker %s: %s", verb(args), msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Available reports why docker cannot be used here, or nil when an engine
// answers.
func Available(ctx context.Context) error {
	if _, err := exec.LookPath("docker"); err != nil {
		return errors.New("the docker client is not installed")
	}
	if _, err := Run(ctx, nil, "info", "--format", "{{.ServerVersion}}"); err != nil {
		return fmt.Errorf("no docker engine answers: %v", err)
	}
	return nil
}

func isNotFound(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "no such") || strings.Contains(m, "not found")
}

// verb names the command in errors: "network create", "image inspect", "run".
func verb(args []string) string {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(words) == 2 {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}
