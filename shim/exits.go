package shim

import (
	"sync"

	"github.com/raind/condenser/shim/reaper"
)

// maxPending bounds the exits kept for processes whose pid is not known
// yet; past it the oldest are forgotten (they are the runtime's own
// commands and orphans, not the awaited processes, which register soon).
const maxPending = 4096

// exitWatch hands the reaper's exits to the processes the shim waits for:
// the container's init and its exec processes. Their pids are known only
// once the runtime has written them, and a process can exit before that
// (an init dying during create, `sh -c "exit 3"` exec'd): exits of unknown
// pids are kept while a registration is expected, and replayed to it.
//
// A registration begins with expect, before the runtime starts the
// process, and ends with register (the pid is known) or cancel (the
// runtime failed). A kept exit is replayed only to a registration expected
// before it was reaped: an exit reaped earlier belongs to another process
// that had the same pid.
type exitWatch struct {
	mu        sync.Mutex
	seq       uint64 // exits received so far
	expecting int    // registrations begun and not ended
	waiting   map[int]func(reaper.Exit)
	pending   map[int]pendingExit
}

type pendingExit struct {
	e   reaper.Exit
	seq uint64
}

// ticket is a registration begun by expect.
type ticket uint64

func newExitWatch() *exitWatch {
	return &exitWatch{waiting: map[int]func(reaper.Exit){}}
}

// deliver hands e to the registration of its pid, or keeps it for one
// that is expected; the reaper calls it (Notify) with every exit.
func (w *exitWatch) deliver(e reaper.Exit) {
	w.mu.Lock()
	w.seq++
	fn, ok := w.waiting[e.Pid]
	if ok {
		delete(w.waiting, e.Pid)
	} else if w.expecting > 0 {
		if w.pending == nil {
			w.pending = map[int]pendingExit{}
		}
		if len(w.pending) >= maxPending {
			w.dropOldestLocked()
		}
		w.pending[e.Pid] = pendingExit{e: e, seq: w.seq}
	}
	w.mu.Unlock()
	if ok {
		fn(e)
	}
}

func (w *exitWatch) dropOldestLocked() {
	oldest, first := 0, true
	var oldestSeq uint64
	for pid, p := range w.pending {
		if first || p.seq < oldestSeq {
			oldest, oldestSeq, first = pid, p.seq, false
		}
	}
	delete(w.pending, oldest)
}

// expect begins a registration: from now on, exits of unknown pids are
// kept for it.
func (w *exitWatch) expect() ticket {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expecting++
	return ticket(w.seq)
}

// register ends the registration t with the process's pid: fn is called
// once with its exit, now if it was already reaped (then in the caller's
// goroutine), else in the watcher's. fn must not block.
func (w *exitWatch) register(t ticket, pid int, fn func(reaper.Exit)) {
	w.mu.Lock()
	p, ok := w.pending[pid]
	if ok {
		delete(w.pending, pid)
		ok = p.seq > uint64(t)
	}
	if !ok {
		w.waiting[pid] = fn
	}
	w.endLocked()
	w.mu.Unlock()
	if ok {
		fn(p.e)
	}
}

// cancel ends the registration t without a process.
func (w *exitWatch) cancel(ticket) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.endLocked()
}

func (w *exitWatch) endLocked() {
	w.expecting--
	if w.expecting == 0 {
		w.pending = nil
	}
}
