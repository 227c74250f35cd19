package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/raind/condenser/internal/names"
)

// A spare shim is launched ahead of time for the next container's id, so
// that creating a container does not wait for a shim process to start
// (two executions of condenser-shim, about 6 ms here). There is at most
// one; Create takes it and a new one is launched in the background. A
// daemon killed with a spare leaves an orphan, which the next start sweeps
// away with every other directory that has no record.
type spare struct {
	id, addr string
	// cl is the connection to the spare's shim, made (Dial and Connect)
	// right after its launch: about a millisecond taken off the create
	// that takes it. pid is the shim's process.
	cl  Shim
	pid int
}

// close closes the connection to the spare's shim (the shim goes on).
func (sp *spare) close() {
	if sp.cl != nil {
		sp.cl.Close()
		sp.cl = nil
	}
}

// spareLaunchTimeout bounds the background launch of a spare shim, and
// spareWait how long a create waits for a spare on its way.
const (
	spareLaunchTimeout = 30 * time.Second
	spareWait          = time.Second
)

// takeSpare returns the spare shim: its container id, address and
// connection, or a new id and no address when there is none (then the
// caller launches a shim). The caller calls fillSpare once its container
// is created: launching the next spare meanwhile would compete with the
// runtime for the CPUs. A spare on its way is waited for: it started
// earlier than a launch would now.
func (s *Supervisor) takeSpare(ctx context.Context) spare {
	s.mu.Lock()
	filled := s.spareFilled
	s.mu.Unlock()
	if filled != nil {
		t := time.NewTimer(spareWait)
		select {
		case <-filled:
		case <-ctx.Done():
		case <-t.C: // something is wrong with it: launch another
		}
		t.Stop()
	}
	s.mu.Lock()
	sp := s.spare
	s.spare = nil
	s.mu.Unlock()
	if sp == nil {
		return spare{id: names.NewID()}
	}
	return *sp
}

// returnSpare gives back a spare that a refused create took, unused; it
// is dropped when another is ready meanwhile.
func (s *Supervisor) returnSpare(sp spare) {
	if sp.addr == "" {
		return
	}
	s.mu.Lock()
	keep := s.spare == nil && s.ctx.Err() == nil
	if keep {
		s.spare = &sp
	}
	s.mu.Unlock()
	if !keep { // in the background: the caller holds the id's lock
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.dropShim(context.Background(), sp)
		}()
	}
}

// fillSpare launches a spare shim in the background unless one is ready or
// on its way, or spares are off.
func (s *Supervisor) fillSpare() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfg.SpareShim || s.spare != nil || s.spareFilled != nil || s.ctx.Err() != nil {
		return
	}
	filled := make(chan struct{})
	s.spareFilled = filled
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// Not cancelled by Close, which waits for it: a launch cut short
		// could leave a shim behind.
		ctx, cancel := context.WithTimeout(context.Background(), spareLaunchTimeout)
		defer cancel()
		sp := &spare{id: names.NewID()}
		var err error
		sp.addr, err = s.launchShim(ctx, sp.id)
		if err == nil {
			err = s.connectSpare(ctx, sp)
		}
		s.mu.Lock()
		s.spareFilled = nil
		// A refused create may have given its spare back meanwhile
		// (returnSpare): one spare, the other goes.
		keep := err == nil && s.ctx.Err() == nil && s.spare == nil
		if keep {
			s.spare = sp
		}
		s.mu.Unlock()
		close(filled)
		if err != nil {
			s.log.Warn("launch a spare shim", "error", err)
		}
		if !keep {
			s.dropShim(ctx, *sp)
		}
	}()
}

// connectSpare dials the spare's shim and asks who it is, as a create
// would.
func (s *Supervisor) connectSpare(ctx context.Context, sp *spare) error {
	cl, err := s.cfg.Shims.Dial(ctx, sp.addr)
	if err != nil {
		return err
	}
	info, err := cl.Connect(ctx)
	if err != nil {
		cl.Close()
		return err
	}
	sp.cl, sp.pid = cl, info.ShimPid
	return nil
}

// launchShim makes the bundle directory of container id and starts its
// shim, returning its address.
func (s *Supervisor) launchShim(ctx context.Context, id string) (string, error) {
	bundle := s.bundle(id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return "", err
	}
	return s.cfg.Shims.Launch(ctx, id, bundle)
}

// dropShim stops an unused shim and removes its bundle directory.
func (s *Supervisor) dropShim(ctx context.Context, sp spare) {
	sp.close() // discard dials its own
	defer s.lock(sp.id)()
	if err := s.discard(ctx, &Container{ID: sp.id, Bundle: s.bundle(sp.id), ShimAddress: sp.addr}); err != nil {
		s.log.Warn("remove a shim without a container", "id", sp.id, "error", err)
	}
}

// closeSpare stops the spare shim; called by Close once nothing can fill
// it again.
func (s *Supervisor) closeSpare() {
	s.mu.Lock()
	sp := s.spare
	s.spare = nil
	s.mu.Unlock()
	if sp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.dropShim(ctx, *sp)
	}
}

// orphans lists the container and bundle directories that belong to no
// record: what a daemon killed before recording them (or with a spare
// shim) left. Listed before the API serves, so that containers created
// afterwards are never among them.
func (s *Supervisor) orphans(all []*Container) []string {
	known := make(map[string]bool, len(all))
	for _, c := range all {
		known[c.ID] = true
	}
	seen := map[string]bool{}
	var out []string
	for _, dir := range []string{filepath.Join(s.cfg.State, "shims"), filepath.Join(s.cfg.Root, "containers")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if id := e.Name(); e.IsDir() && names.ValidID(id) == nil && !known[id] && !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// sweep removes the orphans in the background, then fills the spare.
func (s *Supervisor) sweep(ids []string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, id := range ids {
			// The shim's clean-up waits for a launch a killed daemon
			// left going on, and stops what it started.
			s.log.Info("removing an orphaned container directory", "id", id)
			s.dropShim(context.WithoutCancel(s.ctx), spare{id: id})
		}
		s.fillSpare()
	}()
}
