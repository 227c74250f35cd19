package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/supervisor/oci"
)

// Terminals, attach and exec. The shim holds every process's standard
// streams (its terminal, its stdin pipe, the output it holds for a client
// that has not attached yet) and serves them on its io.sock; the
// supervisor only checks the container's state, builds an exec's process
// from the container's and hands over the shim's stream. It keeps no state
// of its own about them: exec processes live and die with the shim, so
// they survive a daemon restart as the container does.

// ExecRequest is a process to start in a running container.
type ExecRequest struct {
	Command    []string // required
	Env        []string // KEY=VALUE, over the container's
	User       string   // "": the container's
	WorkingDir string   // "": the container's; else absolute
	Tty        bool     // a pseudo-terminal
	Stdin      bool     // without a terminal: a stdin pipe written by attached clients
	// ConsoleSize is the terminal's size at the start, [rows, cols]; nil
	// leaves it to a resize.
	ConsoleSize *[2]uint16
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
// A container that is not running is errdefs.ErrConflict; a command the
// runtime cannot run (not found, not executable) errdefs.ErrInvalidArgument
// with the runtime's message.
func (s *Supervisor) Exec(ctx context.Context, ref string, r ExecRequest) (string, error) {
	e := oci.Exec{Args: r.Command, Env: r.Env, User: r.User, WorkingDir: r.WorkingDir, Tty: r.Tty, ConsoleSize: r.ConsoleSize}
	if err := e.Validate(); err != nil {
		return "", err
	}
	c, cl, err := s.running(ref)
	if err != nil {
		return "", err
	}
	s.warmCgroups()
	init, err := readProcess(c.Bundle)
	if err != nil {
		return "", fmt.Errorf("exec in container %s: %w", c.Name, err)
	}
	var readFile func(string) ([]byte, error)
	if r.User != "" {
		// The user is resolved against the image's files, as at create
		// (never through the running container's root filesystem, whose
		// /etc/passwd may be a symlink anywhere).
		img, err := s.cfg.Images.Image(ctx, c.ImageID, false)
		if err != nil {
			return "", fmt.Errorf("exec in container %s: its image: %w", c.Name, err)
		}
		readFile = func(p string) ([]byte, error) { return rootfs.ReadFile(img.Layers, p) }
	}
	proc, err := oci.ExecProcess(init, e, readFile)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(proc)
	if err != nil {
		return "", err
	}
	id := names.NewID()
	if _, err := cl.Exec(ctx, client.ExecOptions{ID: id, Process: b, Terminal: r.Tty, Stdin: r.Stdin && !r.Tty, Detach: r.Detach}); err != nil {
		return "", fmt.Errorf("exec in container %s: %w", c.Name, err)
	}
	return id, nil
}

// running returns container ref, which must be running, and its shim.
func (s *Supervisor) running(ref string) (*Container, Shim, error) {
	c, err := s.get(ref)
	if err != nil {
		return nil, nil, err
	}
	if c.State != StateRunning {
		return c, nil, fmt.Errorf("container %s is not running (it is %s): %w", c.Name, c.State, errdefs.ErrConflict)
	}
	cl, err := s.client(c)
	if err != nil {
		return c, nil, err
	}
	return c, cl, nil
}

// readProcess reads the init's process from the bundle's config.json.
func readProcess(bundle string) (*specs.Process, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("config.json has no process: %w", errdefs.ErrDataLoss)
	}
	return spec.Process, nil
}

// ExecState tells an exec process's state, and returns its container. The
// exec processes of a container that is not running are gone (not found).
func (s *Supervisor) ExecState(ctx context.Context, ref, exec string) (client.ExecProcess, *Container, error) {
	c, err := s.get(ref)
	if err != nil {
		return client.ExecProcess{}, nil, err
	}
	cl, err := s.client(c)
	if err != nil || c.State != StateRunning {
		return client.ExecProcess{}, c, fmt.Errorf("container %s has no exec process %s (it is %s): %w", c.Name, exec, c.State, errdefs.ErrNotFound)
	}
	e, err := cl.ExecState(ctx, exec)
	return e, c, err
}

// Execs lists the exec processes of container ref (oldest first), and
// returns the container; a container that does not run has none.
func (s *Supervisor) Execs(ctx context.Context, ref string) ([]client.ExecProcess, *Container, error) {
	c, err := s.get(ref)
	if err != nil {
		return nil, nil, err
	}
	cl, err := s.client(c)
	if err != nil || c.State != StateRunning {
		return nil, c, nil
	}
	execs, err := cl.ListExecs(ctx)
	return execs, c, err
}

// Attach attaches to the standard streams of container ref's init (created
// or running) or of one of its exec processes (running container): the
// stream speaks internal/frame. Close it to detach.
func (s *Supervisor) Attach(ctx context.Context, ref string, o AttachOptions) (Stream, error) {
	c, err := s.get(ref)
	if err != nil {
		return nil, err
	}
	ok := c.State == StateRunning || (o.Exec == "" && c.State == StateCreated)
	if !ok {
		return nil, fmt.Errorf("cannot attach to container %s: it is %s; start it first: %w", c.Name, c.State, errdefs.ErrConflict)
	}
	if o.Exec != "" {
		if err := names.ValidID(o.Exec); err != nil {
			return nil, fmt.Errorf("exec process %q: %w", o.Exec, errdefs.ErrNotFound)
		}
	}
	st, err := s.cfg.Shims.Attach(ctx, c.Bundle, api.AttachRequest{Exec: o.Exec, Stdin: o.Stdin})
	if err != nil {
		return nil, fmt.Errorf("attach to container %s: %w", c.Name, err)
	}
	return st, nil
}

// Resize sets the window size of the terminal of container ref's init
// (exec "") or of an exec process.
func (s *Supervisor) Resize(ctx context.Context, ref, exec string, rows, cols uint16) error {
	c, err := s.get(ref)
	if err != nil {
		return err
	}
	if c.State != StateRunning && c.State != StateCreated {
		return fmt.Errorf("container %s is not running (it is %s): %w", c.Name, c.State, errdefs.ErrConflict)
	}
	cl, err := s.client(c)
	if err != nil {
		return err
	}
	if err := cl.Resize(ctx, exec, rows, cols); err != nil {
		return fmt.Errorf("resize the terminal of container %s: %w", c.Name, err)
	}
	return nil
}
