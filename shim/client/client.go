package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/shim/api"
)

// Client talks to one shim over its ttrpc socket. Its errors wrap the
// errdefs kinds of the shim's errors (api.FromStatus); a lost connection is
// errdefs.ErrUnavailable.
type Client struct {
	c    *ttrpc.Client
	api  api.ShimService
	done chan struct{}
}

// Dial connects to a shim's address ("unix:///path" or a path), as Launch
// returns it.
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

// Close closes the connection; the shim goes on.
func (c *Client) Close() error { return c.c.Close() }

// Done is closed when the connection to the shim is lost (or closed).
func (c *Client) Done() <-chan struct{} { return c.done }

// Connect tells who the shim is.
func (c *Client) Connect(ctx context.Context) (Info, error) {
	r, err := c.api.Connect(ctx, &api.ConnectRequest{})
	if err != nil {
		return Info{}, api.FromStatus(err)
	}
	return Info{ShimPid: int(r.ShimPid), TaskPid: int(r.TaskPid), Version: r.Version}, nil
}

// Create creates the container (not started) and returns its init's pid.
func (c *Client) Create(ctx context.Context, o CreateOptions) (int, error) {
	req := &api.CreateRequest{Log: &api.LogOptions{Path: o.LogPath, MaxSize: o.LogMaxSize, MaxFiles: int32(o.LogMaxFiles)},
		Terminal: o.Terminal, Stdin: o.Stdin}
	for _, m := range o.Rootfs {
		req.Rootfs = append(req.Rootfs, &api.Mount{Type: m.Type, Source: m.Source, Options: m.Options})
	}
	r, err := c.api.Create(ctx, req)
	if err != nil {
		return 0, api.FromStatus(err)
	}
	return int(r.Pid), nil
}

// Start starts the created container and returns its init's pid.
func (c *Client) Start(ctx context.Context) (int, error) {
	r, err := c.api.Start(ctx, &api.StartRequest{})
	if err != nil {
		return 0, api.FromStatus(err)
	}
	return int(r.Pid), nil
}

// statuses maps the API's statuses to the client's.
var statuses = map[api.Status]Status{
	api.Status_UNKNOWN: StatusUnknown,
	api.Status_CREATED: StatusCreated,
	api.Status_RUNNING: StatusRunning,
	api.Status_STOPPED: StatusStopped,
}

// State tells the container's status, and its exit once it is stopped.
func (c *Client) State(ctx context.Context) (State, error) {
	r, err := c.api.State(ctx, &api.StateRequest{})
	if err != nil {
		return State{}, api.FromStatus(err)
	}
	st, ok := statuses[r.Status]
	if !ok {
		st = StatusUnknown
	}
	s := State{Status: st, Pid: int(r.Pid)}
	if st == StatusStopped {
		s.Exit = Exit{Pid: int(r.Pid), ExitCode: int(r.ExitCode), ExitedAt: r.ExitedAt.AsTime(), OOMKilled: r.OomKilled}
	}
	return s, nil
}

// Kill signals the container's init, or all its processes.
func (c *Client) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	_, err := c.api.Kill(ctx, &api.KillRequest{Signal: uint32(sig), All: all})
	return api.FromStatus(err)
}

// Wait blocks until the container has exited and returns its exit status
// (Pid is not set); it is in the bundle's exit.json by then.
func (c *Client) Wait(ctx context.Context) (Exit, error) {
	r, err := c.api.Wait(ctx, &api.WaitRequest{})
	if err != nil {
		return Exit{}, api.FromStatus(err)
	}
	return Exit{ExitCode: int(r.ExitCode), ExitedAt: r.ExitedAt.AsTime(), OOMKilled: r.OomKilled}, nil
}

// Delete deletes the stopped (or created) container: the runtime's state
// and the root filesystem's mounts. It returns the exit status.
func (c *Client) Delete(ctx context.Context) (Exit, error) {
	r, err := c.api.Delete(ctx, &api.DeleteRequest{})
	if err != nil {
		return Exit{}, api.FromStatus(err)
	}
	return Exit{Pid: int(r.Pid), ExitCode: int(r.ExitCode), ExitedAt: r.ExitedAt.AsTime(), OOMKilled: r.OomKilled}, nil
}

// Stats reads the container's cgroup statistics.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	r, err := c.api.Stats(ctx, &api.StatsRequest{})
	if err != nil {
		return Stats{}, api.FromStatus(err)
	}
	return Stats{
		CPUUsageNanos: r.CpuUsageNanos, MemoryUsage: r.MemoryUsage, MemoryCache: r.MemoryCache,
		MemoryLimit: r.MemoryLimit, MemoryMaxUsage: r.MemoryMaxUsage, PidsCurrent: r.PidsCurrent,
		PidsLimit: r.PidsLimit, BlkioReadBytes: r.BlkioReadBytes, BlkioWriteBytes: r.BlkioWriteBytes, OOMKills: r.OomKills,
	}, nil
}

// Pids lists the processes in the container's cgroup.
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

// Stacks returns every goroutine's stack in the shim: a header line
// counting them, then the dump.
func (c *Client) Stacks(ctx context.Context) (string, error) {
	r, err := c.api.Stacks(ctx, &api.StacksRequest{})
	if err != nil {
		return "", api.FromStatus(err)
	}
	return r.Dump, nil
}

// shutdownWait bounds how long Shutdown waits for the shim to close the
// connection.
const shutdownWait = 3 * time.Second

// Shutdown asks the shim to exit (now: even though the container was not
// deleted) and waits, up to a few seconds, for it to close the connection;
// a shim that does not is an error (ErrUnavailable): clean it up out of band.
func (c *Client) Shutdown(ctx context.Context, now bool) error {
	// The shim may close the connection before its answer arrives: that
	// is the shutdown succeeding.
	if _, err := c.api.Shutdown(ctx, &api.ShutdownRequest{Now: now}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		return api.FromStatus(err)
	}
	t := time.NewTimer(shutdownWait)
	defer t.Stop()
	select {
	case <-c.Done():
		return nil
	case <-t.C:
		return fmt.Errorf("shim still connected %v after it was told to shut down: %w", shutdownWait, errdefs.ErrUnavailable)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exec starts a process in the running container and returns its pid.
func (c *Client) Exec(ctx context.Context, o ExecOptions) (int, error) {
	r, err := c.api.Exec(ctx, &api.ExecRequest{ExecId: o.ID, Process: o.Process, Terminal: o.Terminal, Stdin: o.Stdin, Detach: o.Detach})
	if err != nil {
		return 0, api.FromStatus(err)
	}
	return int(r.Pid), nil
}

// ExecState tells an exec process's state; an unknown id is
// errdefs.ErrNotFound.
func (c *Client) ExecState(ctx context.Context, id string) (ExecProcess, error) {
	r, err := c.api.ExecState(ctx, &api.ExecStateRequest{ExecId: id})
	if err != nil {
		return ExecProcess{}, api.FromStatus(err)
	}
	return execProcess(r), nil
}

// ListExecs lists the exec processes the shim knows, oldest first.
func (c *Client) ListExecs(ctx context.Context) ([]ExecProcess, error) {
	r, err := c.api.ListExecs(ctx, &api.ListExecsRequest{})
	if err != nil {
		return nil, api.FromStatus(err)
	}
	out := make([]ExecProcess, len(r.Execs))
	for i, e := range r.Execs {
		out[i] = execProcess(e)
	}
	return out, nil
}

func execProcess(r *api.ExecProcess) ExecProcess {
	st, ok := statuses[r.Status]
	if !ok {
		st = StatusUnknown
	}
	e := ExecProcess{ID: r.ExecId, Pid: int(r.Pid), Terminal: r.Terminal, Status: st}
	if st == StatusStopped {
		e.ExitCode, e.ExitedAt = int(r.ExitCode), r.ExitedAt.AsTime()
	}
	return e
}

// Resize sets the window size of the terminal of the init (exec "") or of
// an exec process; a process without a terminal is errdefs.ErrConflict.
func (c *Client) Resize(ctx context.Context, exec string, rows, cols uint16) error {
	_, err := c.api.Resize(ctx, &api.ResizeRequest{ExecId: exec, Rows: uint32(rows), Cols: uint32(cols)})
	return api.FromStatus(err)
}
