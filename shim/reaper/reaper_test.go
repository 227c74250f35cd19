package reaper

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const deadline = 10 * time.Second

// startReaper makes the test process a subreaper and runs the Reaper for the
// duration of the test; cleanup checks that Run returns once cancelled.
func startReaper(t *testing.T) *Reaper {
	t.Helper()
	r, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(deadline):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	return r
}

// waitWithDeadline runs r.Wait, failing the test if it takes too long.
func waitWithDeadline(t *testing.T, r *Reaper, cmd *exec.Cmd, ch <-chan Exit) (int, error) {
	t.Helper()
	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		s, err := r.Wait(cmd, ch)
		res <- result{s, err}
	}()
	select {
	case x := <-res:
		return x.status, x.err
	case <-time.After(deadline):
		t.Fatalf("Wait for %v did not return", cmd.Args)
		return 0, nil
	}
}

func TestNewIsSubreaperAndSingleton(t *testing.T) {
	r1, err := New()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if r1 != r2 {
		t.Error("New returned two different Reapers")
	}
	var v int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&v)), 0, 0, 0); err != nil {
		t.Fatalf("prctl(PR_GET_CHILD_SUBREAPER): %v", err)
	}
	if v != 1 {
		t.Errorf("PR_GET_CHILD_SUBREAPER = %d, want 1", v)
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		ws          unix.WaitStatus
		status, sig int
		name        string
	}{
		{0, 0, 0, "exit 0"},
		{1 << 8, 1, 0, "exit 1"},
		{42 << 8, 42, 0, "exit 42"},
		{unix.WaitStatus(unix.SIGKILL), 137, 9, "SIGKILL"},
		{unix.WaitStatus(unix.SIGTERM) | 0x80, 143, 15, "SIGTERM with core"},
		{unix.WaitStatus(unix.SIGSTOP)<<8 | 0x7f, -1, 0, "stopped"},
	} {
		status, sig := ExitStatus(tc.ws)
		if status != tc.status || sig != tc.sig {
			t.Errorf("%s: ExitStatus(%#x) = %d, %d; want %d, %d", tc.name, uint32(tc.ws), status, sig, tc.status, tc.sig)
		}
	}
}

func TestStartWaitStatus(t *testing.T) {
	r := startReaper(t)
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 1", 1},
		{"exit 42", 42},
		{"kill -KILL $$", 137},
		{"kill -TERM $$", 143},
	} {
		t.Run(tc.script, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tc.script)
			ch, err := r.Start(cmd)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			status, err := waitWithDeadline(t, r, cmd, ch)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if status != tc.want {
				t.Errorf("status = %d, want %d", status, tc.want)
			}
		})
	}
}

func TestStartError(t *testing.T) {
	r := startReaper(t)
	cmd := exec.Command(filepath.Join(t.TempDir(), "does-not-exist"))
	if ch, err := r.Start(cmd); err == nil {
		t.Errorf("Start of a missing binary succeeded (ch %v)", ch)
	}
	// A binary that exists but cannot be executed fails after the fork:
	// os.StartProcess reaps that child itself, which must not be raced.
	bad := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(bad, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		cmd := &exec.Cmd{Path: bad, Args: []string{bad}} // no LookPath: the exec itself fails
		if _, err := r.Start(cmd); err == nil {
			t.Fatal("Start of a non-executable file succeeded")
		}
	}
}

func TestWaitCollectsAllOutput(t *testing.T) {
	r := startReaper(t)
	const n = 20000
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i"; i=$((i+1)); done; echo err >&2`, n))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	ch, err := r.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	status, err := waitWithDeadline(t, r, cmd, ch)
	if err != nil || status != 0 {
		t.Fatalf("Wait = %d, %v", status, err)
	}
	if cmd.Process.Pid != pid {
		t.Errorf("cmd.Process.Pid changed by Wait: %d, was %d", cmd.Process.Pid, pid)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != n || lines[n-1] != fmt.Sprintf("line %d", n-1) {
		t.Errorf("got %d lines ending %q, want %d", len(lines), lines[len(lines)-1], n)
	}
	if errb.String() != "err\n" {
		t.Errorf("stderr = %q", errb.String())
	}

	// A large write in one go, with stdout closed only at exit.
	cmd = exec.Command("head", "-c", "4194304", "/dev/zero")
	out.Reset()
	cmd.Stdout = &out
	if ch, err = r.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if status, err := waitWithDeadline(t, r, cmd, ch); err != nil || status != 0 {
		t.Fatalf("Wait = %d, %v", status, err)
	}
	if out.Len() != 4194304 {
		t.Errorf("collected %d bytes, want 4194304", out.Len())
	}
}

// procStat returns the state and parent pid of pid from /proc/<pid>/stat.
func procStat(pid int) (state byte, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) S ppid ..."; comm may contain spaces and parentheses.
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("short stat %q", b)
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err
}

// zombieChildren lists this process's children that are zombies.
func zombieChildren(t *testing.T) []int {
	t.Helper()
	files, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	var zombies []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread went away
		}
		for _, s := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(s)
			if state, _, err := procStat(pid); err == nil && state == 'Z' {
				zombies = append(zombies, pid)
			}
		}
	}
	return zombies
}

// subscribeBuffer is the capacity of a subscribe channel: the reaper's
// queue holds what does not fit.
const subscribeBuffer = 64

// subscribe returns a channel receiving every exit reaped from now on
// (Notify) until the test ends.
func subscribe(t *testing.T, r *Reaper) <-chan Exit {
	ch, done := make(chan Exit, subscribeBuffer), make(chan struct{})
	stop := r.Notify(func(e Exit) {
		select {
		case ch <- e:
		case <-done:
		}
	})
	t.Cleanup(func() {
		close(done)
		stop()
	})
	return ch
}

// runTrue runs `true` through r and returns its pid once it is reaped.
func runTrue(t *testing.T, r *Reaper) int {
	t.Helper()
	cmd := exec.Command("true")
	ch, err := r.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitWithDeadline(t, r, cmd, ch); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// startOrphans runs `sh -c script` through r; the script leaves two
// background processes and prints their pids. It returns sh's pid and
// theirs once sh has exited (they are the reaper's children then).
func startOrphans(t *testing.T, r *Reaper, script string) (sh int, orphans []int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	var out bytes.Buffer
	cmd.Stdout = &out
	ch, err := r.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if status, err := waitWithDeadline(t, r, cmd, ch); err != nil || status != 0 {
		t.Fatalf("Wait = %d, %v", status, err)
	}
	for _, s := range strings.Fields(out.String()) {
		pid, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("bad output %q", out.String())
		}
		orphans = append(orphans, pid)
	}
	if len(orphans) != 2 {
		t.Fatalf("expected two background pids, got %q", out.String())
	}
	return cmd.Process.Pid, orphans
}

// withSignals turns ReapOnSignal off again at the end of a test, once its
// Run (startReaper, which must come after it) has returned.
func withSignals(t *testing.T, r *Reaper) {
	t.Cleanup(func() {
		r.mu.Lock()
		r.signals = false
		r.mu.Unlock()
	})
}

// pidfdsOnly fails the test unless the reaper waits on pidfds alone (no
// earlier test left ReapOnSignal on).
func pidfdsOnly(t *testing.T, r *Reaper) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exits == nil || r.signals {
		t.Fatalf("the reaper reaps on SIGCHLD (pidfds: %v)", r.exits != nil)
	}
}

// An orphan the reaper does not know of is reaped at once with
// ReapOnSignal.
func TestOrphansAreReaped(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	withSignals(t, r)
	startReaper(t)
	r.ReapOnSignal()
	sub := subscribe(t, r)

	sh, orphans := startOrphans(t, r, `sleep 0.5 >/dev/null & echo $!; sleep 0.5 >/dev/null & echo $!; exit 0`)
	want := map[int]bool{sh: true}
	for _, pid := range orphans {
		want[pid] = true
	}
	// The sh has exited; any sleep still alive now belongs to us.
	me := os.Getpid()
	for _, pid := range orphans {
		if state, ppid, err := procStat(pid); err == nil && state != 'Z' && ppid != me {
			t.Errorf("orphan %d has parent %d, want this process %d", pid, ppid, me)
		}
	}

	timeout := time.After(deadline)
	for len(want) > 0 {
		select {
		case e, ok := <-sub:
			if !ok {
				t.Fatal("subscription closed")
			}
			if want[e.Pid] {
				if e.Status != 0 || e.Signal != 0 {
					t.Errorf("exit of %d: %+v, want status 0", e.Pid, e)
				}
				delete(want, e.Pid)
			}
		case <-timeout:
			t.Fatalf("no exit seen for %v", want)
		}
	}
	for _, pid := range orphans {
		if state, _, err := procStat(pid); err == nil && state == 'Z' {
			t.Errorf("orphan %d is a zombie", pid)
		}
	}
	if z := zombieChildren(t); len(z) > 0 {
		t.Errorf("zombie children remain: %v", z)
	}
}

func TestConcurrentStartWait(t *testing.T) {
	r := startReaper(t)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			cmd := exec.Command("sh", "-c", fmt.Sprintf("echo %d; exit %d", i, i))
			var out bytes.Buffer
			cmd.Stdout = &out
			ch, err := r.Start(cmd)
			if err != nil {
				errs <- fmt.Errorf("%d: Start: %v", i, err)
				return
			}
			status, err := r.Wait(cmd, ch)
			switch {
			case err != nil:
				errs <- fmt.Errorf("%d: Wait: %v", i, err)
			case status != i:
				errs <- fmt.Errorf("%d: status %d", i, status)
			case out.String() != fmt.Sprintf("%d\n", i):
				errs <- fmt.Errorf("%d: output %q", i, out.String())
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatal("concurrent Start/Wait did not finish")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A subscriber that does not read loses nothing and does not hold up the
// reaper or other waiters.
func TestSlowSubscriberLosesNothing(t *testing.T) {
	r := startReaper(t)
	slow := subscribe(t, r)

	const n = 3 * subscribeBuffer
	want := make(map[int]bool)
	for i := range n {
		cmd := exec.Command("true")
		ch, err := r.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if status, err := waitWithDeadline(t, r, cmd, ch); err != nil || status != 0 {
			t.Fatalf("%d: Wait = %d, %v", i, status, err)
		}
		want[cmd.Process.Pid] = true
	}
	timeout := time.After(deadline)
	for len(want) > 0 {
		select {
		case e := <-slow:
			delete(want, e.Pid)
		case <-timeout:
			t.Fatalf("%d exits never delivered", len(want))
		}
	}
}

// Notify calls its function with every exit, in reaping order, from a
// goroutine that exists only while exits are queued; after stop, never.
func TestNotify(t *testing.T) {
	r := startReaper(t)
	var (
		mu   sync.Mutex
		seen []int
	)
	release := make(chan struct{})
	stop := r.Notify(func(e Exit) {
		<-release // slow: the exits queue up meanwhile
		mu.Lock()
		seen = append(seen, e.Pid)
		mu.Unlock()
	})
	var want []int
	for range 5 {
		want = append(want, runTrue(t, r))
	}
	close(release)
	var s *subscriber
	r.mu.Lock()
	for x := range r.subs {
		s = x // the only one
	}
	r.mu.Unlock()
	eventually := time.Now().Add(deadline)
	for {
		mu.Lock()
		got := slices.Clone(seen)
		mu.Unlock()
		s.mu.Lock()
		draining := s.draining
		s.mu.Unlock()
		if len(got) == len(want) && !draining {
			if !slices.Equal(got, want) {
				t.Fatalf("exits %v, want %v (in order)", got, want)
			}
			break
		}
		if time.Now().After(eventually) {
			t.Fatalf("exits %v, want %v; draining %v", got, want, draining)
		}
		time.Sleep(10 * time.Millisecond)
	}

	stop()
	runTrue(t, r)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Errorf("an exit delivered after stop: %v", seen)
	}
}

// A Start channel can be given up: the process is still reaped.
func TestUnsubscribeStartChannel(t *testing.T) {
	r := startReaper(t)
	cmd := exec.Command("sleep", "0.1")
	ch, err := r.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	r.Unsubscribe(ch)
	if _, err := waitWithDeadline(t, r, cmd, ch); err == nil {
		t.Error("Wait on an unsubscribed channel succeeded")
	}
	// The reaper still collects it: wait until it is gone from /proc.
	for stop := time.Now().Add(deadline); ; time.Sleep(10 * time.Millisecond) {
		if _, _, err := procStat(cmd.Process.Pid); err != nil {
			break
		}
		if time.Now().After(stop) {
			t.Fatal("sleep never reaped")
		}
	}
}

// Without SIGCHLD, a process given to Watch — here an orphan of the
// reaper's child, as a container's init is — is reaped as soon as it
// exits; so is an orphan nobody named, at the next exit seen.
func TestWatchedOrphanIsReaped(t *testing.T) {
	r := startReaper(t)
	pidfdsOnly(t, r)
	sub := subscribe(t, r)

	// Two orphans: one watched, exiting after the unnamed one.
	_, orphans := startOrphans(t, r, `sleep 0.2 >/dev/null & echo $!; sleep 0.6 >/dev/null & echo $!; exit 0`)
	unnamed, watched := orphans[0], orphans[1]
	r.Watch(watched)

	timeout := time.After(deadline)
	seen := map[int]time.Time{}
	for seen[watched].IsZero() {
		select {
		case e := <-sub:
			seen[e.Pid] = time.Now()
			if e.Pid == watched && (e.Status != 0 || e.Signal != 0) {
				t.Errorf("exit of %d: %+v, want status 0", e.Pid, e)
			}
		case <-timeout:
			t.Fatalf("no exit seen for the watched orphan %d (seen: %v)", watched, seen)
		}
	}
	if seen[unnamed].IsZero() {
		t.Errorf("the unnamed orphan %d was not reaped with the watched one", unnamed)
	}
	if z := zombieChildren(t); len(z) > 0 {
		t.Errorf("zombie children remain: %v", z)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pidfds) != 0 {
		t.Errorf("pidfds of exited processes are kept: %v", r.pidfds)
	}
}

func TestRunReturnsOnCancel(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	// Prove it is reaping before cancelling.
	cmd := exec.Command("sh", "-c", "exit 7")
	ch, err := r.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if status, err := waitWithDeadline(t, r, cmd, ch); err != nil || status != 7 {
		t.Fatalf("Wait = %d, %v", status, err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatal("Run did not return after cancel")
	}

	// A command started while Run is stopped is reaped once Run starts again.
	cmd = exec.Command("sh", "-c", "exit 3")
	if ch, err = r.Start(cmd); err != nil {
		t.Fatal(err)
	}
	startReaper(t)
	if status, err := waitWithDeadline(t, r, cmd, ch); err != nil || status != 3 {
		t.Fatalf("Wait = %d, %v", status, err)
	}
}
