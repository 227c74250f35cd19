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
	// Terminal: the init gets a pseudo-terminal (config.json says
	// process.terminal too), whose master Create returns; the standard
	// streams below are then not used.
	Terminal bool
	// Stdin, Stdout and Stderr become the container init's standard
	// streams (the read end of the shim's stdin pipe, the write ends of its
	// log pipes); nil is /dev/null.
	Stdin, Stdout, Stderr *os.File
}

// ExecOptions describe a process to start in a running container.
type ExecOptions struct {
	ID     string // the container
	Bundle string // the container's bundle: the runtime's files for the exec go there, briefly
	// Process is the OCI runtime-spec Process to run, as JSON; its
	// terminal says the same as Terminal.
	Process []byte
	// Terminal: the process gets a pseudo-terminal, whose master Exec
	// returns; the standard streams below are then not used.
	Terminal bool
	// Stdin, Stdout and Stderr become the process's standard streams; nil
	// is /dev/null.
	Stdin, Stdout, Stderr *os.File
}

// Process is a process the runtime started: a container's init or an exec
// process.
type Process struct {
	Pid int
	// Console is the master of the process's pseudo-terminal when it has
	// one (non-blocking, close-on-exec); the caller owns it.
	Console *os.File
	// Resize, when set, is called after the caller sets Console's window
	// size: a driver whose Console relays a terminal it does not hold
	// (Droplet's socket) passes the size on.
	Resize func(rows, cols uint16) error
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
	// Create creates the container (not started) and returns its init
	// process. For runc and crun it first mounts opts.Mounts on
	// bundle/rootfs.
	Create(ctx context.Context, opts CreateOptions) (Process, error)
	Start(ctx context.Context, id string) error
	State(ctx context.Context, id string) (State, error)
	// Kill signals the init process, or every process when all is set.
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error
	// Delete removes the runtime's state of the container (forcefully when
	// it still runs) and, for runc and crun, unmounts bundle/rootfs.
	Delete(ctx context.Context, id, bundle string, force bool) error
	// Exec starts a process in the running container and returns it once
	// it runs (the runtime does not wait for it: it is the shim's child,
	// reparented to it as a child subreaper, and its exit reaches the
	// reaper). A process the runtime cannot start because of the request
	// (its executable is missing, …) is errdefs.ErrInvalidArgument, with
	// the runtime's message.
	Exec(ctx context.Context, opts ExecOptions) (Process, error)
}
