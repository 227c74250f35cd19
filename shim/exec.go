package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/reaper"
	"github.com/raind/condenser/shim/runtime"
)

// maxFinishedExecs bounds the exec processes kept once they have exited
// (the oldest go first).
const maxFinishedExecs = 256

// execProcess is one exec process of the container. Its fields are
// guarded by the service's mutex.
type execProcess struct {
	id       string
	pid      int
	terminal bool
	io       *streams // nil while it is being started
	status   api.Status
	exitCode int
	exitedAt time.Time
}

func (x *execProcess) api() *api.ExecProcess {
	p := &api.ExecProcess{ExecId: x.id, Pid: uint32(x.pid), Terminal: x.terminal, Status: x.status}
	if x.status == api.Status_STOPPED {
		p.ExitCode, p.ExitedAt = int32(x.exitCode), api.NewTimestamp(x.exitedAt)
	}
	return p
}

func (s *service) Exec(ctx context.Context, req *api.ExecRequest) (*api.ExecResponse, error) {
	id := req.GetExecId()
	if err := checkExec(req); err != nil {
		return nil, api.ToStatus(err)
	}
	s.mu.Lock()
	switch {
	case s.status != api.Status_RUNNING:
		s.mu.Unlock()
		return nil, api.ToStatus(fmt.Errorf("exec in container %s: it is %s, not running: %w", s.cfg.ID, s.status, errdefs.ErrConflict))
	case s.execs[id] != nil:
		s.mu.Unlock()
		return nil, api.ToStatus(fmt.Errorf("exec %s in container %s: %w", id, s.cfg.ID, errdefs.ErrAlreadyExists))
	}
	x := &execProcess{id: id, terminal: req.GetTerminal()}
	s.execs[id] = x // the id is taken while the process starts
	s.mu.Unlock()

	st, pid, t, err := s.startExec(ctx, req)
	s.mu.Lock()
	if err != nil {
		delete(s.execs, id)
		s.mu.Unlock()
		// The runtime's message names what failed; the caller names
		// the container.
		return nil, api.ToStatus(err)
	}
	x.pid, x.io, x.status = pid, st, api.Status_RUNNING
	s.execOrder = append(s.execOrder, x)
	s.mu.Unlock()
	s.exits.register(t, pid, func(e reaper.Exit) { s.execExited(x, e) })
	s.cfg.Reaper.Watch(pid)
	return &api.ExecResponse{Pid: uint32(pid)}, nil
}

// checkExec checks an exec request: its id, and its process (which the
// runtime reads: it must at least say what to run, and whether it has a
// terminal as the request does).
func checkExec(req *api.ExecRequest) error {
	if names.ValidID(req.GetExecId()) != nil {
		return fmt.Errorf("exec id %q: want %d lowercase hex digits: %w", shortID(req.GetExecId()), names.IDLength, errdefs.ErrInvalidArgument)
	}
	var p specs.Process
	if err := json.Unmarshal(req.GetProcess(), &p); err != nil {
		return fmt.Errorf("exec %s: process: %w: %w", req.GetExecId(), err, errdefs.ErrInvalidArgument)
	}
	switch {
	case len(p.Args) == 0:
		return fmt.Errorf("exec %s: the process has no args: %w", req.GetExecId(), errdefs.ErrInvalidArgument)
	case p.Terminal != req.GetTerminal():
		return fmt.Errorf("exec %s: the request says terminal %v, the process %v: %w", req.GetExecId(), req.GetTerminal(), p.Terminal, errdefs.ErrInvalidArgument)
	}
	return nil
}

// startExec has the runtime start the process with its streams: a
// terminal, or pipes (stdin only when asked for), or nothing at all when
// detached. A detached process with a terminal keeps it (closing its
// master would hang it up), its output going to the clients attached at
// the time only. On success the exit registration t is begun, for the
// caller to end with the process's pid.
func (s *service) startExec(ctx context.Context, req *api.ExecRequest) (*streams, int, ticket, error) {
	opts := runtime.ExecOptions{ID: s.cfg.ID, Bundle: s.cfg.Bundle, Process: req.GetProcess(), Terminal: req.GetTerminal()}
	var pp *pipes
	if !req.GetTerminal() && !req.GetDetach() {
		var err error
		if pp, err = newPipes(req.GetStdin()); err != nil {
			return nil, 0, 0, err
		}
		opts.Stdin, opts.Stdout, opts.Stderr = pp.in, pp.out, pp.err
	}
	t := s.exits.expect()
	// An exec runs to its end even if its caller goes: cut short, the
	// runtime could leave a process nothing knows of.
	p, err := s.cfg.Driver.Exec(context.WithoutCancel(ctx), opts)
	if pp != nil {
		pp.closeProcess()
	}
	if err == nil && req.GetTerminal() && p.Console == nil {
		err = errors.New("the runtime gave no terminal") // a driver's fault
	}
	if err != nil {
		s.exits.cancel(t)
		if pp != nil {
			pp.closeShim()
		}
		return nil, 0, 0, err
	}
	var st *streams
	switch {
	case p.Console != nil:
		hold := holdBlock
		if req.GetDetach() {
			hold = holdNone
		}
		st = newStreams(true, p.Console, nil, hold, true)
		st.onResize = p.Resize
		st.startPumps([]byte{frame.Stdout}, []*os.File{p.Console})
	case pp != nil:
		st = newStreams(false, nil, pp.inW, holdBlock, true)
		st.startPumps([]byte{frame.Stdout, frame.Stderr}, []*os.File{pp.outR, pp.errR})
	default:
		st = newStreams(false, nil, nil, holdNone, true)
	}
	return st, p.Pid, t, nil
}

// execExited records an exec process's exit and ends its session once its
// output is drained. The oldest finished exec processes past
// maxFinishedExecs are forgotten.
func (s *service) execExited(x *execProcess, e reaper.Exit) {
	s.mu.Lock()
	x.status, x.exitCode, x.exitedAt = api.Status_STOPPED, e.Status, e.Timestamp.UTC()
	var dropped []*streams
	finished := 0
	for _, y := range s.execOrder {
		if y.status == api.Status_STOPPED {
			finished++
		}
	}
	if finished > maxFinishedExecs {
		kept := s.execOrder[:0]
		for _, y := range s.execOrder {
			if finished > maxFinishedExecs && y.status == api.Status_STOPPED {
				finished--
				delete(s.execs, y.id)
				dropped = append(dropped, y.io)
				continue
			}
			kept = append(kept, y)
		}
		clear(s.execOrder[len(kept):])
		s.execOrder = kept
	}
	s.mu.Unlock()
	x.io.exit(e.Status)
	for _, st := range dropped {
		st.release()
	}
}

func (s *service) ExecState(_ context.Context, req *api.ExecStateRequest) (*api.ExecProcess, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.execs[req.GetExecId()]
	if !ok || x.io == nil {
		return nil, api.ToStatus(fmt.Errorf("exec %s in container %s: %w", shortID(req.GetExecId()), s.cfg.ID, errdefs.ErrNotFound))
	}
	return x.api(), nil
}

func (s *service) ListExecs(context.Context, *api.ListExecsRequest) (*api.ListExecsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &api.ListExecsResponse{Execs: make([]*api.ExecProcess, len(s.execOrder))}
	for i, x := range s.execOrder {
		r.Execs[i] = x.api()
	}
	return r, nil
}

func (s *service) Resize(_ context.Context, req *api.ResizeRequest) (*api.ResizeResponse, error) {
	if req.GetRows() > math.MaxUint16 || req.GetCols() > math.MaxUint16 {
		return nil, api.ToStatus(fmt.Errorf("resize to %dx%d: at most %d rows and columns: %w", req.GetRows(), req.GetCols(), math.MaxUint16, errdefs.ErrInvalidArgument))
	}
	st, err := s.attachTarget(req.GetExecId())
	if err == nil {
		err = st.resize(uint16(req.GetRows()), uint16(req.GetCols()))
	}
	if err != nil {
		return nil, api.ToStatus(fmt.Errorf("resize the terminal of %s: %w", processName(s.cfg.ID, req.GetExecId()), err))
	}
	return &api.ResizeResponse{}, nil
}

// processName names the init (exec "") or an exec process in messages.
func processName(id, exec string) string {
	if exec == "" {
		return "container " + id
	}
	return "exec " + shortID(exec)
}
