package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

var scaleFlag = flag.Int("scale", 200, "running containers of rows 9 (started one after another, listed, the daemon killed, removed); 0 skips them; the issue's figure is 1000")

// scaleResults are the samples of rows 9: n containers running at once.
type scaleResults struct {
	n      int
	starts []time.Duration // one per container, in order
	total  time.Duration   // all the starts
	// Memory once all run: the monitors' (shims, conmons), the daemon's
	// before and after, the containers' cgroups, and the host's.
	monitorPSS, monitorRSS int64 // sums
	daemonBefore, daemon   int64 // RSS
	cgroup                 int64 // memory.usage_in_bytes of the containers' cgroups
	hostUsed, kernel       int64 // MemTotal−MemAvailable, Slab+PageTables+KernelStack: growth
	lists                  []time.Duration
	listTotal              time.Duration
	answer, reconnected    []time.Duration
	restartNA              bool
	remove                 time.Duration
}

// containersCgroup is an Engine that can tell the cgroup (a path below a
// hierarchy's root) that holds its containers' cgroups.
type containersCgroup interface {
	ContainersCgroup() string
}

func (c *Condenser) ContainersCgroup() string  { return c.cgroupParent }
func (p *Podman) ContainersCgroup() string     { return "/libpod_parent" }
func (c *Containerd) ContainersCgroup() string { return "/" + ctrNamespace }

// measureScale runs n `sleep` containers at once: starts them one after
// another, reads the memory they take, lists them under load, kills the
// daemon and restarts it, and removes them all. An engine that fails to
// start them all reports as many as it reached (the error is returned
// along).
func measureScale(ctx context.Context, e Engine, n, clients, listRequests int) (*scaleResults, error) {
	restore, err := raiseLimits(n)
	defer restore()
	if err != nil {
		return nil, err
	}
	s := &scaleResults{}
	if pid := e.DaemonPID(); pid != 0 {
		m, err := memoryOf(pid)
		if err != nil {
			return nil, err
		}
		s.daemonBefore = m.rss
	}
	hostBefore, kernelBefore, err := hostMemory()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	for i := range n {
		t1 := time.Now()
		if err = e.StartDetached(ctx, fmt.Sprint("scale", i)); err != nil {
			err = fmt.Errorf("start %d of %d: %w", i+1, n, err)
			break
		}
		s.starts = append(s.starts, time.Since(t1))
	}
	s.total, s.n = time.Since(t0), len(s.starts)
	if err != nil {
		return s, errors.Join(err, e.RemoveAll(context.WithoutCancel(ctx)))
	}

	// Memory, all running.
	hostAfter, kernelAfter, err := hostMemory()
	if err != nil {
		return nil, err
	}
	s.hostUsed, s.kernel = hostAfter-hostBefore, kernelAfter-kernelBefore
	pids, err := e.Monitors(ctx)
	if err != nil {
		return nil, err
	}
	for _, pid := range pids {
		if m, err := memoryOf(pid); err == nil {
			s.monitorPSS += m.pss
			s.monitorRSS += m.rss
		}
	}
	if pid := e.DaemonPID(); pid != 0 {
		m, err := memoryOf(pid)
		if err != nil {
			return nil, err
		}
		s.daemon = m.rss
	}
	if cg, ok := e.(containersCgroup); ok {
		s.cgroup, _ = readInt(filepath.Join("/sys/fs/cgroup/memory", cg.ContainersCgroup(), "memory.usage_in_bytes"))
	}

	// Listing n containers under load.
	if s.lists, s.listTotal, err = listLoad(ctx, e, listRequests, clients); err != nil {
		return nil, err
	}

	// Daemon restarts.
	for range 3 {
		a, rc, err := e.Restart(ctx, n)
		if errors.Is(err, ErrNotApplicable) {
			s.restartNA = true
			break
		}
		if err != nil {
			return nil, fmt.Errorf("restart: %w", err)
		}
		s.answer, s.reconnected = append(s.answer, a), append(s.reconnected, rc)
	}

	t0 = time.Now()
	if err := e.RemoveAll(ctx); err != nil {
		return nil, err
	}
	s.remove = time.Since(t0)
	return s, nil
}

// listLoad lists the containers from clients concurrent clients, requests
// times in all, for at most 30 s.
func listLoad(ctx context.Context, e Engine, requests, clients int) ([]time.Duration, time.Duration, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var (
		mu    sync.Mutex
		lists = make([]time.Duration, 0, requests)
	)
	t0 := time.Now()
	err := forEach(lctx, requests, clients, func(int) error {
		t1 := time.Now()
		err := e.List(lctx)
		d := time.Since(t1)
		mu.Lock()
		lists = append(lists, d)
		mu.Unlock()
		return err
	})
	total := time.Since(t0)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, 0, fmt.Errorf("list: %w", err)
	}
	return lists, total, nil
}

// hostMemory reads the host's memory in use (MemTotal − MemAvailable) and
// the kernel's own share of it that grows with processes and cgroups
// (Slab + PageTables + KernelStack), in bytes.
func hostMemory() (used, kernel int64, err error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0, err
	}
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			m[strings.TrimSuffix(f[0], ":")] = kb << 10
		}
	}
	return m["MemTotal"] - m["MemAvailable"], m["Slab"] + m["PageTables"] + m["KernelStack"], nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// threadsPerContainer bounds the tasks one running container adds: its
// process and its monitor's threads (a Go shim has a handful; conmon and
// containerd's shim similar), with room.
const threadsPerContainer = 16

// raiseLimits raises what n running containers need of the host's limits
// and no more: kernel.pid_max (every thread is a pid) and,
// on cgroup v2, inotify instances (a shim watches memory.events); it checks
// the descriptors. The function returned puts back what was changed.
func raiseLimits(n int) (restore func(), err error) {
	var undo []func()
	restore = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	raise := func(path string, want int64) error {
		have, err := readInt(path)
		if err != nil || have >= want {
			return err
		}
		if err := os.WriteFile(path, []byte(strconv.FormatInt(want, 10)), 0o644); err != nil {
			return fmt.Errorf("raising %s from %d to %d: %w", path, have, want, err)
		}
		undo = append(undo, func() { os.WriteFile(path, []byte(strconv.FormatInt(have, 10)), 0o644) })
		return nil
	}
	tasks, err := countTasks()
	if err != nil {
		return restore, err
	}
	if err := raise("/proc/sys/kernel/pid_max", int64(tasks+threadsPerContainer*n+4096)); err != nil {
		return restore, err
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		if err := raise("/proc/sys/fs/inotify/max_user_instances", int64(n+1024)); err != nil {
			return restore, err
		}
	}
	// The daemons (all in Go) raise their soft limit of descriptors to the
	// hard one themselves: the hard one must do.
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return restore, err
	}
	if want := uint64(8*n + 4096); rl.Max < want {
		return restore, fmt.Errorf("the hard limit of open files, %d, is below the %d that %d containers need", rl.Max, want, n)
	}
	return restore, nil
}

// countTasks counts the host's threads.
func countTasks() (int, error) {
	b, err := os.ReadFile("/proc/loadavg") // "0.00 0.01 0.05 1/170 12345": running/total tasks
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0, fmt.Errorf("/proc/loadavg: %q", b)
	}
	_, total, _ := strings.Cut(f[3], "/")
	return strconv.Atoi(total)
}
