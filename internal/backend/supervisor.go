package backend

import (
	"context"
	"strings"
	"syscall"
	"time"

	"github.com/raind/condenser/rest/api"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/oci"
)

// This file is everything the adapter knows of the supervisor's API: the
// interface it uses, and the conversions of a create request, a stored
// request, a stats sample, an exec request and an exec process (those of a
// network and an endpoint are in networks.go).

// Supervisor is what the adapter uses of the supervisor
// (*supervisor.Supervisor).
type Supervisor interface {
	Create(ctx context.Context, req supervisor.CreateRequest) (*supervisor.Container, error)
	List(ctx context.Context) ([]*supervisor.Container, error)
	// Snapshot is every record, shared and read only, and the generation
	// of the records it was taken at.
	Snapshot() supervisor.Snapshot
	Get(ctx context.Context, ref string) (*supervisor.Container, error)
	Start(ctx context.Context, ref string) (*supervisor.Container, error)
	Stop(ctx context.Context, ref string, timeout time.Duration) (*supervisor.Container, error)
	Kill(ctx context.Context, ref string, sig syscall.Signal) (*supervisor.Container, error)
	Restart(ctx context.Context, ref string, timeout time.Duration) (*supervisor.Container, error)
	Wait(ctx context.Context, ref string) (int, error)
	Delete(ctx context.Context, ref string, force bool) (*supervisor.Container, error)
	Logs(ctx context.Context, ref string, o supervisor.LogOptions, fn func(logging.Entry) error) error
	Stats(ctx context.Context, ref string) (client.Stats, *supervisor.Container, error)
	Subscribe() (<-chan supervisor.Event, func())
	Exec(ctx context.Context, ref string, r supervisor.ExecRequest) (string, error)
	ExecState(ctx context.Context, ref, exec string) (client.ExecProcess, *supervisor.Container, error)
	Execs(ctx context.Context, ref string) ([]client.ExecProcess, *supervisor.Container, error)
	Attach(ctx context.Context, ref string, o supervisor.AttachOptions) (supervisor.Stream, error)
	Resize(ctx context.Context, ref, exec string, rows, cols uint16) error
	// ImageUsers answers the image store, before an image's last name goes,
	// which containers use it.
	ImageUsers(ctx context.Context, imageID string) ([]string, error)

	Networks(ctx context.Context) ([]supervisor.Network, error)
	Network(ctx context.Context, name string) (supervisor.Network, error)
	CreateNetwork(ctx context.Context, cfg supervisor.NetworkConfig) (supervisor.Network, error)
	RemoveNetwork(ctx context.Context, name string) error
}

var _ Supervisor = (*supervisor.Supervisor)(nil)

// createRequest is the supervisor's request for a REST create request.
func createRequest(r api.CreateContainerRequest) supervisor.CreateRequest {
	req := supervisor.CreateRequest{Image: r.Image, Name: r.Name, RestartPolicy: r.RestartPolicy, AutoRemove: r.AutoRemove,
		OpenStdin: r.OpenStdin, Ports: r.Port,
		Config: oci.Config{Entrypoint: r.Entrypoint, Command: r.Command, Env: r.Env, Mounts: r.Mount, WorkingDir: r.Workdir,
			User: r.User, Hostname: r.Hostname, Labels: r.Labels, Network: r.Network, ReadOnly: r.ReadOnly, Tty: r.Tty}}
	if res := r.Resources; res != nil {
		req.Memory, req.CPUs, req.PidsLimit = res.Memory, res.CPUs, res.Pids
	}
	return req
}

// config is a container's configuration as the REST contract shows it: its
// effective command line and its stored request (promoted fields of the
// embedded oci.Config).
func config(c *supervisor.Container) api.ContainerConfig {
	r := c.Request
	cfg := api.ContainerConfig{
		Args: c.Args, Env: r.Env, Workdir: r.WorkingDir, User: r.User, Mounts: []api.Mount{},
		Hostname: r.Hostname, Network: r.Network, Ports: r.Ports, Tty: r.Tty, OpenStdin: r.OpenStdin, Labels: r.Labels,
		RestartPolicy: r.RestartPolicy, ReadOnly: r.ReadOnly, AutoRemove: r.AutoRemove,
	}
	for _, m := range r.Mounts {
		parts := strings.Split(m, ":")
		if len(parts) >= 2 {
			cfg.Mounts = append(cfg.Mounts, api.Mount{Source: parts[0], Destination: parts[1], ReadOnly: len(parts) > 2 && parts[2] == "ro"})
		}
	}
	if r.Memory != 0 || r.CPUs != 0 || r.PidsLimit != 0 {
		cfg.Resources = &api.Resources{Memory: r.Memory, CPUs: r.CPUs, Pids: r.PidsLimit}
	}
	return cfg
}

// statsOf is one stats sample of c, taken at now.
func statsOf(st client.Stats, c *supervisor.Container, now time.Time) *api.ContainerStats {
	return &api.ContainerStats{
		ContainerID: c.ID, Name: c.Name, Time: now,
		CPU:    api.CPUStats{UsageNanos: st.CPUUsageNanos},
		Memory: api.MemoryStats{Usage: st.MemoryUsage, Limit: st.MemoryLimit, Cache: st.MemoryCache, MaxUsage: st.MemoryMaxUsage, OOMKills: st.OOMKills},
		Pids:   api.PidsStats{Current: st.PidsCurrent, Limit: st.PidsLimit},
		IO:     api.IOStats{ReadBytes: st.BlkioReadBytes, WriteBytes: st.BlkioWriteBytes},
	}
}

// execRequest is the supervisor's request for a REST exec request.
func execRequest(r api.ExecRequest) supervisor.ExecRequest {
	return supervisor.ExecRequest{Command: r.Command, Env: r.Env, User: r.User, WorkingDir: r.Workdir,
		Tty: r.Tty, Stdin: r.Stdin, Detach: r.Detach != nil && *r.Detach, ConsoleSize: r.ConsoleSize}
}

// execInfo is an exec process of container c as the REST contract shows
// it.
func execInfo(e client.ExecProcess, c *supervisor.Container) api.ExecInfo {
	info := api.ExecInfo{ID: e.ID, Pid: e.Pid, Tty: e.Terminal, Running: e.Status == client.StatusRunning}
	if c != nil {
		info.ContainerID = c.ID
	}
	if e.Status == client.StatusStopped {
		code := e.ExitCode
		info.ExitCode, info.ExitedAt = &code, e.ExitedAt
	}
	return info
}
