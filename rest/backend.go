package rest

import (
	"context"
	"io"
	"syscall"
	"time"

	"github.com/raind/condenser/rest/api"
)

// Backend is everything the HTTP layer needs from the rest of the daemon.
// rest/ is its consumer and so owns it; the daemon's wiring (cmd/condenser)
// adapts the supervisor and the image store to it.
//
// Errors wrap the kinds of internal/errdefs with %w; the handler turns them
// into HTTP status codes (see the package documentation). An error that wraps
// no kind is an internal fault: it is logged and the client gets a generic
// 500.
//
// Every call gets the request's context, which is cancelled when the client
// goes away; a call that blocks must return when it is.
type Backend interface {
	CreateContainer(ctx context.Context, req api.CreateContainerRequest) (id string, err error)
	ListContainers(ctx context.Context, all bool, labels map[string]string) ([]api.ContainerSummary, error)
	// InspectContainer and every other call taking a ref accept the full id,
	// a unique id prefix of at least 4 characters, or the container's name;
	// the backend resolves it.
	InspectContainer(ctx context.Context, ref string) (*api.ContainerDetail, error)
	StartContainer(ctx context.Context, ref string) (id string, err error)
	StopContainer(ctx context.Context, ref string, timeout time.Duration) (id string, err error)
	KillContainer(ctx context.Context, ref string, signal syscall.Signal) (id string, err error)
	RestartContainer(ctx context.Context, ref string, timeout time.Duration) (id string, err error)
	WaitContainer(ctx context.Context, ref string) (exitCode int, err error)
	DeleteContainer(ctx context.Context, ref string, force bool) (id string, err error)
	// ContainerLogs writes log entries (oldest first) to fn; with Follow it
	// keeps calling fn until ctx is done or the container has stopped and its
	// log is drained. It calls fn one entry at a time, never after it
	// returns, and stops when fn returns an error (returning that error).
	ContainerLogs(ctx context.Context, ref string, opts LogOptions, fn func(api.LogEntry) error) error
	ContainerStats(ctx context.Context, ref string) (*api.ContainerStats, error)
	AllContainerStats(ctx context.Context) ([]api.ContainerStats, error)

	// ExecContainer starts a process in the running container ref (else
	// ErrConflict) and returns its id. req.Command is not empty and
	// req.Detach is set: the handler has filled in its endpoint's default.
	ExecContainer(ctx context.Context, ref string, req api.ExecRequest) (id string, err error)
	// ListExecs lists the exec processes of container ref, oldest first (a
	// container that does not run has none).
	ListExecs(ctx context.Context, ref string) ([]api.ExecInfo, error)
	// InspectExec tells of one exec process of container ref; an unknown
	// one is ErrNotFound.
	InspectExec(ctx context.Context, ref, exec string) (*api.ExecInfo, error)
	// Attach attaches to the standard streams of container ref's init
	// (o.Exec "": created or running, else ErrConflict) or of its exec
	// process o.Exec. ctx bounds the attaching only: the Attachment lasts
	// until it is closed, which detaches (the process goes on).
	Attach(ctx context.Context, ref string, o AttachOptions) (Attachment, error)
	// ResizeTerminal sets the window size of the terminal of container
	// ref's init (exec "") or of its exec process exec; a process without a
	// terminal is ErrConflict. It returns the container's full id (exec "")
	// or the exec process's id.
	ResizeTerminal(ctx context.Context, ref, exec string, rows, cols uint16) (id string, err error)

	// PullImage pulls image for os/arch ("" for the host's), reporting
	// progress to progress (never concurrently, never after it returns).
	PullImage(ctx context.Context, image, os, arch string, progress func(api.PullProgress)) (*api.PullResult, error)
	ListImages(ctx context.Context) ([]api.ImageSummary, error)
	// RemoveImage fails with ErrConflict while a container uses the image,
	// unless force is set.
	RemoveImage(ctx context.Context, image string, force bool) error
	ImageStatus(ctx context.Context, image string) (*api.ImageStatus, error)
	ImagesFS(ctx context.Context) (usedBytes int64, err error)
	// ImportImage reads a `docker save` or OCI image-layout tarball from r.
	ImportImage(ctx context.Context, r io.Reader, progress func(api.PullProgress)) ([]api.ImageSummary, error)

	// ListNetworks lists the networks, the built-in ones (raind0, host,
	// none) included.
	ListNetworks(ctx context.Context) ([]api.NetworkSummary, error)
	// InspectNetwork returns network name; an unknown one is ErrNotFound.
	InspectNetwork(ctx context.Context, name string) (*api.NetworkSummary, error)
	// CreateNetwork creates a user-defined bridge network (req.Name is a
	// valid name: the handler has checked it); a taken name is
	// ErrAlreadyExists, a bad or overlapping subnet or gateway
	// ErrInvalidArgument.
	CreateNetwork(ctx context.Context, req api.CreateNetworkRequest) (*api.NetworkSummary, error)
	// RemoveNetwork removes a user-defined network: one a container is on
	// is ErrConflict, a built-in one ErrInvalidArgument, an unknown one
	// ErrNotFound.
	RemoveNetwork(ctx context.Context, name string) error

	Version(ctx context.Context) api.VersionInfo
	Info(ctx context.Context) (*api.SystemInfo, error)
	// Events calls fn for each lifecycle event from now on until ctx is done
	// (or fn returns an error, which it returns).
	Events(ctx context.Context, fn func(api.Event) error) error
}

// LogOptions select the entries of ContainerLogs. They are the Backend's, not
// the wire's: clients give them as the query of GET …/logs.
type LogOptions struct {
	Follow bool      // keep going until ctx is done or the container has stopped and its log is drained
	Since  time.Time // zero: from the beginning
	Tail   int       // the last Tail entries (of those selected); negative: all
	Stdout bool      // include stdout entries
	Stderr bool      // include stderr entries
}

// AttachOptions say what Backend.Attach attaches to.
type AttachOptions struct {
	Exec  string // "": the container's init; else an exec process's id
	Stdin bool   // the client's input goes to the process (else the process refuses it)
}

// Attachment is a client attached to a process's standard streams: reads
// and writes carry internal/frame frames (reads: Stdout, Stderr and, when
// the process has ended and its output is all read, Exit; writes: Stdin,
// Resize, CloseStdin). Close detaches: the process goes on, its stdin stays
// open.
type Attachment interface {
	io.ReadWriteCloser
	// Terminal reports whether the process has a terminal (its output is
	// all Stdout frames).
	Terminal() bool
}
