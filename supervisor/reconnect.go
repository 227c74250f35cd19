package supervisor

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	ids := make([]string, len(all))
	for i, c := range all {
		ids[i] = c.ID
	}
	s.awaitShimStarts(ctx, ids)
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
		cl = dialShim(ctx, c)
	}
	if cl == nil {
		if c.State == StateStopped && c.ShimAddress == "" {
			return // its shim was gone before, and what it left reaped
		}
		// The shim is gone (killed, crashed, reboot): record what is on
		// disk, and kill and clean up what is left of the container.
		s.log.Warn("shim gone", "id", c.ID, "state", c.State)
		if c.State != StateStopped {
			if e, err := shim.ReadExit(c.Bundle); err == nil {
				code := e.ExitCode
				c.ExitCode, c.OOMKilled, c.StoppedAt = &code, e.OOMKilled, e.ExitedAt
			} else {
				c.ExitCode, c.StoppedAt = nil, time.Now().UTC()
			}
			c.State = StateStopped
		}
		s.reap(ctx, c)
		s.recs.put(c)
		return
	}
	s.mu.Lock()
	s.shims[c.ID] = cl
	s.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, dialTimeout)
	st, err := cl.State(sctx)
	cancel()
	if err != nil {
		// A shim that answers slowly is still the container's: keep it,
		// and trust the record.
		s.log.Warn("shim does not tell the container's state", "id", c.ID, "error", err)
		st = &api.StateResponse{Status: api.Status_UNKNOWN}
		if c.State == StateRunning {
			st.Status = api.Status_RUNNING
		}
	}
	switch {
	case st.Status == api.Status_STOPPED && c.State != StateStopped:
		code := int(st.ExitCode)
		c.State, c.ExitCode, c.OOMKilled, c.StoppedAt = StateStopped, &code, st.OomKilled, st.ExitedAt.AsTime()
		s.recs.put(c)
		s.events.publish(Event{Type: "container", Action: "die", ID: c.ID, Name: c.Name, ExitCode: c.ExitCode})
	case st.Status == api.Status_CREATED && (c.State == StateRestarting || c.State == StateStopped):
		// A (re)start was cut short after its shim created the container:
		// it is created, with a new shim and init, and a user may start it.
		s.log.Info("a start was cut short: the container is created", "id", c.ID, "state", c.State)
		c.State, c.Pid = StateCreated, int(st.Pid)
		cctx, cancel := context.WithTimeout(ctx, dialTimeout)
		if info, err := cl.Connect(cctx); err == nil {
			c.ShimPid = int(info.ShimPid)
		}
		cancel()
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

// resume applies the restart policies once the records match reality, as
// Docker does when it starts: a stopped container whose policy says so
// starts again — it exited while the daemon was away, the host rebooted
// under it, or a restart was waiting out its back-off — and a stopped
// auto-remove container goes. An unknown exit status counts as a failure.
func (s *Supervisor) resume(all []*Container) {
	for _, c := range all {
		if c.State != StateStopped {
			continue
		}
		policy, _ := parseRestartPolicy(c.Request.RestartPolicy)
		code := -1
		if c.ExitCode != nil {
			code = *c.ExitCode
		}
		id := c.ID
		switch {
		case c.Request.AutoRemove:
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if _, err := s.Delete(s.ctx, id, true); err != nil {
					s.log.Warn("auto-remove", "id", id, "error", err)
				}
			}()
		// "always" brings back even a container a user stopped, when the
		// daemon starts (Docker's rule); "unless-stopped" does not.
		case policy.shouldRestart(code, c.RestartCount, c.StopRequested && policy.name != "always"):
			s.log.Info("restart policy: starting again", "id", id, "policy", c.Request.RestartPolicy)
			if c.StopRequested {
				c.StopRequested = false
				if err := s.recs.put(c); err != nil {
					s.log.Warn("restart policy", "id", id, "error", err)
					continue
				}
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.restartLater(id, 0)
			}()
		}
	}
}

// shimStartWait bounds how long start-up waits for the shim launches a
// killed daemon left running.
const shimStartWait = 10 * time.Second

// awaitShimStarts waits until no `condenser-shim start` runs for the
// bundles of containers ids. A daemon killed while launching a shim leaves
// the launch going on: it makes the shim's socket and starts the shim after
// the daemon is gone. Until it is done, that shim could be missed by the
// clean-up of an interrupted create, a restart or the sweep of orphaned
// directories (its directory removed while it starts), and be left running
// with nothing pointing at it; once it is done, the shim's pid file and
// socket are in its bundle. Only bundles without a pid file can have a
// launch going on, so a start-up with every shim in place reads no more
// than that.
func (s *Supervisor) awaitShimStarts(ctx context.Context, ids []string) {
	var bundles []string
	for _, id := range ids {
		b := s.bundle(id)
		if _, err := os.Stat(filepath.Join(b, shim.PidFile)); err != nil {
			if _, err := os.Stat(b); err == nil {
				bundles = append(bundles, b)
			}
		}
	}
	if len(bundles) == 0 {
		return
	}
	deadline := time.Now().Add(shimStartWait)
	for {
		pids := shimStarts(bundles)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.log.Warn("shim launches of a previous run are still going on", "pids", pids)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// shimStarts lists the `condenser-shim start` processes (or wrappers of
// it) for the given bundles.
func shimStarts(bundles []string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("\x00start\x00")) {
			continue
		}
		args := strings.Split(string(b), "\x00")
		cmd, bundle := slices.Index(args, "start"), slices.Index(args, "--bundle")
		if cmd > 0 && bundle > cmd && bundle+1 < len(args) && slices.Contains(bundles, args[bundle+1]) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// dialShim connects to the container's shim, or returns nil when it is
// gone. A shim process that is alive but does not accept yet is given
// dialTimeout.
func dialShim(ctx context.Context, c *Container) *shim.Client {
	deadline := time.Now().Add(dialTimeout)
	for {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		cl, err := shim.Dial(dctx, c.ShimAddress)
		cancel()
		if err == nil {
			return cl
		}
		if shimPid(c.Bundle) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
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
