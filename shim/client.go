package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/runtime"
)

// The old client API, from before the split along the process boundary.
// The supervisor still uses it; it goes once the supervisor uses
// shim/client (Launch, Dial, Cleanup) and shim/api (ReadExit, ExitFile,
// PidFile) instead.

// ExitFile is api.ExitFile.
//
// Deprecated: removed once the supervisor uses shim/client.
const ExitFile = api.ExitFile

// PidFile is api.PidFile.
//
// Deprecated: removed once the supervisor uses shim/client.
const PidFile = api.PidFile

// Exit is api.Exit, the content of exit.json.
//
// Deprecated: removed once the supervisor uses shim/client.
type Exit = api.Exit

// ReadExit is api.ReadExit.
//
// Deprecated: removed once the supervisor uses shim/client.
func ReadExit(bundle string) (Exit, error) { return api.ReadExit(bundle) }

// Launch runs `binary start …` (the supervisor's side of the two-phase
// start) and returns the socket address the shim serves on, once it does.
//
// Deprecated: removed once the supervisor uses shim/client.
func Launch(ctx context.Context, binary string, o Options) (string, error) {
	if err := o.validate(); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, binary, append([]string{"start"}, o.args()...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = runtime.CleanEnv()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("start shim for %s: %v: %s", o.ID, err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Client talks to one shim. Its errors wrap errdefs kinds.
//
// Deprecated: removed once the supervisor uses shim/client.
type Client struct {
	c    *ttrpc.Client
	api  api.ShimService
	done chan struct{}
}

// Dial connects to a shim's address ("unix:///path" or a path).
//
// Deprecated: removed once the supervisor uses shim/client.
func Dial(ctx context.Context, address string) (*Client, error) {
	path := strings.TrimPrefix(address, "unix://")
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("dial shim %s: %w: %w", path, errdefs.ErrUnavailable, err)
	}
	done := make(chan struct{})
	var once sync.Once
	c := ttrpc.NewClient(conn, ttrpc.WithOnClose(func() { once.Do(func() { close(done) }) }))
	return &Client{c: c, api: api.NewShimClient(c), done: done}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// Done is closed when the connection to the shim is lost.
func (c *Client) Done() <-chan struct{} { return c.done }

func (c *Client) Create(ctx context.Context, req *api.CreateRequest) (int, error) {
	r, err := c.api.Create(ctx, req)
	if err != nil {
		return 0, api.FromStatus(err)
	}
	return int(r.Pid), nil
}

func (c *Client) Start(ctx context.Context) (int, error) {
	r, err := c.api.Start(ctx, &api.StartRequest{})
	if err != nil {
		return 0, api.FromStatus(err)
	}
	return int(r.Pid), nil
}

func (c *Client) State(ctx context.Context) (*api.StateResponse, error) {
	r, err := c.api.State(ctx, &api.StateRequest{})
	return r, api.FromStatus(err)
}

func (c *Client) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	_, err := c.api.Kill(ctx, &api.KillRequest{Signal: uint32(sig), All: all})
	return api.FromStatus(err)
}

// Wait blocks until the container exits.
func (c *Client) Wait(ctx context.Context) (Exit, error) {
	r, err := c.api.Wait(ctx, &api.WaitRequest{})
	if err != nil {
		return Exit{}, api.FromStatus(err)
	}
	return Exit{ExitCode: int(r.ExitCode), ExitedAt: r.ExitedAt.AsTime(), OOMKilled: r.OomKilled}, nil
}

func (c *Client) Delete(ctx context.Context) (Exit, error) {
	r, err := c.api.Delete(ctx, &api.DeleteRequest{})
	if err != nil {
		return Exit{}, api.FromStatus(err)
	}
	return Exit{Pid: int(r.Pid), ExitCode: int(r.ExitCode), ExitedAt: r.ExitedAt.AsTime()}, nil
}

func (c *Client) Stats(ctx context.Context) (*api.StatsResponse, error) {
	r, err := c.api.Stats(ctx, &api.StatsRequest{})
	return r, api.FromStatus(err)
}

func (c *Client) Pids(ctx context.Context) ([]int, error) {
	r, err := c.api.Pids(ctx, &api.PidsRequest{})
	if err != nil {
		return nil, api.FromStatus(err)
	}
	out := make([]int, len(r.Pids))
	for i, p := range r.Pids {
		out[i] = int(p)
	}
	return out, nil
}

func (c *Client) Connect(ctx context.Context) (*api.ConnectResponse, error) {
	r, err := c.api.Connect(ctx, &api.ConnectRequest{})
	return r, api.FromStatus(err)
}

// Shutdown asks the shim to exit (now: even though the container was not
// deleted) and waits, up to a few seconds, for it to close the connection.
func (c *Client) Shutdown(ctx context.Context, now bool) error {
	// The shim may close the connection before its answer arrives: that
	// is the shutdown succeeding.
	if _, err := c.api.Shutdown(ctx, &api.ShutdownRequest{Now: now}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		return api.FromStatus(err)
	}
	select {
	case <-c.Done():
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
	}
	return nil
}
