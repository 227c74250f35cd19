// Package runtime drives a low-level OCI runtime for the shim: runc and crun
// through their standard command line, and Droplet, which takes its bundle
// and overlay differently.
package runtime

import (
	"context"
	"os"
	"os/exec"
	"syscall"

	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/reaper"
)

// Mount is one mount of a container's root filesystem, as the supervisor
// hands it over (overlay lower/upper/work dirs, or a bind for the copy
// fallback).
type Mount = rootfs.Mount

// CreateOptions describe a container to create.
type CreateOptions struct {
	ID     string
	Bundle string  // directory holding config.json (and rootfs/ for runc and crun)
	Mounts []Mount // root filesystem mounts
	// Stdout and Stderr become the container init's standard output and
	// error (write ends of the shim's log pipes). Its stdin is /dev/null.
	Stdout, Stderr *os.File
}

// State is what the runtime reports of a container.
type State struct {
	Status string // "created", "running", "stopped", "paused"
	Pid    int
}

// Monitor runs runtime commands without racing the shim's reaper for their
// exit status (a child subreaper must reap every child itself).
type Monitor interface {
	// Start starts cmd and returns a channel that receives its exit.
	Start(cmd *exec.Cmd) (<-chan reaper.Exit, error)
	// Wait waits for cmd's exit on ch and returns its exit status.
	Wait(cmd *exec.Cmd, ch <-chan reaper.Exit) (int, error)
}

// Driver is one low-level runtime.
type Driver interface {
	// Create creates the container (not started) and returns the pid of its
	// init process. For runc and crun it first mounts opts.Mounts on
	// bundle/rootfs.
	Create(ctx context.Context, opts CreateOptions) (pid int, err error)
	Start(ctx context.Context, id string) error
	State(ctx context.Context, id string) (State, error)
	// Kill signals the init process, or every process when all is set.
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error
	// Delete removes the runtime's state of the container (forcefully when
	// it still runs) and, for runc and crun, unmounts bundle/rootfs.
	Delete(ctx context.Context, id, bundle string, force bool) error
}
