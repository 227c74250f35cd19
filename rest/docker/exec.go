package docker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/raind/condenser/internal/detachkeys"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/supervisor"
)

// execAPI serves /containers/{id}/exec and /exec/{id}/…: Docker's exec
// instances are configured first, started later and inspected after
// their end; execs keeps them in between.
type execAPI struct {
	*server
	execs *execStore
}

// execCreate is POST /containers/{id}/exec: 201 {"Id"}; nothing runs
// until the start.
func (x *execAPI) execCreate(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	var req container.ExecCreateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Cmd) == 0 {
		return invalid("No exec command specified")
	}
	if req.Privileged {
		return fmt.Errorf("privileged exec processes are not supported: Condenser runs an exec process "+
			"with its container's privileges (drop --privileged): %w", errdefs.ErrNotImplemented)
	}
	if _, err := consoleSize(req.ConsoleSize); err != nil {
		return err
	}
	spec := req.DetachKeys
	if spec == "" {
		spec = detachkeys.Default
	}
	keys, err := parseDetachKeys(spec)
	if err != nil {
		return err
	}
	c, err := x.Streams.Get(r.Context(), ref)
	if err != nil {
		return noSuch("container", ref, err)
	}
	if c.State != supervisor.StateRunning {
		return fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrConflict)
	}
	id := x.execs.add(execConfig{ContainerID: c.ID, Req: req, Keys: keys, Created: time.Now()})
	return writeJSON(w, http.StatusCreated, container.ExecCreateResponse{ID: id})
}

// execStart is POST /exec/{id}/start ({"Detach", "Tty", "ConsoleSize"}):
// detached, 200 and nothing more; else the connection is hijacked as for
// an attach and carries the process's streams until it exits.
func (x *execAPI) execStart(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var req container.ExecStartRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	e, err := x.execs.get(id)
	if err != nil {
		return err
	}
	size := e.Req.ConsoleSize
	if req.ConsoleSize != nil {
		size = req.ConsoleSize
	}
	cs, err := consoleSize(size)
	if err != nil {
		return err
	}
	if e, err = x.execs.start(id, req.Detach); err != nil {
		return err
	}
	sr := supervisor.ExecRequest{
		Command: e.Req.Cmd, Env: e.Req.Env, User: e.Req.User, WorkingDir: e.Req.WorkingDir,
		Tty: e.Req.Tty, Stdin: e.Req.AttachStdin, ConsoleSize: cs, Detach: req.Detach,
	}
	if req.Detach {
		proc, err := x.Streams.Exec(r.Context(), e.ContainerID, sr)
		if err != nil {
			x.execs.update(id, func(c *execConfig) { c.Started = false })
			return x.containerGone(r.Context(), e, err)
		}
		x.execs.update(id, func(c *execConfig) { c.ProcID = proc })
		w.WriteHeader(http.StatusOK)
		return nil
	}
	rl := relay{
		tty: e.Req.Tty, stdout: e.Req.AttachStdout, stderr: e.Req.AttachStderr, stdin: e.Req.AttachStdin,
		onExit: func(code int) { x.execs.update(id, func(c *execConfig) { c.ExitCode = &code }) },
	}
	if rl.tty && rl.stdin {
		rl.keys = e.Keys
	}
	// Docker starts the process on the hijacked connection (see
	// runSession: its output must come after the response's head).
	open := func(ctx context.Context, conn io.Writer) (supervisor.Stream, error) {
		proc, err := x.Streams.Exec(ctx, e.ContainerID, sr)
		if err != nil {
			return nil, x.startFailed(ctx, conn, id, e, err)
		}
		x.execs.update(id, func(c *execConfig) { c.ProcID = proc })
		return x.Streams.Attach(ctx, e.ContainerID, supervisor.AttachOptions{Exec: proc, Stdin: e.Req.AttachStdin})
	}
	return x.runSession(w, r, rl, open, func() { x.execs.update(id, func(c *execConfig) { c.Started = false }) })
}

// startFailed tells, on the hijacked stream, why exec e could not start,
// and records its exit code as a shell's: 127 for a command not found, 126
// for one that cannot run (or a container gone meanwhile). It returns
// nil when the command was at fault, else cause (logged).
func (x *execAPI) startFailed(ctx context.Context, conn io.Writer, id string, e execConfig, cause error) error {
	code := 126
	if msg := strings.ToLower(cause.Error()); strings.Contains(msg, "not found") || strings.Contains(msg, "no such file") {
		code = 127
	}
	x.execs.update(id, func(c *execConfig) { c.ExitCode = &code })
	sw := &stdWriter{w: conn, tty: e.Req.Tty}
	msg := x.containerGone(ctx, e, cause).Error()
	if werr := sw.write(frame.Stderr, []byte(msg+"\r\n")); werr != nil {
		return werr
	}
	if errdefs.Kind(cause) == errdefs.ErrInvalidArgument {
		return nil
	}
	return cause
}

// containerGone rewrites the error of a call about exec e's container: a
// container removed since is "No such container", and its execs go.
func (x *execAPI) containerGone(ctx context.Context, e execConfig, err error) error {
	if errdefs.Kind(err) == errdefs.ErrNotFound {
		if _, gerr := x.Streams.Get(ctx, e.ContainerID); errdefs.Kind(gerr) == errdefs.ErrNotFound {
			x.execs.forgetContainer(e.ContainerID)
			return noSuch("container", e.ContainerID, gerr)
		}
	}
	return err
}

// execResize is POST /exec/{id}/resize?h=&w=.
func (x *execAPI) execResize(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	rows, cols, err := querySize(r)
	if err != nil {
		return err
	}
	e, err := x.execs.get(id)
	if err != nil {
		return err
	}
	if e.ProcID == "" {
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("Exec %s is not running", id), err: errdefs.ErrConflict}
	}
	if err := x.Streams.Resize(r.Context(), e.ContainerID, e.ProcID, rows, cols); err != nil {
		return x.containerGone(r.Context(), e, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// execInspect is GET /exec/{id}/json. ExitCode is null until the process
// has exited; docker exec reads it once the stream has ended, and the
// session records it before it closes the connection.
func (x *execAPI) execInspect(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	e, err := x.execs.get(id)
	if err != nil {
		return err
	}
	if _, err := x.Streams.Get(r.Context(), e.ContainerID); errdefs.Kind(err) == errdefs.ErrNotFound {
		x.execs.forgetContainer(e.ContainerID)
		return noSuchExec(id)
	}
	running := false
	if e.ProcID != "" && !e.finished() {
		p, _, err := x.Streams.ExecState(r.Context(), e.ContainerID, e.ProcID)
		switch {
		case err == nil:
			e.Pid = p.Pid
			running = p.Status != client.StatusStopped
			if !running {
				code := p.ExitCode
				e.ExitCode = &code
				x.execs.update(id, func(c *execConfig) { c.ExitCode, c.Pid = &code, p.Pid })
			}
		case errdefs.Kind(err) == errdefs.ErrNotFound:
			// Its container stopped (the process with it) or the shim
			// forgot it: it runs no more, its status is unknown.
		default:
			return err
		}
	}
	no := false
	resp := container.ExecInspectResponse{
		ID: e.ID, Running: running, ExitCode: e.ExitCode, ContainerID: e.ContainerID, Pid: e.Pid,
		OpenStdin: e.Req.AttachStdin, OpenStdout: e.Req.AttachStdout, OpenStderr: e.Req.AttachStderr,
		DetachKeys: e.Keys,
		ProcessConfig: &container.ExecProcessConfig{
			Tty: e.Req.Tty, Entrypoint: e.Req.Cmd[0], Arguments: append([]string{}, e.Req.Cmd[1:]...),
			Privileged: &no, User: e.Req.User,
		},
	}
	return writeJSON(w, http.StatusOK, resp)
}

// consoleSize converts Docker's [height, width] to the supervisor's.
func consoleSize(cs *[2]uint) (*[2]uint16, error) {
	if cs == nil {
		return nil, nil
	}
	if cs[0] > 65535 || cs[1] > 65535 {
		return nil, invalid("invalid ConsoleSize %v: want [height, width], each from 0 to 65535", *cs)
	}
	return &[2]uint16{uint16(cs[0]), uint16(cs[1])}, nil
}
