package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/shim/client"
)

// transitions is the lifecycle: the states each state may go to. Every
// change of a record's state goes through transition, which checks it here.
var transitions = map[State][]State{
	StateCreating: {StateCreated, StateRemoving},
	// created → stopped: its init died before it was started.
	StateCreated: {StateRunning, StateStopped, StateRemoving},
	StateRunning: {StateStopped},
	// stopped → created: a start cut short after the shim created the
	// container (found at reconnect).
	StateStopped: {StateRunning, StateCreated, StateRestarting, StateRemoving},
	// restarting: waiting out the restart policy's back-off.
	StateRestarting: {StateRunning, StateCreated, StateStopped, StateRemoving},
	StateRemoving:   nil, // the record goes
}

// canTransition reports whether a record in state from may go to to.
func canTransition(from, to State) bool { return slices.Contains(transitions[from], to) }

// transition moves c to state to, applies set (the fields that change
// with it), writes the record and publishes action (when not empty). The
// caller holds c's lock. On error nothing is published and c's in-memory
// copy may differ from the stored record: the caller returns the error.
func (s *Supervisor) transition(c *Container, to State, action string, set func(*Container)) error {
	if !canTransition(c.State, to) {
		return fmt.Errorf("container %s is %s, cannot become %s: %w", c.Name, c.State, to, errdefs.ErrConflict)
	}
	c.State = to
	if set != nil {
		set(c)
	}
	if err := s.recs.put(c); err != nil {
		return fmt.Errorf("container %s: record %s: %w", c.Name, to, err)
	}
	if action != "" {
		s.publish(c, action)
	}
	return nil
}

// save writes c's record without a change of state.
func (s *Supervisor) save(c *Container) error {
	if err := s.recs.put(c); err != nil {
		return fmt.Errorf("container %s: write its record: %w", c.Name, err)
	}
	return nil
}

func (s *Supervisor) publish(c *Container, action string) {
	e := Event{Type: "container", Action: action, ID: c.ID, Name: c.Name}
	if action == "die" {
		e.ExitCode = c.ExitCode
	}
	s.events.publish(e)
}

// exited is the one place an exit is recorded: c becomes stopped with the
// exit status e (nil: unknown — the shim died without leaving one; then
// the shim's clean-up is asked for the status it left), the run's waiters
// are released, and then the shim is let go: a stopped container keeps no
// process and no mount. The caller holds c's lock.
func (s *Supervisor) exited(ctx context.Context, c *Container, e *client.Exit) error {
	defer s.endRun(c.ID)
	var rerr error
	if e == nil { // the shim is gone: what it left on disk may tell
		e, rerr = s.release(ctx, c)
	}
	err := s.transition(c, StateStopped, "die", func(c *Container) {
		c.Pid, c.ExitCode, c.OOMKilled, c.StoppedAt = 0, nil, false, time.Now().UTC()
		if e != nil {
			code := e.ExitCode
			c.ExitCode, c.OOMKilled = &code, e.OOMKilled
			if !e.ExitedAt.IsZero() {
				c.StoppedAt = e.ExitedAt
			}
		}
		// A run of 10 s or more resets the restart back-off (Docker).
		if !c.StartedAt.IsZero() && c.StoppedAt.Sub(c.StartedAt) >= backoffReset {
			c.Backoff = 0
		}
	})
	if err != nil {
		return errors.Join(rerr, err)
	}
	s.endRun(c.ID) // the exit is durable: waiters need not wait for the shim
	if c.ShimAddress != "" {
		if _, rerr = s.release(ctx, c); rerr == nil {
			rerr = s.save(c)
		}
	}
	return rerr
}

// endRun releases the waiters of c's current run.
func (s *Supervisor) endRun(id string) {
	s.mu.Lock()
	done := s.runs[id]
	delete(s.runs, id)
	s.mu.Unlock()
	if done != nil {
		close(done)
	}
}

// beginRun makes the channel that closes when c's run that starts now
// ends.
func (s *Supervisor) beginRun(id string) {
	s.mu.Lock()
	s.runs[id] = make(chan struct{})
	s.mu.Unlock()
}

// run returns the channel that closes when c's current run ends, nil when
// it is not running.
func (s *Supervisor) run(id string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[id]
}

// release lets c's shim go, with the container it holds: the shim deletes
// the runtime's container and unmounts (Delete), then exits (Shutdown);
// when it is gone or cannot, `condenser-shim delete` does it out of band.
// It returns the exit status the shim reports, if any, and clears c's shim
// fields (the caller writes the record). The caller holds c's lock.
func (s *Supervisor) release(ctx context.Context, c *Container) (*client.Exit, error) {
	s.mu.Lock()
	cl := s.shims[c.ID]
	delete(s.shims, c.ID)
	s.mu.Unlock()
	if cl == nil && c.ShimAddress != "" {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		cl, _ = s.cfg.Shims.Dial(dctx, c.ShimAddress)
		cancel()
	}
	var exit *client.Exit
	done := false
	if cl != nil {
		e, err := cl.Delete(ctx)
		switch {
		case err == nil:
			exit = &e
			fallthrough
		case errors.Is(err, errdefs.ErrNotFound): // no container was created
			done = cl.Shutdown(ctx, true) == nil
		default:
			s.log.Warn("the shim could not delete its container; cleaning up out of band", "id", c.ID, "error", err)
		}
		cl.Close()
	}
	if !done && (c.ShimAddress != "" || cl != nil) {
		e, err := s.cfg.Shims.Cleanup(ctx, c.ID, c.Bundle)
		if err != nil {
			return exit, fmt.Errorf("container %s: clean up after its shim: %w", c.Name, err)
		}
		if exit == nil {
			exit = e
		}
	}
	c.ShimAddress, c.ShimPid, c.Pid = "", 0, 0
	if err := s.disconnectNetwork(ctx, c); err != nil {
		return exit, err
	}
	return exit, nil
}

// removeFiles removes what a container has on disk: its root filesystem,
// bundle and container directory (log, /etc files). The caller has
// released its shim.
func (s *Supervisor) removeFiles(ctx context.Context, id string) error {
	var errs []error
	if err := s.cfg.Rootfs.Remove(ctx, id); err != nil {
		errs = append(errs, fmt.Errorf("remove the root filesystem: %w", err))
	}
	for _, dir := range []string{s.bundle(id), s.containerDir(id)} {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("container %s: %w", names.ShortID(id), err)
	}
	return nil
}

// monitor waits in the background for the exit of c's run and records it.
func (s *Supervisor) monitor(id, address string, cl Shim) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		e, err := cl.Wait(s.ctx)
		if s.ctx.Err() != nil {
			return // the daemon stops; the container carries on
		}
		var exit *client.Exit
		if err == nil {
			exit = &e
		} else {
			s.log.Warn("lost the shim", "id", id, "error", err)
		}
		s.onExit(id, address, exit)
	}()
}

// onExit records the exit of the run of container id served by the shim at
// address, then applies the restart policy or auto-removal. exit is nil
// when the shim was lost; its clean-up may still find the status on disk.
func (s *Supervisor) onExit(id, address string, exit *client.Exit) {
	ctx := s.ctx
	unlock := s.lock(id)
	c, err := s.recs.get(id)
	if err != nil || c.ShimAddress != address || (c.State != StateRunning && c.State != StateCreated) {
		unlock() // deleted, or another run already
		return
	}
	if err := s.exited(ctx, c, exit); err != nil {
		s.log.Error("record an exit", "id", id, "error", err)
		if c.State != StateStopped {
			unlock()
			return
		}
	}
	restart, delay := s.policyRestart(c)
	if restart {
		if err := s.transition(c, StateRestarting, "", nil); err != nil {
			s.log.Error("restart policy", "id", id, "error", err)
			restart = false
		}
	}
	unlock()
	switch {
	case restart:
		s.restartLater(id, delay)
	case c.Request.AutoRemove:
		s.autoRemove(id)
	}
}

// policyRestart tells whether c, just stopped, restarts by its policy, and
// after which back-off: 100 ms doubling with each quick restart, up to a
// minute, reset by a run of 10 s or more (Docker).
func (s *Supervisor) policyRestart(c *Container) (bool, time.Duration) {
	p, _ := parseRestartPolicy(c.Request.RestartPolicy)
	code := -1
	if c.ExitCode != nil {
		code = *c.ExitCode
	}
	if !p.shouldRestart(code, c.RestartCount, c.StopRequested) {
		return false, 0
	}
	return true, min(100*time.Millisecond<<min(c.Backoff, 10), time.Minute)
}

// backoffReset is the run after which the restart back-off starts again
// from its first step.
const backoffReset = 10 * time.Second

// restartLater starts a restarting container again after delay, unless it
// was stopped, started or removed meanwhile.
func (s *Supervisor) restartLater(id string, delay time.Duration) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return // the next daemon applies the policy again
		}
		unlock := s.lock(id)
		defer unlock()
		c, err := s.recs.get(id)
		if err != nil || c.State != StateRestarting {
			return
		}
		c.RestartCount++
		c.Backoff++
		if err := s.start(s.ctx, c); err != nil {
			s.log.Warn("restart policy: start failed", "id", id, "error", err)
			if c.State == StateRestarting {
				if err := s.transition(c, StateStopped, "", nil); err != nil {
					s.log.Error("restart policy", "id", id, "error", err)
				}
			}
		}
	}()
}

// autoRemove removes a stopped auto-remove container in the background.
func (s *Supervisor) autoRemove(id string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if _, err := s.Delete(s.ctx, id, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			s.log.Warn("auto-remove", "id", id, "error", err)
		}
	}()
}
