package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/atomicfile"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/client"
)

// Create makes a container: the image (pulled when absent), its root
// filesystem, its OCI bundle, and its shim, which creates it with the
// runtime. The record exists, as "creating", before anything else does, so
// that a daemon killed midway cleans up at its next start; the container's
// lock is held from then on, so no other request sees it half-made.
func (s *Supervisor) Create(ctx context.Context, req CreateRequest) (*Container, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	s.warmCgroups()
	if _, err := s.checkNetwork(ctx, &req); err != nil {
		return nil, err
	}
	img, err := s.cfg.Images.Image(ctx, req.Image, true)
	if err != nil {
		return nil, err
	}
	sp := s.takeSpare(ctx)
	id := sp.id
	defer s.fillSpare()
	unlock := s.lock(id)
	defer unlock()
	c := &Container{ID: id, Name: req.Name, Image: img.Name, ImageID: img.ID, ImageDigest: img.Digest, Request: req,
		State: StateCreating, Bundle: s.bundle(id), ShimAddress: sp.addr, ShimPid: sp.pid, CreatingAt: time.Now().UTC()}
	if c.Name == "" {
		c.Name = "condenser-" + c.ShortID()
	}
	spec, err := s.generateSpec(c, img)
	if err == nil {
		c.Args = spec.Process.Args
		err = s.recs.insert(c)
	}
	if err != nil { // refused before anything was made: the spare serves the next create
		if rerr := os.RemoveAll(s.containerDir(id)); rerr != nil { // the /etc files
			s.log.Warn("remove the files of a refused create", "id", id, "error", rerr)
		}
		s.returnSpare(sp)
		return nil, err
	}
	if sp.cl != nil { // the spare's shim, connected when it was launched
		s.mu.Lock()
		s.shims[id] = sp.cl
		s.mu.Unlock()
	}
	s.publish(c, "creating")
	mounts, err := s.cfg.Rootfs.Prepare(ctx, c.ID, img.Layers, rootfs.Options{})
	if err == nil {
		c.RootfsMounts = mounts
		err = s.createRuntime(ctx, c, spec)
	}
	if err == nil {
		err = s.transition(c, StateCreated, "create", func(c *Container) { c.CreatedAt = time.Now().UTC() })
	}
	if err != nil {
		s.log.Warn("create failed, cleaning up", "id", id, "error", err)
		if derr := s.discard(context.WithoutCancel(ctx), c); derr != nil {
			s.log.Error("clean up a failed create", "id", id, "error", derr)
		}
		return nil, err
	}
	return c, nil
}

// discard removes a container that never was (a failed create, an
// interrupted one, a spare shim, an orphaned directory): its shim, files
// and record. The caller holds its lock.
func (s *Supervisor) discard(ctx context.Context, c *Container) error {
	var errs []error
	if _, err := os.Stat(c.Bundle); err == nil {
		if c.ShimAddress == "" {
			// A launch may have been cut short before the record said
			// where its shim serves.
			c.ShimAddress = s.cfg.Shims.Address(c.ID, c.Bundle)
		}
		if _, err := s.release(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.removeFiles(ctx, c.ID))
	if err := s.recs.delete(c.ID); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// createRuntime writes c's bundle, starts its shim (unless c has a spare's)
// and creates the container in it. The caller records the state.
func (s *Supervisor) createRuntime(ctx context.Context, c *Container, spec *specs.Spec) error {
	if err := os.MkdirAll(c.Bundle, 0o700); err != nil {
		return err
	}
	if err := s.joinNetwork(ctx, c, spec); err != nil {
		return err
	}
	// The network is connected while the shim creates the container: both
	// take milliseconds, and neither needs the other (the namespace
	// exists).
	type connected struct {
		ep  *Endpoint
		err error
	}
	netc := make(chan connected, 1)
	if s.droplet() { // connected by joinNetwork, before the spec was written
		netc <- connected{c.Endpoint, nil}
	} else {
		go func() {
			ep, err := s.connectNetwork(ctx, c, false) // reads c's id, name and request only
			netc <- connected{ep, err}
		}()
	}
	err := s.createShimContainer(ctx, c, spec)
	n := <-netc
	c.Endpoint = n.ep // release disconnects it whatever happened
	if err == nil {
		err = n.err
	}
	return err
}

// createShimContainer writes c's config.json, starts its shim (unless c
// has a spare's) and creates the container in it.
func (s *Supervisor) createShimContainer(ctx context.Context, c *Container, spec *specs.Spec) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(c.Bundle, "config.json"), b, 0o600, false); err != nil {
		return err
	}
	if c.ShimAddress == "" {
		// The record says where the shim will be before it is launched:
		// a daemon killed during the launch leaves a shim the next one
		// finds.
		c.ShimAddress = s.cfg.Shims.Address(c.ID, c.Bundle)
		if err := s.save(c); err != nil {
			return err
		}
		addr, err := s.cfg.Shims.Launch(ctx, c.ID, c.Bundle)
		if err != nil {
			return err
		}
		if addr != c.ShimAddress {
			c.ShimAddress = addr
			if err := s.save(c); err != nil {
				return err
			}
		}
	}
	s.mu.Lock()
	cl := s.shims[c.ID] // a spare's, connected already
	s.mu.Unlock()
	if cl == nil {
		if cl, err = s.cfg.Shims.Dial(ctx, c.ShimAddress); err != nil {
			return err
		}
		s.mu.Lock()
		s.shims[c.ID] = cl
		s.mu.Unlock()
		info, err := cl.Connect(ctx)
		if err != nil {
			return err
		}
		c.ShimPid = info.ShimPid
	}
	s.warmCgroups() // a restart's; a create's began at its request, and one under way makes this a no-op
	pid, err := cl.Create(ctx, client.CreateOptions{Rootfs: c.RootfsMounts, LogPath: s.LogPath(c),
		Terminal: c.Request.Tty, Stdin: c.Request.OpenStdin && !c.Request.Tty})
	if err != nil {
		return err
	}
	c.Pid = pid
	return nil
}

func (s *Supervisor) client(c *Container) (Shim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.shims[c.ID]
	if cl == nil {
		return nil, fmt.Errorf("container %s: no shim: %w", c.Name, errdefs.ErrUnavailable)
	}
	return cl, nil
}

// Start starts a created container, or runs a stopped one again. A manual
// start gives the restart policy its tries back (Docker).
func (s *Supervisor) Start(ctx context.Context, ref string) (*Container, error) {
	c, unlock, err := s.locked(ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if c.State == StateStopped || c.State == StateRestarting {
		c.RestartCount, c.Backoff, c.StopRequested = 0, 0, false
	}
	return c, s.start(ctx, c)
}

// start runs c; the caller holds its lock.
func (s *Supervisor) start(ctx context.Context, c *Container) error {
	switch c.State {
	case StateCreated:
	case StateStopped, StateRestarting:
		if err := s.recreate(ctx, c); err != nil {
			return err
		}
	case StateRunning:
		return fmt.Errorf("container %s is already running: %w", c.Name, errdefs.ErrConflict)
	default:
		return fmt.Errorf("container %s is %s: %w", c.Name, c.State, errdefs.ErrConflict)
	}
	cl, err := s.client(c)
	if err != nil {
		return err
	}
	// Not cancelled with the request: a start cut short half-way would
	// leave the container running while its shim says created.
	s.beginRun(c.ID)
	if _, err := cl.Start(context.WithoutCancel(ctx)); err != nil {
		s.endRun(c.ID)
		return err
	}
	if err := s.transition(c, StateRunning, "start", func(c *Container) {
		c.StartedAt, c.ExitCode, c.OOMKilled, c.StopRequested = time.Now().UTC(), nil, false, false
	}); err != nil {
		return err
	}
	s.monitor(c.ID, c.ShimAddress, cl)
	return nil
}

// recreate gives a stopped container a new shim and runtime container. Its
// configuration is generated again (the bundle is on the state tmpfs, gone
// after a reboot) and its /etc files written again; its writable layer is
// kept, so a restarted container sees its changes.
func (s *Supervisor) recreate(ctx context.Context, c *Container) error {
	if _, err := s.release(ctx, c); err != nil { // what a shim left; normally nothing
		return err
	}
	img, err := s.cfg.Images.Image(ctx, c.ImageID, false)
	if err != nil {
		return fmt.Errorf("container %s: its image: %w", c.Name, err)
	}
	spec, err := s.generateSpec(c, img)
	if err != nil {
		return err
	}
	if err := s.createRuntime(ctx, c, spec); err != nil {
		if _, rerr := s.release(context.WithoutCancel(ctx), c); rerr != nil {
			s.log.Error("clean up a failed start", "id", c.ID, "error", rerr)
		}
		if serr := s.save(c); serr != nil {
			s.log.Error("clean up a failed start", "id", c.ID, "error", serr)
		}
		return err
	}
	return nil
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
	cl, err := s.client(c)
	if err != nil {
		return nil, err
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		c.StopRequested = true // a user's kill is not a failure to restart from
		if err := s.save(c); err != nil {
			return nil, err
		}
	}
	return c, cl.Kill(ctx, sig, false)
}

// Stop sends SIGTERM, waits up to timeout (< 0: the default), then
// SIGKILL; it returns once the container has exited. A container waiting
// to be restarted stays stopped.
func (s *Supervisor) Stop(ctx context.Context, ref string, timeout time.Duration) (*Container, error) {
	c, unlock, err := s.locked(ref)
	if err != nil {
		return nil, err
	}
	switch c.State {
	case StateRestarting:
		err := s.transition(c, StateStopped, "stop", func(c *Container) { c.StopRequested = true })
		unlock()
		return c, err
	case StateRunning:
	default:
		unlock()
		return c, nil // not running: nothing to do, as Docker
	}
	c.StopRequested = true
	err = s.save(c)
	cl, cerr := s.client(c)
	done := s.run(c.ID)
	unlock()
	if err = errors.Join(err, cerr); err != nil {
		return nil, err
	}
	if done == nil {
		return nil, fmt.Errorf("container %s: its exit is not being watched: %w", c.Name, errdefs.ErrUnavailable)
	}
	if timeout < 0 {
		timeout = s.cfg.StopTimeout
	}
	// A kill that finds the process gone, or the shim closing, is the
	// run ending: its end is waited for as any other.
	kill := func(sig syscall.Signal) error {
		err := cl.Kill(ctx, sig, false)
		if errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrUnavailable) {
			return nil
		}
		return err
	}
	if err := kill(syscall.SIGTERM); err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		if err := kill(syscall.SIGKILL); err != nil {
			return nil, err
		}
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.events.publish(Event{Type: "container", Action: "stop", ID: c.ID, Name: c.Name})
	return s.recs.get(c.ID)
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
	if done := s.run(c.ID); done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if c, err = s.recs.get(c.ID); err != nil {
			return 0, err
		}
	}
	if c.ExitCode == nil {
		return -1, nil
	}
	return *c.ExitCode, nil
}

// Delete removes a container that is not running (a running or
// restarting one only with force, which stops it first) and everything it
// had.
func (s *Supervisor) Delete(ctx context.Context, ref string, force bool) (*Container, error) {
	c, unlock, err := s.locked(ref)
	if err != nil {
		return nil, err
	}
	for try := 0; c.State == StateRunning || c.State == StateRestarting; try++ {
		if !force {
			unlock()
			return nil, fmt.Errorf("container %s is %s: stop it first, or force: %w", c.Name, c.State, errdefs.ErrConflict)
		}
		if try == 3 { // only a user's start can bring it back after a stop
			unlock()
			return nil, fmt.Errorf("container %s was started again while it was being removed: %w", c.Name, errdefs.ErrConflict)
		}
		// Nothing restarts it once it is stopped by a user.
		unlock()
		if _, err := s.Stop(ctx, c.ID, 0); err != nil {
			return nil, err
		}
		if c, unlock, err = s.locked(c.ID); err != nil {
			return nil, err
		}
	}
	defer unlock()
	if c.State != StateRemoving { // else a removal that failed half-way is tried again
		if err := s.transition(c, StateRemoving, "", func(c *Container) { c.StopRequested = true }); err != nil {
			return nil, err
		}
	}
	if _, err := s.release(ctx, c); err != nil {
		return nil, err
	}
	if err := s.removeFiles(ctx, c.ID); err != nil {
		return nil, err
	}
	if err := s.recs.delete(c.ID); err != nil {
		return nil, err
	}
	// Whoever waits for the old lock finds no record; ids are never
	// reused.
	s.mu.Lock()
	delete(s.locks, c.ID)
	s.mu.Unlock()
	s.publish(c, "destroy")
	return c, nil
}

// Stats returns the container's cgroup statistics.
func (s *Supervisor) Stats(ctx context.Context, ref string) (client.Stats, *Container, error) {
	c, err := s.get(ref)
	if err != nil {
		return client.Stats{}, nil, err
	}
	if c.State != StateRunning {
		return client.Stats{}, c, fmt.Errorf("container %s is not running: %w", c.Name, errdefs.ErrConflict)
	}
	cl, err := s.client(c)
	if err != nil {
		return client.Stats{}, c, err
	}
	st, err := cl.Stats(ctx)
	return st, c, err
}

// warmCgroups tells the kernel early that a runtime will move a process
// into a cgroup (Config.WarmCgroups).
func (s *Supervisor) warmCgroups() {
	if s.cfg.WarmCgroups != nil {
		s.cfg.WarmCgroups()
	}
}
