package client

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/shim/api"
)

// maxSocketPath is the longest unix socket path (sun_path, 108 bytes with
// its terminating NUL).
const maxSocketPath = 107

// Socket is the unix socket path of the shim Launch starts for bundle.
func Socket(bundle string) string { return filepath.Join(bundle, api.SocketFile) }

// validate checks o for Launch and Cleanup.
func (o Options) validate() error {
	if o.Binary == "" {
		return fmt.Errorf("shim: no condenser-shim binary: %w", errdefs.ErrInvalidArgument)
	}
	if err := names.ValidID(o.ID); err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	switch {
	case !filepath.IsAbs(o.Bundle):
		return fmt.Errorf("shim: bundle %q is not an absolute path: %w", o.Bundle, errdefs.ErrInvalidArgument)
	case o.Runtime == "" || o.RuntimeRoot == "":
		return fmt.Errorf("shim: no runtime or runtime root: %w", errdefs.ErrInvalidArgument)
	case len(Socket(o.Bundle)) > maxSocketPath:
		return fmt.Errorf("shim: socket path %q is longer than %d bytes: %w", Socket(o.Bundle), maxSocketPath, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (o Options) args(cmd string) []string {
	return []string{cmd, "--id", o.ID, "--bundle", o.Bundle, "--runtime", o.Runtime, "--runtime-root", o.RuntimeRoot}
}

// Launch starts a shim for the container of o (the daemon's side of the
// two-phase start): it runs `o.Binary start`, which starts the detached shim
// server on bundle/shim.sock and returns once it serves, and returns the
// address to Dial. The bundle directory must exist.
func Launch(ctx context.Context, o Options) (address string, err error) {
	if err := o.validate(); err != nil {
		return "", err
	}
	out, err := run(ctx, o, append(o.args("start"), "--socket", Socket(o.Bundle)))
	if err != nil {
		return "", fmt.Errorf("start shim for %s: %w", o.ID, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Cleanup cleans up after the container of o when its shim is gone or must
// go: it runs `o.Binary delete`, which kills a shim still serving the bundle
// (waiting first for a launch still going on), force-deletes the runtime's
// container, unmounts its root filesystem, kills what is left in its cgroup
// and removes its runtime state, socket and pid file; the bundle's
// config.json, exit.json and logs stay. It returns the container's exit
// status, or nil when none is known (the shim died before the container
// exited). Cleaning up a container with nothing left is no error: Cleanup
// may be run again.
func Cleanup(ctx context.Context, o Options) (*Exit, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	out, err := run(ctx, o, o.args("delete"))
	if err != nil {
		return nil, fmt.Errorf("clean up container %s: %w", o.ID, err)
	}
	e, err := api.ParseDeleteOutput(out)
	if err != nil || e == nil {
		return nil, err
	}
	return &Exit{Pid: e.Pid, ExitCode: e.ExitCode, ExitedAt: e.ExitedAt, OOMKilled: e.OOMKilled}, nil
}

// run runs the shim binary with args and returns its stdout; a failure
// carries its stderr.
func run(ctx context.Context, o Options, args []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, o.Binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = cleanEnv()
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			return nil, fmt.Errorf("%s %s: %w", filepath.Base(o.Binary), args[0], err)
		}
		return nil, fmt.Errorf("%s %s: %w: %s", filepath.Base(o.Binary), args[0], err, msg)
	}
	return out.Bytes(), nil
}

// cleanEnv is this process's environment without what systemd hands to a
// service (NOTIFY_SOCKET, LISTEN_*): a shim must not inherit it.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "LISTEN_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
