package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/raind/condenser/internal/errdefs"
)

// WaitCondition is what a wait waits for, as Docker's
// /containers/{id}/wait?condition= names it.
type WaitCondition string

const (
	// WaitNotRunning: until the container is not running (at once when it
	// is created or stopped). A restarting container counts as running,
	// as in Docker.
	WaitNotRunning WaitCondition = "not-running"
	// WaitNextExit: until the container's next exit after the wait was
	// registered; a created or stopped container must be started and exit.
	WaitNextExit WaitCondition = "next-exit"
	// WaitRemoved: until the container's record is gone.
	WaitRemoved WaitCondition = "removed"
)

// ParseWaitCondition reads a condition; "" is WaitNotRunning.
func ParseWaitCondition(s string) (WaitCondition, error) {
	switch c := WaitCondition(s); c {
	case "":
		return WaitNotRunning, nil
	case WaitNotRunning, WaitNextExit, WaitRemoved:
		return c, nil
	}
	return "", fmt.Errorf("wait condition %q: want not-running, next-exit or removed: %w", s, errdefs.ErrInvalidArgument)
}

// waitRecheck is how often a wait reads the record again whatever the
// events say: the event hub drops events for a subscriber that falls 256
// behind, and a wait must not hang on a lost one.
const waitRecheck = time.Second

// Await registers a wait for container ref to meet cond and returns the
// function that blocks until it does, with the exit code (0 for a
// container that never ran, -1 when unknown), and the one that releases the registration (call it when wait
// is never called; calling both is fine). The registration comes before
// the record is read, so that no exit between Await and wait is missed:
// a client may flush its answer's headers, have the container started,
// and only then wait. An unknown container is ErrNotFound, from Await.
func (s *Supervisor) Await(ctx context.Context, ref string, cond WaitCondition) (wait func(context.Context) (int, error), release func(), err error) {
	if cond == "" {
		cond = WaitNotRunning
	}
	if _, err := ParseWaitCondition(string(cond)); err != nil {
		return nil, nil, err
	}
	events, unsubscribe := s.Subscribe()
	c, err := s.get(ref)
	if err != nil {
		unsubscribe()
		return nil, nil, err
	}
	w := &waiter{s: s, id: c.ID, cond: cond, events: events, last: c, stoppedAt: c.StoppedAt}
	return func(ctx context.Context) (int, error) {
		defer unsubscribe()
		return w.wait(ctx)
	}, unsubscribe, nil
}

// waiter is one registered wait.
type waiter struct {
	s      *Supervisor
	id     string
	cond   WaitCondition
	events <-chan Event
	last   *Container // the record as last read
	// stoppedAt is the record's StoppedAt at registration: a later one is
	// an exit since (the fallback of next-exit when its event was lost).
	stoppedAt time.Time
	code      *int // the exit code of the last die event seen
	died      bool // a die event was seen since registration
}

func (w *waiter) wait(ctx context.Context) (int, error) {
	t := time.NewTicker(waitRecheck)
	defer t.Stop()
	for {
		if done, code, err := w.check(); done || err != nil {
			return code, err
		}
		select {
		case e := <-w.events:
			if e.ID != w.id {
				continue
			}
			switch e.Action {
			case "die":
				w.died, w.code = true, e.ExitCode
				if w.cond == WaitNextExit {
					return w.exitCode(), nil
				}
			case "destroy":
				if w.cond != WaitNotRunning {
					return w.exitCode(), nil
				}
			}
		case <-t.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// check reads the record and tells whether the condition holds.
func (w *waiter) check() (bool, int, error) {
	c, err := w.s.recs.get(w.id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return true, w.exitCode(), nil // removed meets every condition
	}
	if err != nil {
		return false, 0, err
	}
	w.last = c
	switch w.cond {
	case WaitNotRunning:
		switch c.State {
		case StateRunning, StateRestarting, StateCreating:
			return false, 0, nil
		}
		return true, w.exitCode(), nil
	case WaitNextExit:
		if w.died || c.StoppedAt.After(w.stoppedAt) {
			return true, w.exitCode(), nil
		}
	}
	return false, 0, nil
}

// exitCode is the exit code to report: the last die event's, else the
// record's, else 0 for a container that never ran (Docker's), else -1
// (unknown: its shim was lost).
func (w *waiter) exitCode() int {
	switch {
	case w.code != nil:
		return *w.code
	case w.last.ExitCode != nil:
		return *w.last.ExitCode
	case w.last.StartedAt.IsZero():
		return 0
	}
	return -1
}
