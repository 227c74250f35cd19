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

// Reaper reaps every child of this process. One per process.
//
// Once Run is running, no other code in the process may wait for children
// (exec.Cmd.Run, exec.Cmd.Wait, os.Process.Wait, wait4…): the reaper takes
// their exit statuses. Commands must be run through Start and Wait instead.
//
// How it learns of exits: by default through a pidfd per child it knows of
// — each command of Start, each process given to Watch — held in an epoll
// instance that Go's poller waits on, so an idle reaper holds no thread;
// every exit seen reaps all exited children (wait4(-1)), the others
// included. A child it does not know of (an orphan of a process that is
// not its child, re-parented to this subreaper) is reaped at the next
// exit seen; where such orphans are expected (a container sharing this
// process's pid namespace), ReapOnSignal reaps on every SIGCHLD as well,
// as the reaper does when the kernel has no pidfds. SIGCHLD costs the
// process three threads (os/signal's).
//
// Delivery policy: exits are never dropped. Every Notify function has its
// own unbounded queue drained by a goroutine of its own, which runs only
// while the queue is not empty, so a slow function delays only itself (its
// queue grows until it returns or is stopped), never blocks the reaper,
// and an idle one costs no goroutine.
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
	subs    map[*subscriber]struct{}
	waiters map[int]chan Exit   // pid -> Start channel
	byChan  map[<-chan Exit]int // Start channel -> pid

	// exits is an epoll instance of pidfds, readable when a watched
	// process has exited; nil when the kernel has no pidfds.
	exits  *os.File
	pidfds map[int32]struct{} // the pidfds in exits, guarded by mu
	// signals: reap on SIGCHLD (ReapOnSignal). runCtx is the context of
	// the running Run, which owns the signal loop. Guarded by mu.
	signals bool
	runCtx  context.Context
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
	exits, err := newExitPoll()
	if err != nil {
		return nil, err
	}
	singleton = &Reaper{
		subs:    make(map[*subscriber]struct{}),
		waiters: make(map[int]chan Exit),
		byChan:  make(map[<-chan Exit]int),
		exits:   exits,
		pidfds:  make(map[int32]struct{}),
		signals: exits == nil,
	}
	return singleton, nil
}

// newExitPoll returns a non-blocking epoll instance in Go's poller, or nil
// when the kernel has no pidfd_open (before Linux 5.3).
func newExitPoll() (*os.File, error) {
	self, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return nil, nil
	}
	unix.Close(self)
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("reaper: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("reaper: epoll instance: %w", err)
	}
	return os.NewFile(uintptr(fd), "reaper-exits"), nil
}

// Watch tells the reaper to reap as soon as the process pid exits: a
// process that is or will become its child (re-parented to it) whose exit
// it must not miss, such as a container's init. A pid that has no process
// (already reaped) is ignored. When the kernel gives no pidfd for it (out
// of file descriptors), the reaper reaps on SIGCHLD from then on.
func (r *Reaper) Watch(pid int) {
	if r.exits == nil {
		return // SIGCHLD sees every exit
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err = unix.EpollCtl(int(r.exits.Fd()), unix.EPOLL_CTL_ADD, fd, &ev); err == nil {
			r.pidfds[int32(fd)] = struct{}{}
			return
		}
		unix.Close(fd)
	}
	r.reapOnSignalLocked()
}

// ReapOnSignal makes the reaper reap on every SIGCHLD from now on, for as
// long as Run runs (and in every later Run): for children it cannot know
// of. It is idempotent.
func (r *Reaper) ReapOnSignal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reapOnSignalLocked()
}

func (r *Reaper) reapOnSignalLocked() {
	if r.signals {
		return
	}
	r.signals = true
	if r.runCtx != nil {
		go r.reapOnSignal(r.runCtx)
	}
}

// Run reaps until ctx is done: whenever a watched process exits (or, with
// ReapOnSignal, on every SIGCHLD) it calls wait4(-1, WNOHANG) until no
// exited child is left and delivers each Exit to the subscribers and to the
// Start channel of its pid. It also reaps once when it begins, for children
// that exited before it was listening. It returns when ctx is done; it may
// be called again later, not while it runs.
func (r *Reaper) Run(ctx context.Context) {
	r.mu.Lock()
	r.runCtx = ctx
	signals := r.signals
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.runCtx = nil
		r.mu.Unlock()
	}()
	if r.exits == nil {
		r.reapOnSignal(ctx)
		return
	}
	if signals {
		go r.reapOnSignal(ctx)
	}
	rc, err := r.exits.SyscallConn()
	if err != nil {
		r.reapOnSignalInstead(ctx)
		return
	}
	// A read deadline in the past wakes the wait below.
	stop := context.AfterFunc(ctx, func() { r.exits.SetReadDeadline(time.Now()) })
	defer func() {
		stop()
		r.exits.SetReadDeadline(time.Time{})
	}()
	var events [16]unix.EpollEvent
	for {
		r.reap()
		err := rc.Read(func(fd uintptr) bool { return r.takeExits(int(fd), events[:]) })
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The wake-up of an earlier Run's context, late.
			r.exits.SetReadDeadline(time.Time{})
		case err != nil: // cannot be (the instance stays open): play safe
			r.reapOnSignalInstead(ctx)
			return
		}
	}
}

// reapOnSignalInstead reaps on SIGCHLD until ctx is done, where the
// pidfds cannot be waited for (unless a signal loop of this Run does).
func (r *Reaper) reapOnSignalInstead(ctx context.Context) {
	r.mu.Lock()
	running := r.signals
	r.signals = true
	r.mu.Unlock()
	if running {
		<-ctx.Done()
		return
	}
	r.reapOnSignal(ctx)
}

// takeExits forgets the pidfds of processes that have exited; false when
// there is none (the poller then waits for the epoll instance).
func (r *Reaper) takeExits(epfd int, events []unix.EpollEvent) bool {
	n, err := unix.EpollWait(epfd, events, 0)
	if err != nil || n <= 0 {
		return err == unix.EINTR // try again at once
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range events[:n] {
		unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, int(ev.Fd), nil)
		unix.Close(int(ev.Fd))
		delete(r.pidfds, ev.Fd)
	}
	return true
}

// reapOnSignal reaps on every SIGCHLD until ctx is done.
func (r *Reaper) reapOnSignal(ctx context.Context) {
	sigc := make(chan os.Signal, 128)
	signal.Notify(sigc, unix.SIGCHLD)
	defer signal.Stop(sigc)
	for {
		r.reap() // what exited before Notify, then each time
		select {
		case <-ctx.Done():
			return
		case <-sigc:
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
	for s := range r.subs {
		s.push(e)
	}
}

// Notify calls fn with every Exit reaped from now on, in reaping order,
// until stop is called; stop returns once no call is under way. fn runs in
// a goroutine that exists only while exits are queued for it (never in the
// reaper's): a slow fn delays only its own exits, which are queued without
// bound. fn must not call stop.
func (r *Reaper) Notify(fn func(Exit)) (stop func()) {
	s := &subscriber{done: make(chan struct{}), deliver: fn}
	r.mu.Lock()
	r.subs[s] = struct{}{}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.subs, s)
		r.mu.Unlock()
		s.stop()
	}
}

// Unsubscribe gives up ch, a channel from Start, and closes it: the
// process is still reaped, its exit is not delivered. Unknown channels are
// ignored.
func (r *Reaper) Unsubscribe(ch <-chan Exit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pid, ok := r.byChan[ch]; ok {
		close(r.waiters[pid])
		delete(r.waiters, pid)
		delete(r.byChan, ch)
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
	r.Watch(cmd.Process.Pid) // reaping is held off: the pid is cmd's
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

// subscriber is one Notify function with its unbounded queue, drained by
// a goroutine that runs only while the queue is not empty.
type subscriber struct {
	deliver func(Exit)
	done    chan struct{} // closed by stop

	mu       sync.Mutex
	queue    []Exit
	draining bool // a drain goroutine runs
	stopped  bool
	drains   sync.WaitGroup
}

// push queues e and starts a drain if none runs; it never blocks.
func (s *subscriber) push(e Exit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.queue = append(s.queue, e)
	if !s.draining {
		s.draining = true
		s.drains.Add(1)
		go s.drain()
	}
}

// drain delivers the queued exits, in order, until the queue is empty or
// the subscriber stopped.
func (s *subscriber) drain() {
	defer s.drains.Done()
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		if len(batch) == 0 || s.stopped {
			s.draining = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		for _, e := range batch {
			select {
			case <-s.done:
				return // stop is waiting; the rest is discarded
			default:
				s.deliver(e)
			}
		}
	}
}

// stop ends delivery and waits for a drain under way.
func (s *subscriber) stop() {
	s.mu.Lock()
	s.stopped = true
	close(s.done)
	s.mu.Unlock()
	s.drains.Wait()
}
