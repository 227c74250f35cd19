package supervisor

import (
	"context"
	"sync"
	"time"

	"github.com/raind/condenser/shim/client"
)

// dialTimeout bounds how long start-up waits for one shim.
const dialTimeout = 2 * time.Second

// probe is what start-up learns of a container's shim.
type probe struct {
	dialed bool          // a shim answered at the record's address
	status client.Status // what it says of its container; "" when it would not say
	exit   client.Exit   // its exit status, when status is stopped
}

// action is what start-up does with a container.
type action int

const (
	keep     action = iota // the record is right: nothing to do
	finish                 // a create or delete was cut short: remove everything, and the record
	attach                 // the shim is alive: keep it (a running container gets its monitor back)
	exited                 // the container exited while the daemon was away: record the shim's exit status
	lost                   // the shim is gone: clean up after it, record the status it left (or unknown)
	released               // a stopped container's leftover shim: let it go, the record stays as it is
	created                // a start cut short after the shim created the container: it is created
)

var actionNames = [...]string{"keep", "finish", "attach", "exited", "lost", "released", "created"}

func (a action) String() string { return actionNames[a] }

// decide is the reconnect decision for a record in state st whose shim
// answered (or not) as p; the table test lists every case.
func decide(st State, hasShim bool, p probe) action {
	switch st {
	case StateCreating, StateRemoving:
		return finish
	case StateStopped, StateRestarting:
		switch {
		case !hasShim:
			return keep
		case p.status == client.StatusRunning: // a start cut short after the shim started it
			return attach
		case p.status == client.StatusCreated:
			return created
		}
		return released // no container in it, stopped, or the shim is gone
	}
	// created or running
	switch {
	case !hasShim || !p.dialed:
		return lost
	case p.status == "": // a shim that answers slowly is still the container's
		return attach
	case p.status == client.StatusStopped:
		return exited
	case p.status == client.StatusUnknown: // a shim without the container
		return lost
	case p.status == client.StatusCreated && st == StateRunning:
		return created
	}
	return attach
}

// reconnectWorkers bounds the shims dialled at once at start-up. A dial
// and a State call are mostly waiting for the shim to be scheduled: a few
// dozen in flight keep both CPUs of a small host busy, while one goroutine,
// connection and buffer set per container at once (1000 containers) only
// adds memory and scheduler churn, and makes the last shims wait behind all
// the others' first steps.
const reconnectWorkers = 32

// reconnect reattaches every record to its shim, in parallel (at most
// reconnectWorkers at once), and reconciles what happened while the daemon
// was away (decide). Nothing is served yet, but the locks are taken all the
// same.
func (s *Supervisor) reconnect(ctx context.Context, all []*Container) {
	next := make(chan *Container)
	var wg sync.WaitGroup
	for range min(reconnectWorkers, len(all)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				unlock := s.lock(c.ID)
				s.reconnectOne(ctx, c)
				unlock()
			}
		}()
	}
	for _, c := range all {
		next <- c
	}
	close(next)
	wg.Wait()
}

func (s *Supervisor) reconnectOne(ctx context.Context, c *Container) {
	var (
		p  probe
		cl Shim
	)
	hasShim := c.ShimAddress != ""
	if hasShim && c.State != StateCreating && c.State != StateRemoving {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		var err error
		if cl, err = s.cfg.Shims.Dial(dctx, c.ShimAddress); err == nil {
			p.dialed = true
			if st, err := cl.State(dctx); err == nil {
				p.status, p.exit = st.Status, st.Exit
			} else {
				s.log.Warn("shim does not tell the container's state", "id", c.ID, "error", err)
			}
		}
		cancel()
		if cl != nil {
			s.mu.Lock()
			s.shims[c.ID] = cl
			s.mu.Unlock()
		}
	}
	a := decide(c.State, hasShim, p)
	if a != keep && a != attach {
		s.log.Info("reconciling a container", "id", c.ID, "state", c.State, "action", a.String())
	}
	var err error
	switch a {
	case finish:
		err = s.discard(ctx, c)
	case attach:
		if p.status == client.StatusRunning || (p.status == "" && c.State == StateRunning) {
			if c.State != StateRunning {
				err = s.transition(c, StateRunning, "start", nil)
			}
			s.beginRun(c.ID)
			s.monitor(c.ID, c.ShimAddress, cl)
		}
	case exited, lost:
		var exit *client.Exit // lost: the shim's clean-up tells what it left
		if a == exited {
			exit = &p.exit
		}
		err = s.exited(ctx, c, exit)
	case released:
		if _, err = s.release(ctx, c); err == nil {
			if c.State == StateRestarting {
				err = s.transition(c, StateStopped, "", nil)
			} else {
				err = s.save(c)
			}
		}
	case created:
		info, cerr := cl.Connect(ctx)
		err = s.transition(c, StateCreated, "", func(c *Container) {
			if cerr == nil {
				c.Pid, c.ShimPid = info.TaskPid, info.ShimPid
			}
		})
	}
	if err != nil {
		s.log.Error("reconcile a container", "id", c.ID, "action", a.String(), "error", err)
	}
}

// resume applies the restart policies once the records match reality, as
// Docker does when it starts: a stopped container whose policy says so
// starts again — it exited while the daemon was away, the host rebooted
// under it, or a restart was waiting out its back-off — and a stopped
// auto-remove container goes. An unknown exit status counts as a failure;
// "always" brings back even a container its user stopped, "unless-stopped"
// does not.
func (s *Supervisor) resume() {
	all, _ := s.recs.all()
	for _, c := range all {
		if c.State != StateStopped {
			continue
		}
		p, _ := parseRestartPolicy(c.Request.RestartPolicy)
		code := -1
		if c.ExitCode != nil {
			code = *c.ExitCode
		}
		switch {
		case c.Request.AutoRemove:
			s.autoRemove(c.ID)
		case p.shouldRestart(code, c.RestartCount, c.StopRequested && p.name != "always"):
			unlock := s.lock(c.ID)
			err := s.transition(c, StateRestarting, "", func(c *Container) { c.StopRequested = false })
			unlock()
			if err != nil {
				s.log.Warn("restart policy", "id", c.ID, "error", err)
				continue
			}
			s.log.Info("restart policy: starting again", "id", c.ID, "policy", c.Request.RestartPolicy)
			s.restartLater(c.ID, 0)
		}
	}
}
