package docker

import (
	"fmt"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

// maxExecs bounds the exec configurations the Docker API keeps: Docker
// creates an exec (POST /containers/{id}/exec) before it starts it (POST
// /exec/{id}/start), and inspects it after (its exit code), so the
// configuration lives in the daemon between the calls. Past the bound the
// oldest go: finished ones first, then never started ones, then any (a
// forgotten exec is "No such exec instance"; its process goes on).
const maxExecs = 1024

// execConfig is an exec instance of the Docker API.
type execConfig struct {
	ID          string
	ContainerID string
	Req         container.ExecCreateRequest
	Keys        []byte // the detach keys; nil: none
	Created     time.Time

	Started  bool
	Detached bool
	ProcID   string // the supervisor's exec id, once started
	Pid      int
	ExitCode *int // once known: the process exited (or could not start)
}

func (e *execConfig) finished() bool { return e.ExitCode != nil }

// execStore holds the exec configurations, bounded by max.
type execStore struct {
	max int

	mu    sync.Mutex
	m     map[string]*execConfig
	order []string // ids, oldest first
}

func newExecStore(max int) *execStore {
	return &execStore{max: max, m: map[string]*execConfig{}}
}

// add stores a new exec configuration and returns its id.
func (x *execStore) add(e execConfig) string {
	e.ID = names.NewID()
	x.mu.Lock()
	defer x.mu.Unlock()
	for len(x.m) >= x.max {
		x.evictLocked()
	}
	x.m[e.ID] = &e
	x.order = append(x.order, e.ID)
	return e.ID
}

// evictLocked forgets one configuration: the oldest finished one, else
// the oldest never started, else the oldest.
func (x *execStore) evictLocked() {
	pick := -1
	for _, pass := range []func(*execConfig) bool{
		(*execConfig).finished,
		func(e *execConfig) bool { return !e.Started },
		func(*execConfig) bool { return true },
	} {
		for i, id := range x.order {
			if pass(x.m[id]) {
				pick = i
				break
			}
		}
		if pick >= 0 {
			break
		}
	}
	if pick < 0 {
		return
	}
	delete(x.m, x.order[pick])
	x.order = append(x.order[:pick], x.order[pick+1:]...)
}

// get returns a copy of exec id.
func (x *execStore) get(id string) (execConfig, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.m[id]
	if !ok {
		return execConfig{}, noSuchExec(id)
	}
	return *e, nil
}

// start marks exec id started (once: a second start is a conflict, as in
// Docker) and returns a copy.
func (x *execStore) start(id string, detach bool) (execConfig, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.m[id]
	switch {
	case !ok:
		return execConfig{}, noSuchExec(id)
	case e.finished():
		return execConfig{}, fmt.Errorf("Error: Exec command %s has already run: %w", id, errdefs.ErrConflict)
	case e.Started:
		return execConfig{}, fmt.Errorf("Error: Exec command %s is already running: %w", id, errdefs.ErrConflict)
	}
	e.Started, e.Detached = true, detach
	return *e, nil
}

// update changes exec id, if it is still known.
func (x *execStore) update(id string, fn func(*execConfig)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.m[id]; ok {
		fn(e)
	}
}

// forgetContainer forgets the execs of a container that is gone.
func (x *execStore) forgetContainer(containerID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	kept := x.order[:0]
	for _, id := range x.order {
		if x.m[id].ContainerID == containerID {
			delete(x.m, id)
			continue
		}
		kept = append(kept, id)
	}
	clear(x.order[len(kept):])
	x.order = kept
}

// len is the number of configurations held.
func (x *execStore) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.m)
}

// noSuchExec is Docker's 404 for an unknown exec id.
func noSuchExec(id string) error {
	return &httpError{status: 404, msg: "No such exec instance: " + id, err: errdefs.ErrNotFound}
}
