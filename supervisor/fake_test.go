package supervisor

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/client"
)

// Fakes of the supervisor's dependencies: an image store with one image
// per name, a rootfs manager that mounts nothing, and shims that run no
// process. They let the state machine be tested without root.

type fakeImages struct{}

func (fakeImages) Image(_ context.Context, ref string, pull bool) (Image, error) {
	if ref == "missing" {
		return Image{}, fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
	}
	return Image{Name: "docker.io/library/" + ref + ":latest", ID: "sha256:" + fmt.Sprintf("%064x", len(ref)),
		Config: v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}}, nil
}

type fakeRootfs struct {
	mu       sync.Mutex
	prepared map[string]bool
}

func (f *fakeRootfs) Prepare(_ context.Context, id string, _ []string, _ rootfs.Options) ([]rootfs.Mount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prepared[id] = true
	return []rootfs.Mount{{Type: "bind", Source: "/nowhere/" + id, Options: []string{"rbind"}}}, nil
}

func (f *fakeRootfs) Remove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.prepared, id)
	return nil
}

// fakeShims is a set of shims, by address, as the fake processes would
// be; a test makes containers exit (exit) and shims die (kill).
type fakeShims struct {
	mu       sync.Mutex
	n        int
	shims    map[string]*fakeShim   // live shims by address
	exits    map[string]client.Exit // exit.json by container id
	cleanups map[string]int         // Cleanup calls by id
	// createHook, when set, runs at the start of every Create (outside
	// the lock): a test blocks or fails creates with it.
	createHook func(id string) error
	// ignoreTERM makes containers survive SIGTERM.
	ignoreTERM bool
	// streams are the shim's ends of the attached streams.
	streams []net.Conn
}

func newFakeShims() *fakeShims {
	return &fakeShims{shims: map[string]*fakeShim{}, exits: map[string]client.Exit{}, cleanups: map[string]int{}}
}

type fakeShim struct {
	f      *fakeShims
	id     string
	addr   string
	status client.Status
	pid    int
	exit   client.Exit
	exited chan struct{} // closed when the container exits
	gone   chan struct{} // closed when the shim dies or shuts down
	create client.CreateOptions
	execs  []client.ExecOptions
	resize [3]int // exec index (-1: init), rows, cols of the last Resize
}

func (f *fakeShims) Address(id, _ string) string { return "fake://" + id }

func (f *fakeShims) Launch(_ context.Context, id, bundle string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	addr := f.Address(id, bundle)
	if f.shims[addr] != nil {
		return "", fmt.Errorf("shim socket %s: a shim already serves there: %w", addr, errdefs.ErrAlreadyExists)
	}
	f.n++
	f.shims[addr] = &fakeShim{f: f, id: id, addr: addr, status: client.StatusUnknown, exited: make(chan struct{}), gone: make(chan struct{})}
	return addr, nil
}

func (f *fakeShims) Dial(_ context.Context, addr string) (Shim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sh := f.shims[addr]
	if sh == nil {
		return nil, fmt.Errorf("dial %s: %w", addr, errdefs.ErrUnavailable)
	}
	return sh, nil
}

func (f *fakeShims) Cleanup(_ context.Context, id, _ string) (*client.Exit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups[id]++
	for addr, sh := range f.shims {
		if sh.id == id {
			sh.die()
			delete(f.shims, addr)
		}
	}
	if e, ok := f.exits[id]; ok {
		return &e, nil
	}
	return nil, nil
}

// live returns the live shims of container id.
func (f *fakeShims) live(id string) []*fakeShim {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeShim
	for _, sh := range f.shims {
		if sh.id == id {
			out = append(out, sh)
		}
	}
	return out
}

func (f *fakeShims) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.shims)
}

// exitContainer makes container id's process exit with code.
func (f *fakeShims) exitContainer(t *testing.T, id string, code int) {
	t.Helper()
	shims := f.live(id)
	if len(shims) != 1 {
		t.Fatalf("container %s has %d shims", id[:12], len(shims))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	shims[0].exitLocked(code)
}

// kill makes container id's shim die (its process too, as the clean-up
// would find it); keepExit says whether it left its exit status on disk.
func (f *fakeShims) kill(t *testing.T, id string, keepExit bool) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for addr, sh := range f.shims {
		if sh.id == id {
			if !keepExit {
				delete(f.exits, id)
			}
			sh.die()
			delete(f.shims, addr)
		}
	}
}

func (sh *fakeShim) die() {
	select {
	case <-sh.gone:
	default:
		close(sh.gone)
	}
}

func (sh *fakeShim) exitLocked(code int) {
	if sh.status != client.StatusRunning && sh.status != client.StatusCreated {
		return
	}
	sh.status = client.StatusStopped
	sh.exit = client.Exit{Pid: sh.pid, ExitCode: code, ExitedAt: time.Now().UTC()}
	sh.f.exits[sh.id] = sh.exit
	close(sh.exited)
}

func (sh *fakeShim) alive() error {
	select {
	case <-sh.gone:
		return fmt.Errorf("shim: ttrpc: closed: %w", errdefs.ErrUnavailable)
	default:
		return nil
	}
}

func (sh *fakeShim) Connect(context.Context) (client.Info, error) {
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	return client.Info{ShimPid: 1000 + sh.f.n, TaskPid: sh.pid, Version: "fake"}, sh.alive()
}

func (sh *fakeShim) Create(_ context.Context, o client.CreateOptions) (int, error) {
	if h := sh.f.createHook; h != nil {
		if err := h(sh.id); err != nil {
			return 0, err
		}
	}
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	if err := sh.alive(); err != nil {
		return 0, err
	}
	if sh.status != client.StatusUnknown {
		return 0, fmt.Errorf("create: %w", errdefs.ErrAlreadyExists)
	}
	if len(o.Rootfs) == 0 || o.LogPath == "" {
		return 0, fmt.Errorf("create without a rootfs or log: %w", errdefs.ErrInvalidArgument)
	}
	delete(sh.f.exits, sh.id) // the shim removes a stale exit.json
	sh.status, sh.pid, sh.create = client.StatusCreated, 2000+sh.f.n, o
	return sh.pid, nil
}

func (sh *fakeShim) Start(context.Context) (int, error) {
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	if err := sh.alive(); err != nil {
		return 0, err
	}
	if sh.status != client.StatusCreated {
		return 0, fmt.Errorf("start: it is %s: %w", sh.status, errdefs.ErrConflict)
	}
	sh.status = client.StatusRunning
	return sh.pid, nil
}

func (sh *fakeShim) State(context.Context) (client.State, error) {
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	return client.State{Status: sh.status, Pid: sh.pid, Exit: sh.exit}, sh.alive()
}

func (sh *fakeShim) Kill(_ context.Context, sig syscall.Signal, _ bool) error {
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	if err := sh.alive(); err != nil {
		return err
	}
	if sh.status != client.StatusRunning && sh.status != client.StatusCreated {
		return fmt.Errorf("kill: process already finished: %w", errdefs.ErrNotFound)
	}
	if sig == syscall.SIGTERM && sh.f.ignoreTERM {
		return nil
	}
	sh.exitLocked(128 + int(sig))
	return nil
}

func (sh *fakeShim) Wait(ctx context.Context) (client.Exit, error) {
	select {
	case <-sh.exited:
		sh.f.mu.Lock()
		defer sh.f.mu.Unlock()
		return sh.exit, nil
	case <-sh.gone:
		return client.Exit{}, sh.alive()
	case <-ctx.Done():
		return client.Exit{}, ctx.Err()
	}
}

func (sh *fakeShim) Delete(context.Context) (client.Exit, error) {
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	if err := sh.alive(); err != nil {
		return client.Exit{}, err
	}
	switch sh.status {
	case client.StatusUnknown:
		return client.Exit{}, fmt.Errorf("delete: not created: %w", errdefs.ErrNotFound)
	case client.StatusRunning:
		return client.Exit{}, fmt.Errorf("delete: running: %w", errdefs.ErrConflict)
	case client.StatusCreated:
		sh.exitLocked(137)
	}
	return sh.exit, nil
}

func (sh *fakeShim) Stats(context.Context) (client.Stats, error) {
	return client.Stats{MemoryUsage: 1 << 20, PidsCurrent: 1}, sh.alive()
}

func (sh *fakeShim) Shutdown(context.Context, bool) error {
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	sh.die()
	delete(sh.f.shims, sh.addr)
	return nil
}

func (sh *fakeShim) Close() error { return nil }

func (sh *fakeShim) Exec(_ context.Context, o client.ExecOptions) (int, error) {
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	if err := sh.alive(); err != nil {
		return 0, err
	}
	if sh.status != client.StatusRunning {
		return 0, fmt.Errorf("exec: it is %s: %w", sh.status, errdefs.ErrConflict)
	}
	sh.execs = append(sh.execs, o)
	return 3000 + len(sh.execs), nil
}

func (sh *fakeShim) execProcess(i int) client.ExecProcess {
	o := sh.execs[i]
	return client.ExecProcess{ID: o.ID, Pid: 3001 + i, Terminal: o.Terminal, Status: client.StatusRunning}
}

func (sh *fakeShim) ExecState(_ context.Context, id string) (client.ExecProcess, error) {
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	for i, o := range sh.execs {
		if o.ID == id {
			return sh.execProcess(i), sh.alive()
		}
	}
	return client.ExecProcess{}, fmt.Errorf("exec %s: %w", id, errdefs.ErrNotFound)
}

func (sh *fakeShim) ListExecs(context.Context) ([]client.ExecProcess, error) {
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	var out []client.ExecProcess
	for i := range sh.execs {
		out = append(out, sh.execProcess(i))
	}
	return out, sh.alive()
}

func (sh *fakeShim) Resize(_ context.Context, exec string, rows, cols uint16) error {
	sh.f.mu.Lock()
	defer sh.f.mu.Unlock()
	i := -1
	if exec != "" {
		i = slices.IndexFunc(sh.execs, func(o client.ExecOptions) bool { return o.ID == exec })
		if i < 0 {
			return fmt.Errorf("exec %s: %w", exec, errdefs.ErrNotFound)
		}
	}
	sh.resize = [3]int{i, int(rows), int(cols)}
	return sh.alive()
}

// fakeStream is an attached stream: the test holds the other end.
type fakeStream struct {
	net.Conn
	req      api.AttachRequest
	terminal bool
}

func (s *fakeStream) CloseWrite() error { return nil }
func (s *fakeStream) Terminal() bool    { return s.terminal }

// Attach attaches to the live shim of the container whose bundle is
// bundle (the fake's bundles end in the container id).
func (f *fakeShims) Attach(_ context.Context, bundle string, req api.AttachRequest) (Stream, error) {
	id := filepath.Base(bundle)
	shims := f.live(id)
	if len(shims) != 1 {
		return nil, fmt.Errorf("attach %s: no shim: %w", id, errdefs.ErrUnavailable)
	}
	sh := shims[0]
	f.mu.Lock()
	defer f.mu.Unlock()
	terminal := sh.create.Terminal
	if req.Exec != "" {
		i := slices.IndexFunc(sh.execs, func(o client.ExecOptions) bool { return o.ID == req.Exec })
		if i < 0 {
			return nil, fmt.Errorf("exec %s: %w", req.Exec, errdefs.ErrNotFound)
		}
		terminal = sh.execs[i].Terminal
	}
	a, b := net.Pipe()
	f.streams = append(f.streams, b)
	return &fakeStream{Conn: a, req: req, terminal: terminal}, nil
}

// fakeDaemon is a supervisor over the fakes, reopenable as after a
// daemon restart.
type fakeDaemon struct {
	t      *testing.T
	cfg    Config
	sup    *Supervisor
	shims  *fakeShims
	rootfs *fakeRootfs
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{t: t, shims: newFakeShims(), rootfs: &fakeRootfs{prepared: map[string]bool{}}}
	d.cfg = Config{Root: t.TempDir(), State: t.TempDir(), Images: fakeImages{}, Rootfs: d.rootfs, Shims: d.shims, StopTimeout: time.Second}
	d.open()
	t.Cleanup(func() {
		if d.sup != nil {
			d.sup.Close()
		}
	})
	return d
}

func (d *fakeDaemon) open() {
	d.t.Helper()
	sup, err := Open(context.Background(), d.cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	d.sup = sup
}

// restart closes the supervisor and opens it again (containers keep
// running, as with a real daemon restart).
func (d *fakeDaemon) restart() {
	d.t.Helper()
	d.sup.Close()
	d.open()
}

func (d *fakeDaemon) create(name string, mod func(*CreateRequest)) *Container {
	d.t.Helper()
	req := CreateRequest{Image: "busybox", Name: name}
	if mod != nil {
		mod(&req)
	}
	c, err := d.sup.Create(context.Background(), req)
	if err != nil {
		d.t.Fatalf("create %s: %v", name, err)
	}
	return c
}

func (d *fakeDaemon) get(id string) *Container {
	d.t.Helper()
	c, err := d.sup.Get(context.Background(), id)
	if err != nil {
		d.t.Fatalf("get %s: %v", id, err)
	}
	return c
}

// await polls until cond holds for container id (background work: exits,
// restarts), failing after a few seconds.
func (d *fakeDaemon) await(id, what string, cond func(*Container) bool) *Container {
	d.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := d.sup.Get(context.Background(), id)
		if err == nil && cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("container %s: not %s (last: %+v, %v)", id[:12], what, c, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func inState(st State) func(*Container) bool {
	return func(c *Container) bool { return c.State == st }
}
