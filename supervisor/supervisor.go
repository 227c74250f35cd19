package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/atomicfile"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim"
	"github.com/raind/condenser/shim/api"
)

// Config configures a Supervisor.
type Config struct {
	Root        string // --root: containers/<id>/ (upper, work, log, etc files), containers.db
	State       string // --state (tmpfs): shims/<id>/ bundles, runtime/ state
	Runtime     string // runtime binary or path
	ShimBinary  string // condenser-shim
	Images      *imagestore.Store
	Rootfs      *rootfs.Manager
	CgroupV2    bool
	Logger      *slog.Logger
	StopTimeout time.Duration // default grace period of stop (10 s)
	// SpareShim keeps a shim launched ahead for the next container, off
	// the start path (see spare.go).
	SpareShim bool
}

// Supervisor owns the containers: their records, their shims and their
// lifecycle. Requests on one container are serialized; different
// containers proceed in parallel.
type Supervisor struct {
	cfg  Config
	log  *slog.Logger
	recs *records
	db   *bolt.DB

	mu     sync.Mutex
	locks  map[string]*sync.Mutex   // per container
	shims  map[string]*shim.Client  // connected shims, by id
	exited map[string]chan struct{} // closed when the current run ends

	spare       *spare        // a shim launched for the next container
	spareFilled chan struct{} // while a spare is being launched: closed when it is

	events *hub
	ctx    context.Context // lives as long as the supervisor
	cancel context.CancelFunc
	wg     sync.WaitGroup // monitors
}

// Open opens the container records and reconnects to every live shim,
// reconciling what happened while the daemon was away.
func Open(ctx context.Context, cfg Config) (*Supervisor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	for _, d := range []string{filepath.Join(cfg.Root, "containers"), filepath.Join(cfg.State, "shims"), filepath.Join(cfg.State, "runtime")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(filepath.Join(cfg.Root, "containers.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open container records: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucketContainers); return err }); err != nil {
		db.Close()
		return nil, err
	}
	recs := &records{db: db}
	if err := recs.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("read container records: %w", err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{cfg: cfg, log: cfg.Logger, recs: recs, db: db,
		locks: map[string]*sync.Mutex{}, shims: map[string]*shim.Client{}, exited: map[string]chan struct{}{},
		events: newHub(), ctx: sctx, cancel: cancel}
	if err := s.reconnect(ctx); err != nil {
		s.Close()
		return nil, err
	}
	all, err := s.recs.all()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.sweep(s.orphans(all))
	s.resume(all)
	return s, nil
}

// Close disconnects from the shims (containers keep running) and closes the
// records.
func (s *Supervisor) Close() error {
	s.cancel()
	s.mu.Lock()
	for _, c := range s.shims {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.closeSpare()
	return s.db.Close()
}

func (s *Supervisor) lock(id string) func() {
	s.mu.Lock()
	l := s.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[id] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// locked resolves ref, takes the container's lock and reads the record
// again under it; the caller calls unlock.
func (s *Supervisor) locked(ref string) (c *Container, unlock func(), err error) {
	if c, err = s.get(ref); err != nil {
		return nil, nil, err
	}
	unlock = s.lock(c.ID)
	if c, err = s.get(c.ID); err != nil {
		unlock()
		return nil, nil, err
	}
	return c, unlock, nil
}

func (s *Supervisor) get(ref string) (*Container, error) {
	all, err := s.recs.all()
	if err != nil {
		return nil, err
	}
	return resolve(all, ref)
}

// List returns every container record.
func (s *Supervisor) List(ctx context.Context) ([]*Container, error) { return s.recs.all() }

// Get returns one container by id, id prefix or name.
func (s *Supervisor) Get(ctx context.Context, ref string) (*Container, error) { return s.get(ref) }

// ImageUsers lists the containers created from an image (for image removal).
func (s *Supervisor) ImageUsers(ctx context.Context, imageID string) ([]string, error) {
	all, err := s.recs.all()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range all {
		if c.ImageID == imageID {
			out = append(out, c.Name)
		}
	}
	return out, nil
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Supervisor) bundle(id string) string { return filepath.Join(s.cfg.State, "shims", id) }
func (s *Supervisor) containerDir(id string) string {
	return filepath.Join(s.cfg.Root, "containers", id)
}

// LogPath is a container's json-file log.
func (s *Supervisor) LogPath(c *Container) string {
	return filepath.Join(s.containerDir(c.ID), c.ID+"-json.log")
}

// Create makes a container: the image (pulled when absent), its root
// filesystem, its OCI bundle, and its shim, which creates it with the
// runtime. The record exists, as "creating", before anything else does, so
// that a daemon killed midway cleans up at its next start.
func (s *Supervisor) Create(ctx context.Context, req CreateRequest) (*Container, error) {
	if req.Name != "" && !validName.MatchString(req.Name) {
		return nil, fmt.Errorf("container name %q: want letters, digits, '_', '.' or '-', starting with a letter or digit: %w", req.Name, errdefs.ErrInvalidArgument)
	}
	if _, err := parseRestartPolicy(req.RestartPolicy); err != nil {
		return nil, err
	}
	if req.AutoRemove && req.RestartPolicy != "" && req.RestartPolicy != "no" {
		return nil, fmt.Errorf("autoRemove and restartPolicy %q conflict: %w", req.RestartPolicy, errdefs.ErrInvalidArgument)
	}
	img, err := s.cfg.Images.Inspect(ctx, req.Image)
	if errors.Is(err, errdefs.ErrNotFound) {
		img, err = s.cfg.Images.Pull(ctx, req.Image, imagestore.PullOptions{})
	}
	if err != nil {
		return nil, err
	}
	id, spareAddr := s.takeSpare(ctx)
	defer s.fillSpare()
	abandon := func() { // before the record exists
		if spareAddr != "" {
			s.dropShim(context.WithoutCancel(ctx), id, spareAddr)
		}
		os.RemoveAll(s.containerDir(id))
	}
	c := &Container{ID: id, Name: req.Name, Image: img.Name, ImageID: img.ID, ImageDigest: img.Digest, Request: req,
		State: StateCreating, Bundle: s.bundle(id), ShimAddress: spareAddr, CreatingAt: time.Now().UTC()}
	if c.Name == "" {
		c.Name = "condenser-" + id[:12]
	}
	layers := s.cfg.Images.LayerDirs(img)
	spec, err := s.generateSpec(ctx, c, img)
	if err != nil {
		abandon()
		return nil, err
	}
	c.Args = spec.Process.Args
	if err := s.recs.insert(c); err != nil {
		abandon()
		return nil, err
	}
	s.events.publish(Event{Type: "container", Action: "creating", ID: id, Name: c.Name})
	mounts, err := s.cfg.Rootfs.Prepare(ctx, c.ID, layers, rootfs.Options{})
	if err == nil {
		c.RootfsMounts = mounts
		err = s.createRuntime(ctx, c, spec, spareAddr)
	}
	if err != nil {
		s.log.Warn("create failed, cleaning up", "id", id, "error", err)
		s.cleanup(context.WithoutCancel(ctx), c)
		s.recs.delete(id)
		return nil, err
	}
	s.events.publish(Event{Type: "container", Action: "create", ID: id, Name: c.Name})
	return c, nil
}

// generateSpec writes c's /etc files and returns its OCI configuration,
// from its request and its image img.
func (s *Supervisor) generateSpec(ctx context.Context, c *Container, img imagestore.Image) (*specs.Spec, error) {
	cfg, err := s.cfg.Images.Config(ctx, img)
	if err != nil {
		return nil, err
	}
	etc, err := s.writeEtcFiles(c)
	if err != nil {
		return nil, err
	}
	req, layers := c.Request, s.cfg.Images.LayerDirs(img)
	return GenerateSpec(&cfg.Config, SpecRequest{
		ID: c.ID, Name: c.Name, Entrypoint: req.Entrypoint, Command: req.Command, Env: req.Env, WorkingDir: req.WorkingDir,
		User: req.User, Hostname: req.Hostname, Labels: req.Labels, Mounts: req.Mounts, Network: req.Network,
		ReadOnly: req.ReadOnly, Seccomp: true, Memory: req.Memory, CPUs: req.CPUs, PidsLimit: req.PidsLimit,
		CgroupV2: s.cfg.CgroupV2, HostsPath: etc.Hosts, HostnamePath: etc.Hostname, ResolvConfPath: etc.ResolvConf,
	}, func(p string) ([]byte, error) { return rootfs.ReadFile(layers, p) })
}

// writeEtcFiles writes c's /etc files (at create, and again at each start
// of the stopped container).
func (s *Supervisor) writeEtcFiles(c *Container) (EtcFiles, error) {
	return WriteEtcFiles(filepath.Join(s.containerDir(c.ID), "etc"), firstNonEmpty(c.Request.Hostname, c.ID[:12]), c.Request.Network == "host")
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// createRuntime prepares the root filesystem and the bundle, starts the
// shim (unless addr is a spare's) and creates the container in it; the
// record becomes "created".
func (s *Supervisor) createRuntime(ctx context.Context, c *Container, spec *specs.Spec, addr string) error {
	if err := os.MkdirAll(c.Bundle, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(c.Bundle, "config.json"), b, 0o600, false); err != nil {
		return err
	}
	if addr == "" {
		if addr, err = s.launchShim(ctx, c.ID); err != nil {
			return err
		}
	}
	if c.ShimAddress != addr { // the record says how to reach the shim before anything can go wrong with it
		c.ShimAddress = addr
		if err := s.recs.put(c); err != nil {
			return err
		}
	}
	cl, err := shim.Dial(ctx, addr)
	if err != nil {
		return err
	}
	info, err := cl.Connect(ctx)
	if err != nil {
		cl.Close()
		return err
	}
	c.ShimPid = int(info.ShimPid)
	creq := &api.CreateRequest{Log: &api.LogOptions{Path: s.LogPath(c)}}
	for _, m := range c.RootfsMounts {
		creq.Rootfs = append(creq.Rootfs, &api.Mount{Type: m.Type, Source: m.Source, Options: m.Options})
	}
	pid, err := cl.Create(ctx, creq)
	if err != nil {
		cl.Close()
		return err
	}
	c.Pid, c.State, c.CreatedAt = pid, StateCreated, time.Now().UTC()
	if err := s.recs.put(c); err != nil {
		cl.Close()
		return err
	}
	s.mu.Lock()
	s.shims[c.ID] = cl
	s.mu.Unlock()
	return nil
}

// cleanup removes whatever a container has outside its record: shim,
// runtime state, mounts, bundle and container directory. Best effort.
func (s *Supervisor) cleanup(ctx context.Context, c *Container) {
	s.mu.Lock()
	cl := s.shims[c.ID]
	delete(s.shims, c.ID)
	s.mu.Unlock()
	if cl == nil && c.ShimAddress != "" {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		cl, _ = shim.Dial(dctx, c.ShimAddress)
		cancel()
	}
	if cl != nil {
		cl.Kill(ctx, syscall.SIGKILL, true)
		cl.Delete(ctx)
		cl.Shutdown(ctx, true)
		cl.Close()
	} else if pid := shimPid(c.Bundle); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// The runtime's state, cgroups and the bundle's mount, in case the
	// shim could not clean them.
	s.removeRuntimeState(ctx, c.ID)
	rootfs.UnmountAll(filepath.Join(c.Bundle, "rootfs"))
	if err := s.cfg.Rootfs.Remove(ctx, c.ID); err != nil {
		s.log.Warn("remove root filesystem", "id", c.ID, "error", err)
	}
	os.RemoveAll(c.Bundle)
	os.RemoveAll(s.containerDir(c.ID))
}

func (s *Supervisor) client(id string) (*shim.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.shims[id]
	if cl == nil {
		return nil, fmt.Errorf("container %s: no shim: %w", id[:12], errdefs.ErrUnavailable)
	}
	return cl, nil
}

// Start starts a created container, or runs a stopped one again.
func (s *Supervisor) Start(ctx context.Context, ref string) (*Container, error) {
	c, unlock, err := s.locked(ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return c, s.start(ctx, c)
}

// start runs c; called with c's lock held.
func (s *Supervisor) start(ctx context.Context, c *Container) error {
	switch c.State {
	case StateRunning:
		return fmt.Errorf("container %s is already running: %w", c.Name, errdefs.ErrConflict)
	case StateStopped, StateRestarting:
		if err := s.recreate(ctx, c); err != nil {
			return err
		}
	case StateCreated:
	default:
		return fmt.Errorf("container %s is %s: %w", c.Name, c.State, errdefs.ErrConflict)
	}
	cl, err := s.client(c.ID)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.exited[c.ID] = done
	s.mu.Unlock()
	// Not cancelled with the request: a start cut short half-way would
	// leave the container running while its shim says created.
	if _, err := cl.Start(context.WithoutCancel(ctx)); err != nil {
		close(done)
		return err
	}
	c.State, c.StartedAt, c.ExitCode, c.OOMKilled, c.StopRequested = StateRunning, time.Now().UTC(), nil, false, false
	if err := s.recs.put(c); err != nil {
		return err
	}
	s.events.publish(Event{Type: "container", Action: "start", ID: c.ID, Name: c.Name})
	s.monitor(c.ID, cl, done)
	return nil
}

// recreate gives a stopped container a new shim and runtime container.
func (s *Supervisor) recreate(ctx context.Context, c *Container) error {
	s.mu.Lock()
	old := s.shims[c.ID]
	delete(s.shims, c.ID)
	s.mu.Unlock()
	if old != nil {
		old.Delete(ctx)
		old.Shutdown(ctx, true)
		old.Close()
	}
	runtimeDelete(ctx, s.cfg.Runtime, filepath.Join(s.cfg.State, "runtime"), c.ID)
	os.Remove(filepath.Join(c.Bundle, shim.ExitFile))
	// The configuration is generated again: the bundle is on the state
	// directory (tmpfs), gone after a reboot, and the /etc files are
	// written again. The writable layer is kept: a restarted container sees
	// its changes.
	img, err := s.cfg.Images.Inspect(ctx, c.ImageID)
	if err != nil {
		return fmt.Errorf("container %s: its image: %w", c.Name, err)
	}
	spec, err := s.generateSpec(ctx, c, img)
	if err != nil {
		return err
	}
	return s.createRuntime(ctx, c, spec, "")
}

// monitor waits for the container's exit in the background and records it.
func (s *Supervisor) monitor(id string, cl *shim.Client, done chan struct{}) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		e, err := cl.Wait(s.ctx)
		if s.ctx.Err() != nil {
			return // the daemon stops; the container carries on
		}
		if err != nil {
			// The shim is gone: the exit status may still be on disk.
			s.log.Warn("lost the shim", "id", id, "error", err)
		}
		s.exitedContainer(id, e, err, done)
	}()
}

// exitedContainer records an exit, then applies the restart policy.
func (s *Supervisor) exitedContainer(id string, e shim.Exit, waitErr error, done chan struct{}) {
	unlock := s.lock(id)
	c, err := s.get(id)
	if err != nil {
		unlock()
		close(done)
		return
	}
	if waitErr != nil {
		// The shim is gone: the exit status may still be on disk, and
		// what the shim leaves of the container must go.
		if de, err := shim.ReadExit(c.Bundle); err == nil {
			e, waitErr = de, nil
		}
		s.reap(s.ctx, c)
	}
	c.State, c.StoppedAt = StateStopped, time.Now().UTC()
	if waitErr == nil {
		code := e.ExitCode
		c.ExitCode, c.OOMKilled, c.StoppedAt = &code, e.OOMKilled, e.ExitedAt
	} else {
		c.ExitCode = nil // unknown
	}
	s.recs.put(c)
	close(done)
	s.events.publish(Event{Type: "container", Action: "die", ID: c.ID, Name: c.Name, ExitCode: c.ExitCode})
	policy, _ := parseRestartPolicy(c.Request.RestartPolicy)
	code := -1
	if c.ExitCode != nil {
		code = *c.ExitCode
	}
	restart := waitErr == nil && policy.shouldRestart(code, c.RestartCount, c.StopRequested)
	autoRemove := c.Request.AutoRemove && !restart
	unlock()
	switch {
	case autoRemove:
		if _, err := s.Delete(s.ctx, id, true); err != nil {
			s.log.Warn("auto-remove", "id", id, "error", err)
		}
	case restart:
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.restartLater(id, c.RestartCount)
		}()
	}
}

// restartLater restarts a container after a back-off that doubles with each
// restart (100 ms up to 1 min), as Docker does.
func (s *Supervisor) restartLater(id string, count int) {
	delay := 100 * time.Millisecond << min(count, 10)
	delay = min(delay, time.Minute)
	select {
	case <-time.After(delay):
	case <-s.ctx.Done():
		return
	}
	defer s.lock(id)()
	c, err := s.get(id)
	if err != nil || c.State != StateStopped || c.StopRequested {
		return // deleted, started by hand, or stopped by a user meanwhile
	}
	c.RestartCount++
	c.State = StateRestarting
	if err := s.recs.put(c); err != nil {
		s.log.Warn("restart", "id", id, "error", err)
		return
	}
	if err := s.start(s.ctx, c); err != nil {
		s.log.Warn("restart", "id", id, "error", err)
		c.State = StateStopped
		s.recs.put(c)
	}
}

// Kill sends sig to the container's init process.
func (s *Supervisor) Kill(ctx context.Context, ref string, sig syscall.Signal) (*Container, error) {
	c, unlock, err := s.locked(ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if c.State != StateRunning {
		return nil, fmt.Errorf("container %s is not running: %w", c.Name, errdefs.ErrConflict)
	}
	cl, err := s.client(c.ID)
	if err != nil {
		return nil, err
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		c.StopRequested = true // a user's kill is not a failure to restart from
		s.recs.put(c)
	}
	return c, cl.Kill(ctx, sig, false)
}

// Stop sends SIGTERM, waits up to timeout, then SIGKILL; it returns once
// the container has exited.
func (s *Supervisor) Stop(ctx context.Context, ref string, timeout time.Duration) (*Container, error) {
	c, unlock, err := s.locked(ref)
	if err != nil {
		return nil, err
	}
	if c.State != StateRunning {
		unlock()
		return c, nil // already stopped: nothing to do, as Docker
	}
	c.StopRequested = true
	s.recs.put(c)
	cl, err := s.client(c.ID)
	s.mu.Lock()
	done := s.exited[c.ID]
	s.mu.Unlock()
	unlock()
	if err != nil {
		return nil, err
	}
	if done == nil {
		return nil, fmt.Errorf("container %s: its exit is not being watched: %w", c.Name, errdefs.ErrUnavailable)
	}
	if timeout < 0 {
		timeout = s.cfg.StopTimeout
	}
	cl.Kill(ctx, syscall.SIGTERM, false)
	select {
	case <-done:
	case <-time.After(timeout):
		cl.Kill(ctx, syscall.SIGKILL, true)
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.events.publish(Event{Type: "container", Action: "stop", ID: c.ID, Name: c.Name})
	return s.get(c.ID)
}

// Restart stops (if running) and starts the container.
func (s *Supervisor) Restart(ctx context.Context, ref string, timeout time.Duration) (*Container, error) {
	c, err := s.Stop(ctx, ref, timeout)
	if err != nil {
		return nil, err
	}
	return s.Start(ctx, c.ID)
}

// Wait blocks until the container is not running and returns its exit code
// (-1 when unknown).
func (s *Supervisor) Wait(ctx context.Context, ref string) (int, error) {
	c, err := s.get(ref)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	done := s.exited[c.ID]
	s.mu.Unlock()
	if c.State == StateRunning && done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if c, err = s.get(c.ID); err != nil {
			return 0, err
		}
	}
	if c.ExitCode == nil {
		return -1, nil
	}
	return *c.ExitCode, nil
}

// Delete removes a stopped or created container (a running one only with
// force, which stops it first, however often a restart policy brings it
// back) and everything it had.
func (s *Supervisor) Delete(ctx context.Context, ref string, force bool) (*Container, error) {
	c, err := s.get(ref)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if c.State == StateRunning {
			if !force {
				return nil, fmt.Errorf("container %s is running: stop it first, or force: %w", c.Name, errdefs.ErrConflict)
			}
			if _, err := s.Stop(ctx, c.ID, 0); err != nil {
				return nil, err
			}
		}
		var unlock func()
		if c, unlock, err = s.locked(c.ID); err != nil {
			return nil, err
		}
		if c.State != StateRunning {
			defer unlock()
			break
		}
		unlock() // a restart policy started it again meanwhile
		if attempt == 3 {
			return nil, fmt.Errorf("container %s keeps being restarted: %w", c.Name, errdefs.ErrConflict)
		}
	}
	c.State, c.StopRequested = StateRemoving, true
	if err := s.recs.put(c); err != nil {
		return nil, err
	}
	s.cleanup(ctx, c)
	if err := s.recs.delete(c.ID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	delete(s.exited, c.ID)
	delete(s.locks, c.ID)
	s.mu.Unlock()
	s.events.publish(Event{Type: "container", Action: "destroy", ID: c.ID, Name: c.Name})
	return c, nil
}

// Stats returns the container's cgroup statistics.
func (s *Supervisor) Stats(ctx context.Context, ref string) (*api.StatsResponse, *Container, error) {
	c, err := s.get(ref)
	if err != nil {
		return nil, nil, err
	}
	if c.State != StateRunning {
		return nil, c, fmt.Errorf("container %s is not running: %w", c.Name, errdefs.ErrConflict)
	}
	cl, err := s.client(c.ID)
	if err != nil {
		return nil, c, err
	}
	st, err := cl.Stats(ctx)
	return st, c, err
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	return pid
}
