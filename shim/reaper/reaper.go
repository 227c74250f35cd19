package reaper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// subscriberBuffer is the capacity of a Subscribe channel. It is only a
// cushion: exits that do not fit wait in the subscriber's unbounded queue.
const subscriberBuffer = 64

// Reaper reaps every child of this process. One per process.
//
// Once Run is running, no other code in the process may wait for children
// (exec.Cmd.Run, exec.Cmd.Wait, os.Process.Wait, wait4…): the reaper takes
// their exit statuses. Commands must be run through Start and Wait instead.
//
// Delivery policy: exits are never dropped. Every Subscribe channel has its
// own unbounded queue drained by its own goroutine, so a slow subscriber
// delays only itself (its queue grows until it reads or unsubscribes) and
// never blocks the reaper.
type Reaper struct {
	// forkMu keeps the reaper from reaping while a command is being started:
	// Start holds it shared across cmd.Start and the registration of the new
	// pid, reap holds it exclusively across wait4 and the dispatch of the
	// exits. So an exit is either dispatched before the pid exists (it
	// belongs to an older process that had the same pid) or after the pid is
	// registered, and the failure path of os.StartProcess, which reaps its
	// half-started child itself, cannot be raced either.
	forkMu sync.RWMutex

	mu      sync.Mutex
	subs    map[<-chan Exit]*subscriber
	waiters map[int]chan Exit   // pid -> Start channel
	byChan  map[<-chan Exit]int // Start channel -> pid
}

var (
	singletonMu sync.Mutex
	singleton   *Reaper
)

// New makes the calling process a child subreaper (prctl
// PR_SET_CHILD_SUBREAPER) and returns a Reaper; it does not start reaping.
// There is one Reaper per process: later calls return the same one.
func New() (*Reaper, error) {
	singletonMu.Lock()
	defer singletonMu.Unlock()
	if singleton != nil {
		return singleton, nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("reaper: prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	singleton = &Reaper{
		subs:    make(map[<-chan Exit]*subscriber),
		waiters: make(map[int]chan Exit),
		byChan:  make(map[<-chan Exit]int),
	}
	return singleton, nil
}

// Run reaps until ctx is done: on every SIGCHLD it calls wait4(-1, WNOHANG)
// until no exited child is left and delivers each Exit to the subscribers and
// to the Start channel of its pid. It also reaps once when it begins, for
// children that exited before it was listening. It returns when ctx is done,
// after stopping signal delivery; it may be called again later.
func (r *Reaper) Run(ctx context.Context) {
	sigc := make(chan os.Signal, 128)
	signal.Notify(sigc, unix.SIGCHLD)
	defer signal.Stop(sigc)

	r.reap()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigc:
			r.reap()
		}
	}
}

// reap collects every child that has exited.
func (r *Reaper) reap() {
	r.forkMu.Lock()
	defer r.forkMu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD: no children at all; 0: none has exited
		}
		if !ws.Exited() && !ws.Signaled() {
			continue // not a termination (we ask for none of these)
		}
		status, sig := ExitStatus(ws)
		r.dispatch(Exit{Pid: pid, Status: status, Signal: sig, Timestamp: time.Now()})
	}
}

// dispatch hands e to its Start channel and every subscriber, without blocking.
func (r *Reaper) dispatch(e Exit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.waiters[e.Pid]; ok {
		delete(r.waiters, e.Pid)
		delete(r.byChan, ch)
		ch <- e // capacity 1, exactly one send
	}
	for _, s := range r.subs {
		s.push(e)
	}
}

// Subscribe returns a channel receiving every Exit reaped from now on, in
// reaping order, until Unsubscribe. Nothing is dropped: exits the subscriber
// has not read yet are queued without bound (see Reaper).
func (r *Reaper) Subscribe() <-chan Exit {
	s := &subscriber{
		out:     make(chan Exit, subscriberBuffer),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go s.forward()
	r.mu.Lock()
	r.subs[s.out] = s
	r.mu.Unlock()
	return s.out
}

// Unsubscribe stops delivery to ch, a channel from Subscribe or Start, and
// closes it; exits still queued for it are discarded. Unknown channels are
// ignored.
func (r *Reaper) Unsubscribe(ch <-chan Exit) {
	r.mu.Lock()
	s, ok := r.subs[ch]
	delete(r.subs, ch)
	if pid, ok := r.byChan[ch]; ok {
		close(r.waiters[pid])
		delete(r.waiters, pid)
		delete(r.byChan, ch)
	}
	r.mu.Unlock()
	if ok {
		s.stop()
	}
}

// Start starts cmd and returns a channel that receives exactly one value: the
// exit of cmd's process. The exit cannot be missed: reaping is held off from
// before the process is created until its pid is registered, which also makes
// Start immune to pid reuse. cmd must then be finished with Wait (or the
// channel given to Unsubscribe).
func (r *Reaper) Start(cmd *exec.Cmd) (<-chan Exit, error) {
	ch := make(chan Exit, 1)
	r.forkMu.RLock()
	defer r.forkMu.RUnlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.waiters[cmd.Process.Pid] = ch
	r.byChan[ch] = cmd.Process.Pid
	r.mu.Unlock()
	return ch, nil
}

// Wait waits for cmd's exit on ch (from Start), then releases cmd's
// resources: it calls cmd.Wait, which waits for the goroutines copying cmd's
// standard input and output — so a bytes.Buffer given as cmd.Stdout is
// complete — and closes the parent's ends of the pipes; cmd.Wait's error
// about the child being already reaped (ECHILD) is expected and ignored. It
// returns the exit status: the exit code, or 128+n when killed by signal n.
// Because the process error takes precedence inside cmd.Wait, errors of the
// copying goroutines are not reported. It blocks until Run reaps cmd.
func (r *Reaper) Wait(cmd *exec.Cmd, ch <-chan Exit) (int, error) {
	e, ok := <-ch
	if !ok {
		return -1, errors.New("reaper: exit channel was unsubscribed")
	}
	if err := cmd.Wait(); err != nil && !errors.Is(err, unix.ECHILD) {
		return e.Status, err
	}
	// cmd.Process is left as is (Release would reset its Pid to -1); its
	// pidfd, if any, is closed when the Process is garbage collected.
	return e.Status, nil
}

// ExitStatus decodes a wait status: the exit code and 0 for a process that
// exited, 128+n and n for one killed by signal n, and -1 and 0 otherwise.
func ExitStatus(ws unix.WaitStatus) (status, signal int) {
	switch {
	case ws.Exited():
		return ws.ExitStatus(), 0
	case ws.Signaled():
		sig := int(ws.Signal())
		return 128 + sig, sig
	default:
		return -1, 0
	}
}

// subscriber is one Subscribe channel with its unbounded queue.
type subscriber struct {
	out     chan Exit
	mu      sync.Mutex
	queue   []Exit
	wake    chan struct{} // capacity 1: queue is non-empty
	done    chan struct{} // closed by stop
	stopped chan struct{} // closed when forward has returned
}

// push queues e; it never blocks.
func (s *subscriber) push(e Exit) {
	s.mu.Lock()
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// forward moves queued exits to out, in order, until stop; then closes out.
func (s *subscriber) forward() {
	defer close(s.stopped)
	defer close(s.out)
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, e := range batch {
			select {
			case s.out <- e:
			case <-s.done:
				return
			}
		}
	}
}

func (s *subscriber) stop() {
	close(s.done)
	<-s.stopped
}
