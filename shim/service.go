// Package shim is the server side of condenser-shim: one small ttrpc server
// per container that drives the OCI runtime (runc, crun or Droplet, see
// shim/runtime), reaps the container's processes (shim/reaper), keeps its
// exit status in the bundle, writes its logs (shim/logging) and reads its
// cgroup statistics (shim/stats).
//
// It also holds the standard streams of the container's processes — the
// init's and those of its exec processes (exec.go): a terminal's master,
// a stdin pipe, the output not yet taken by a client (streams.go) — and
// serves them on the bundle's io.sock (attach.go, api.IOFile), which lives
// as long as the shim: a daemon restarted attaches again. One exit watch
// (exits.go) hands the reaper's exits to the init and the exec processes.
//
// The process boundary is the package boundary: the daemon links only
// shim/client (Launch, Dial, Cleanup) and shim/api (the wire and on-disk
// contract), never this package. The commands of condenser-shim are
// StartDetached (`start`: the first phase of the two-phase start), Serve
// (`serve`: the detached server) and Delete (`delete`: the out-of-band
// clean-up of a container whose shim is gone or must go).
package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/raind/condenser/internal/atomicfile"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/shim/reaper"
	"github.com/raind/condenser/shim/runtime"
	"github.com/raind/condenser/shim/stats"
)

// ServiceConfig configures the shim's service.
type ServiceConfig struct {
	ID, Bundle string
	Driver     runtime.Driver
	Reaper     *reaper.Reaper
	Version    string
	// Shutdown is called (once, in its own goroutine) when a Shutdown
	// request is accepted.
	Shutdown func()
	Logger   *slog.Logger
}

type service struct {
	cfg ServiceConfig
	log *slog.Logger

	mu      sync.Mutex
	status  api.Status
	pid     int
	exit    *api.Exit
	exited  chan struct{} // closed once exit is set and on disk
	deleted bool
	logw    *logging.Writer
	copiers sync.WaitGroup
	cg      *stats.Cgroup

	cgReady chan struct{} // closed once cg is loaded (or could not be)

	init      *streams                // the init's standard streams, once created
	execs     map[string]*execProcess // by id, those being started included
	execOrder []*execProcess          // the started ones, oldest first

	exits     *exitWatch
	stopExits func()          // ends the reaper's calls of exits.deliver
	ctx       context.Context // ends with the service
	stop      context.CancelFunc
	shutOnce  sync.Once
}

var _ api.ShimService = (*service)(nil)

// newService starts watching the reaper's exits; stop it with close.
func newService(cfg ServiceConfig) *service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{cfg: cfg, log: cfg.Logger, exited: make(chan struct{}), execs: map[string]*execProcess{},
		exits: newExitWatch(), ctx: ctx, stop: cancel}
	s.stopExits = cfg.Reaper.Notify(s.exits.deliver)
	return s
}

// close stops the exit watch and lets go of the processes' streams (their
// clients are closed).
func (s *service) close() {
	s.stop()
	s.stopExits()
	s.mu.Lock()
	all := make([]*streams, 0, len(s.execOrder)+1)
	if s.init != nil {
		all = append(all, s.init)
	}
	for _, x := range s.execOrder {
		all = append(all, x.io)
	}
	s.mu.Unlock()
	for _, st := range all {
		st.release()
	}
}

// initExited is told the init's exit by the exit watch, which it must not
// hold up: recording the exit waits for the output to be logged.
func (s *service) initExited(e reaper.Exit) { go s.setExit(e) }

// setExit records the init's exit: on disk first, then for waiters.
func (s *service) setExit(e reaper.Exit) {
	s.mu.Lock()
	ready := s.cgReady
	s.mu.Unlock()
	if ready != nil {
		<-ready // the OOM verdict needs the cgroup
	}
	s.mu.Lock()
	cg := s.cg
	s.mu.Unlock()
	// A process of the container OOM-killed in its life (the init or
	// another): the kernel counted the kill before the victim died. The
	// cgroup is the container's own, made by its create.
	oom := false
	if cg != nil {
		n, err := cg.OOMKills()
		oom = err == nil && n > 0
	}
	ex := api.Exit{Pid: e.Pid, ExitCode: e.Status, ExitedAt: e.Timestamp.UTC(), OOMKilled: oom}
	b, _ := json.Marshal(ex)
	if err := atomicfile.WriteFile(filepath.Join(s.cfg.Bundle, api.ExitFile), b, 0o644, false); err != nil {
		s.log.Error("write exit status", "error", err)
	}
	// The exit is told once the container's output is in its log: a
	// waiter reads a complete log. Bounded: a process that left the
	// container may hold its pipes open. (Create, holding s.mu, started
	// the copiers before the lock above was taken.)
	s.awaitCopiers(logDrainWait)
	s.mu.Lock()
	s.exit = &ex
	s.status = api.Status_STOPPED
	init := s.init
	s.mu.Unlock()
	close(s.exited)
	// Then the attached clients get their Exit frame.
	init.exit(e.Status)
}

func (s *service) Create(ctx context.Context, req *api.CreateRequest) (*api.CreateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != api.Status_UNKNOWN {
		return nil, api.ToStatus(fmt.Errorf("container %s: %w", s.cfg.ID, errdefs.ErrAlreadyExists))
	}
	// The exit status of a previous run of the container (a stopped
	// container created again under a new shim) must not pass for this
	// one's.
	if err := os.Remove(filepath.Join(s.cfg.Bundle, api.ExitFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, api.ToStatus(fmt.Errorf("remove the exit status of a previous run: %w", err))
	}
	lo := req.GetLog()
	path := lo.GetPath()
	if path == "" {
		path = filepath.Join(s.cfg.Bundle, s.cfg.ID+"-json.log")
	}
	logw, err := logging.NewWriter(path, logging.Options{MaxSize: lo.GetMaxSize(), MaxFiles: int(lo.GetMaxFiles())})
	if err != nil {
		return nil, api.ToStatus(fmt.Errorf("open log: %w", err))
	}
	mounts := make([]runtime.Mount, len(req.GetRootfs()))
	for i, m := range req.GetRootfs() {
		mounts[i] = runtime.Mount{Type: m.GetType(), Source: m.GetSource(), Options: m.GetOptions()}
	}
	opts := runtime.CreateOptions{ID: s.cfg.ID, Bundle: s.cfg.Bundle, Mounts: mounts, Terminal: req.GetTerminal()}
	// The output is logged: from the terminal (all of it "stdout"), or
	// from a pipe per stream. Without a terminal, stdin is a pipe when
	// asked for, else /dev/null.
	var pp *pipes
	if !req.GetTerminal() {
		if pp, err = newPipes(req.GetStdin()); err != nil {
			logw.Close()
			return nil, api.ToStatus(err)
		}
		opts.Stdin, opts.Stdout, opts.Stderr = pp.in, pp.out, pp.err
	}
	// A create runs to its end even if its caller goes (a daemon killed
	// meanwhile): cut short, the runtime could leave a container and its
	// waiting init that nothing knows of. The next daemon finds it created.
	t := s.exits.expect()
	p, err := s.cfg.Driver.Create(context.WithoutCancel(ctx), opts)
	if pp != nil {
		pp.closeProcess()
	}
	if err == nil && req.GetTerminal() && p.Console == nil {
		// A driver that says it made a terminal and did not.
		s.cfg.Driver.Delete(context.WithoutCancel(ctx), s.cfg.ID, s.cfg.Bundle, true)
		err = errors.New("the runtime gave no terminal")
	}
	if err != nil {
		s.exits.cancel(t)
		if pp != nil {
			pp.closeShim()
		}
		logw.Close()
		return nil, api.ToStatus(fmt.Errorf("create container %s: %w", s.cfg.ID, err))
	}
	s.logw, s.pid, s.status = logw, p.Pid, api.Status_CREATED
	copier := func(stream string, r io.Reader, c io.Closer) {
		defer s.copiers.Done()
		defer c.Close()
		if err := logw.Copy(stream, r); err != nil {
			s.log.Error("container log", "stream", stream, "error", err)
			io.Copy(io.Discard, r) // never block the container on its output
		}
	}
	if req.GetTerminal() {
		s.init = newStreams(true, p.Console, nil, holdDropOldest, false)
		s.init.onResize = p.Resize
		s.copiers.Add(1)
		go copier("stdout", io.TeeReader(ptyReader{p.Console}, s.init.tee(frame.Stdout)), p.Console)
	} else {
		s.init = newStreams(false, nil, pp.inW, holdNone, false)
		s.copiers.Add(2)
		go copier("stdout", io.TeeReader(pp.outR, s.init.tee(frame.Stdout)), pp.outR)
		go copier("stderr", io.TeeReader(pp.errR, s.init.tee(frame.Stderr)), pp.errR)
	}
	// The watch may call initExited at once: setExit waits for s.mu, so
	// the copiers are counted before it waits for them.
	s.exits.register(t, p.Pid, s.initExited)
	s.cfg.Reaper.Watch(p.Pid)
	// Loading the cgroup reads many files: keep it off the start path.
	s.cgReady = make(chan struct{})
	go s.afterCreate()
	return &api.CreateResponse{Pid: uint32(p.Pid)}, nil
}

// afterCreate does what can wait until Create has answered: it reaps on
// SIGCHLD for a container in the shim's pid namespace, lets go of the
// host's network namespace directory (leaveNetnsDir), and loads the
// container's cgroup (for stats and the OOM verdict); cgReady is closed
// once it is done.
func (s *service) afterCreate() {
	defer close(s.cgReady)
	l, err := readBundleLinux(s.cfg.Bundle)
	if !l.ownsPIDNamespace() {
		// Its orphans come to the shim, which cannot know their pids (nor
		// can it tell without the bundle's config).
		s.cfg.Reaper.ReapOnSignal()
	}
	if ns := l.netns(); ns != "" {
		if err := leaveNetnsDir(ns); err != nil {
			s.log.Warn("leave the network namespaces' directory", "path", ns, "error", err)
		}
	}
	path := l.cgroupsPath()
	if err != nil || path == "" {
		s.log.Warn("no cgroup to watch", "error", err)
		return
	}
	cg, err := stats.Load(path)
	if err != nil {
		s.log.Warn("load cgroup", "path", path, "error", err)
		return
	}
	s.mu.Lock()
	s.cg = cg
	s.mu.Unlock()
}

// bundleLinux is what the shim reads of the bundle's config.json.
type bundleLinux struct {
	CgroupsPath string `json:"cgroupsPath"`
	Namespaces  []struct {
		Type string `json:"type"`
		Path string `json:"path"`
	} `json:"namespaces"`
}

// readBundleLinux reads the "linux" object of the bundle's config.json
// (nil when there is none).
func readBundleLinux(bundle string) (*bundleLinux, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec struct {
		Linux *bundleLinux `json:"linux"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, err
	}
	return spec.Linux, nil
}

// cgroupsPath is linux.cgroupsPath ("" without a "linux" object).
func (l *bundleLinux) cgroupsPath() string {
	if l == nil {
		return ""
	}
	return l.CgroupsPath
}

// netns is the path of the network namespace the container joins ("" for
// one of its own, the host's, or without a "linux" object).
func (l *bundleLinux) netns() string {
	if l == nil {
		return ""
	}
	for _, ns := range l.Namespaces {
		if ns.Type == "network" {
			return ns.Path
		}
	}
	return ""
}

// ownsPIDNamespace tells whether the container's processes are in a pid
// namespace other than the shim's: then their orphans go to its init, not
// to the shim.
func (l *bundleLinux) ownsPIDNamespace() bool {
	if l == nil {
		return false
	}
	for _, ns := range l.Namespaces {
		if ns.Type != "pid" {
			continue
		}
		if ns.Path == "" {
			return true
		}
		joined, err1 := os.Stat(ns.Path)
		own, err2 := os.Stat("/proc/self/ns/pid")
		return err1 == nil && err2 == nil && !os.SameFile(joined, own)
	}
	return false
}

// cgroupsPath reads linux.cgroupsPath from the bundle's config.json.
func cgroupsPath(bundle string) (string, error) {
	l, err := readBundleLinux(bundle)
	return l.cgroupsPath(), err
}

func (s *service) Start(ctx context.Context, _ *api.StartRequest) (*api.StartResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != api.Status_CREATED {
		return nil, api.ToStatus(fmt.Errorf("start container %s: it is %s, not created: %w", s.cfg.ID, s.status, errdefs.ErrConflict))
	}
	// A start runs to its end even if its caller goes (a daemon killed
	// meanwhile): cut short, the container could run while the shim says
	// created.
	if err := s.cfg.Driver.Start(context.WithoutCancel(ctx), s.cfg.ID); err != nil {
		return nil, api.ToStatus(fmt.Errorf("start container %s: %w", s.cfg.ID, err))
	}
	if s.status == api.Status_CREATED {
		s.status = api.Status_RUNNING
	}
	return &api.StartResponse{Pid: uint32(s.pid)}, nil
}

func (s *service) State(context.Context, *api.StateRequest) (*api.StateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &api.StateResponse{Id: s.cfg.ID, Bundle: s.cfg.Bundle, Status: s.status, Pid: uint32(s.pid)}
	if s.exit != nil {
		r.ExitCode, r.ExitedAt, r.OomKilled = int32(s.exit.ExitCode), api.NewTimestamp(s.exit.ExitedAt), s.exit.OOMKilled
	}
	return r, nil
}

func (s *service) Kill(ctx context.Context, req *api.KillRequest) (*api.KillResponse, error) {
	s.mu.Lock()
	status := s.status
	s.mu.Unlock()
	switch {
	case status == api.Status_UNKNOWN:
		return nil, api.ToStatus(fmt.Errorf("container %s is not created: %w", s.cfg.ID, errdefs.ErrNotFound))
	case status == api.Status_STOPPED && !req.GetAll():
		return nil, api.ToStatus(fmt.Errorf("container %s: process already finished: %w", s.cfg.ID, errdefs.ErrNotFound))
	}
	sig := syscall.Signal(req.GetSignal())
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	if err := s.cfg.Driver.Kill(ctx, s.cfg.ID, sig, req.GetAll()); err != nil {
		return nil, api.ToStatus(fmt.Errorf("kill container %s: %w", s.cfg.ID, err))
	}
	return &api.KillResponse{}, nil
}

func (s *service) Wait(ctx context.Context, _ *api.WaitRequest) (*api.WaitResponse, error) {
	s.mu.Lock()
	status := s.status
	s.mu.Unlock()
	if status == api.Status_UNKNOWN {
		return nil, api.ToStatus(fmt.Errorf("container %s is not created: %w", s.cfg.ID, errdefs.ErrNotFound))
	}
	select {
	case <-s.exited:
	case <-ctx.Done():
		return nil, api.ToStatus(ctx.Err())
	}
	s.mu.Lock()
	e := *s.exit
	s.mu.Unlock()
	return &api.WaitResponse{ExitCode: int32(e.ExitCode), ExitedAt: api.NewTimestamp(e.ExitedAt), OomKilled: e.OOMKilled}, nil
}

// exitWait bounds how long Delete waits for the init of a created (never
// started) container to be reaped after the runtime killed it, and for the
// log pipes to drain.
const exitWait = 10 * time.Second

func (s *service) Delete(ctx context.Context, _ *api.DeleteRequest) (*api.DeleteResponse, error) {
	s.mu.Lock()
	status := s.status
	s.mu.Unlock()
	switch status {
	case api.Status_UNKNOWN:
		return nil, api.ToStatus(fmt.Errorf("container %s is not created: %w", s.cfg.ID, errdefs.ErrNotFound))
	case api.Status_RUNNING:
		return nil, api.ToStatus(fmt.Errorf("delete container %s: it is running; kill it first: %w", s.cfg.ID, errdefs.ErrConflict))
	}
	if err := s.cfg.Driver.Delete(ctx, s.cfg.ID, s.cfg.Bundle, true); err != nil {
		return nil, api.ToStatus(fmt.Errorf("delete container %s: %w", s.cfg.ID, err))
	}
	select {
	case <-s.exited:
	case <-time.After(exitWait):
		return nil, api.ToStatus(fmt.Errorf("delete container %s: init process %d not reaped: %w", s.cfg.ID, s.pid, errdefs.ErrUnavailable))
	case <-ctx.Done():
		return nil, api.ToStatus(ctx.Err())
	}
	s.drainLogs()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted = true
	e := *s.exit
	return &api.DeleteResponse{Pid: uint32(e.Pid), ExitCode: int32(e.ExitCode), ExitedAt: api.NewTimestamp(e.ExitedAt), OomKilled: e.OOMKilled}, nil
}

// logDrainWait bounds how long the exit waits for the container's output
// to reach its log, and an exec process's session for its output to reach
// the clients. (A variable for the tests.)
var logDrainWait = 2 * time.Second

// awaitCopiers waits up to d for the log copiers to reach the end of the
// pipes; it reports whether they did.
func (s *service) awaitCopiers(d time.Duration) bool {
	done := make(chan struct{})
	go func() { s.copiers.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// drainLogs waits (bounded) for the log copiers to reach the end of the
// pipes, then closes the log.
func (s *service) drainLogs() {
	if !s.awaitCopiers(exitWait) {
		s.log.Warn("container log pipes still open after the container was deleted")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logw != nil {
		s.logw.Close()
		s.logw = nil
	}
}

// cgroup returns the container's cgroup once it is loaded, or nil.
func (s *service) cgroup() *stats.Cgroup {
	s.mu.Lock()
	ready := s.cgReady
	s.mu.Unlock()
	if ready == nil {
		return nil
	}
	<-ready
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cg
}

func (s *service) Stats(context.Context, *api.StatsRequest) (*api.StatsResponse, error) {
	cg := s.cgroup()
	if cg == nil {
		return nil, api.ToStatus(fmt.Errorf("container %s has no cgroup: %w", s.cfg.ID, errdefs.ErrNotFound))
	}
	st, err := cg.Stats()
	if err != nil {
		return nil, api.ToStatus(fmt.Errorf("stats of container %s: %w", s.cfg.ID, err))
	}
	return &api.StatsResponse{
		CpuUsageNanos: st.CPUUsageNanos, MemoryUsage: st.MemoryUsage, MemoryCache: st.MemoryCache,
		MemoryLimit: st.MemoryLimit, MemoryMaxUsage: st.MemoryMaxUsage, PidsCurrent: st.PidsCurrent,
		PidsLimit: st.PidsLimit, BlkioReadBytes: st.BlkioReadBytes, BlkioWriteBytes: st.BlkioWriteBytes, OomKills: st.OOMKills,
	}, nil
}

func (s *service) Pids(context.Context, *api.PidsRequest) (*api.PidsResponse, error) {
	cg := s.cgroup()
	if cg == nil {
		return nil, api.ToStatus(fmt.Errorf("container %s has no cgroup: %w", s.cfg.ID, errdefs.ErrNotFound))
	}
	pids, err := cg.Pids()
	if err != nil {
		return nil, api.ToStatus(fmt.Errorf("processes of container %s: %w", s.cfg.ID, err))
	}
	r := &api.PidsResponse{Pids: make([]uint32, len(pids))}
	for i, p := range pids {
		r.Pids[i] = uint32(p)
	}
	return r, nil
}

func (s *service) Connect(context.Context, *api.ConnectRequest) (*api.ConnectResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &api.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: uint32(s.pid), Version: s.cfg.Version}, nil
}

func (s *service) Shutdown(_ context.Context, req *api.ShutdownRequest) (*api.ShutdownResponse, error) {
	s.mu.Lock()
	busy := s.status != api.Status_UNKNOWN && !s.deleted
	s.mu.Unlock()
	if busy && !req.GetNow() {
		return nil, api.ToStatus(fmt.Errorf("shut down the shim of %s: the container is not deleted: %w", s.cfg.ID, errdefs.ErrConflict))
	}
	s.shutOnce.Do(func() {
		if s.cfg.Shutdown != nil {
			go s.cfg.Shutdown()
		}
	})
	return &api.ShutdownResponse{}, nil
}
