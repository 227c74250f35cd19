package supervisor

import (
	"context"
	"fmt"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/shim/client"
)

// ExecRequest is a process to start in a running container.
type ExecRequest struct {
	Command    []string // required
	Env        []string // KEY=VALUE, over the container's
	User       string   // "": the container's
	WorkingDir string   // "": the container's; else absolute
	Tty        bool     // a pseudo-terminal
	Stdin      bool     // without a terminal: a stdin pipe written by attached clients
	// Detach: no standard streams; otherwise the output is held until a
	// client attaches (Attach with Exec).
	Detach bool
}

// AttachOptions say what Attach attaches to.
type AttachOptions struct {
	Exec  string // "": the container's init; else an exec process's id
	Stdin bool   // the client's input goes to the process
}

// Exec starts a process in the running container ref and returns its id.
// A container that is not running is errdefs.ErrConflict.
func (s *Supervisor) Exec(ctx context.Context, ref string, r ExecRequest) (string, error) {
	return "", fmt.Errorf("exec: %w", errdefs.ErrNotImplemented)
}

// ExecState tells an exec process's state, and returns its container.
func (s *Supervisor) ExecState(ctx context.Context, ref, exec string) (client.ExecProcess, *Container, error) {
	return client.ExecProcess{}, nil, fmt.Errorf("exec: %w", errdefs.ErrNotImplemented)
}

// Execs lists the exec processes of container ref (oldest first), and
// returns the container; a container that does not run has none.
func (s *Supervisor) Execs(ctx context.Context, ref string) ([]client.ExecProcess, *Container, error) {
	return nil, nil, fmt.Errorf("exec: %w", errdefs.ErrNotImplemented)
}

// Attach attaches to the standard streams of container ref's init (created
// or running) or of one of its exec processes: the stream speaks
// internal/frame. Close it to detach.
func (s *Supervisor) Attach(ctx context.Context, ref string, o AttachOptions) (*client.Stream, error) {
	return nil, fmt.Errorf("attach: %w", errdefs.ErrNotImplemented)
}

// Resize sets the window size of the terminal of container ref's init
// (exec "") or of an exec process.
func (s *Supervisor) Resize(ctx context.Context, ref, exec string, rows, cols uint16) error {
	return fmt.Errorf("resize: %w", errdefs.ErrNotImplemented)
}
