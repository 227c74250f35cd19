package supervisor

import (
	"context"
	"os/exec"
	"sync"
	"time"

	"github.com/raind/condenser/shim"
	"github.com/raind/condenser/shim/api"
)

// dialTimeout bounds how long start-up waits for one shim.
const dialTimeout = 2 * time.Second

// reconnect reattaches every record to its shim, in parallel: running
// containers get their monitor back, exits that happened while the daemon
// was away are recorded (from the shim, or from exit.json when the shim is
// gone), and what an interrupted create or delete left is cleaned up.
func (s *Supervisor) reconnect(ctx context.Context) error {
	all, err := s.recs.all()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.reconnectOne(ctx, c)
		}()
	}
	wg.Wait()
	return nil
}

func (s *Supervisor) reconnectOne(ctx context.Context, c *Container) {
	switch c.State {
	case StateCreating, StateRemoving:
		// Killed midway: finish the job.
		s.log.Info("cleaning up an interrupted operation", "id", c.ID, "state", c.State)
		s.cleanup(ctx, c)
		s.recs.delete(c.ID)
		return
	}
	var cl *shim.Client
	if c.ShimAddress != "" {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		cl, _ = shim.Dial(dctx, c.ShimAddress)
		cancel()
	}
	if cl == nil {
		if c.State == StateRunning || c.State == StateCreated || c.State == StateRestarting {
			// The shim is gone (reboot, kill): record what is on disk.
			s.log.Warn("shim gone", "id", c.ID)
			if e, err := shim.ReadExit(c.Bundle); err == nil {
				code := e.ExitCode
				c.ExitCode, c.OOMKilled, c.StoppedAt = &code, e.OOMKilled, e.ExitedAt
			} else {
				c.ExitCode, c.StoppedAt = nil, time.Now().UTC()
			}
			c.State = StateStopped
			s.recs.put(c)
		}
		return
	}
	sctx, cancel := context.WithTimeout(ctx, dialTimeout)
	st, err := cl.State(sctx)
	cancel()
	if err != nil {
		cl.Close()
		return
	}
	s.mu.Lock()
	s.shims[c.ID] = cl
	s.mu.Unlock()
	switch {
	case st.Status == api.Status_STOPPED && c.State != StateStopped:
		code := int(st.ExitCode)
		c.State, c.ExitCode, c.OOMKilled, c.StoppedAt = StateStopped, &code, st.OomKilled, st.ExitedAt.AsTime()
		s.recs.put(c)
		s.events.publish(Event{Type: "container", Action: "die", ID: c.ID, Name: c.Name, ExitCode: c.ExitCode})
	case st.Status == api.Status_CREATED && c.State == StateRestarting:
		c.State = StateCreated // the restart was cut short: a user may start it
		s.recs.put(c)
	case st.Status == api.Status_RUNNING:
		done := make(chan struct{})
		s.mu.Lock()
		s.exited[c.ID] = done
		s.mu.Unlock()
		if c.State != StateRunning {
			c.State = StateRunning
			s.recs.put(c)
		}
		s.monitor(c.ID, cl, done)
	}
}

// runtimeDelete removes the runtime's state of a container whose shim is
// gone. Errors are ignored: there may be nothing to delete.
func runtimeDelete(ctx context.Context, runtime, root, id string) {
	if runtime == "" {
		return
	}
	cmd := exec.CommandContext(ctx, runtime, "--root", root, "delete", "--force", id)
	cmd.Run()
}
