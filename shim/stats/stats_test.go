package stats

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
)

const (
	mib = 1 << 20

	// childEnv makes the re-executed test binary a memory-hungry child:
	// its value is the number of MiB to allocate and touch.
	childEnv = "CONDENSER_STATS_TEST_CHILD_MIB"

	testParent = "/condenser-test"
	waitLong   = 30 * time.Second
)

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(childMain(v))
	}
	os.Exit(m.Run())
}

// childMain waits for a line on stdin (sent once the parent has moved it
// into the test cgroup, so the memory is charged there), allocates and
// touches n MiB, prints "ready" and blocks until stdin is closed.
func childMain(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad", childEnv, v)
		return 2
	}
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return 3
	}
	buf := make([]byte, n*mib)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, in)
	runtime.KeepAlive(buf)
	return 0
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test creates cgroups and must run as root (CI=true, so not skipping)")
	}
	t.Skip("skipping: creating cgroups needs root (run the tests as root; with CI=true this fails instead)")
}

// pather is implemented by every cgroup1 subsystem that has a directory.
type pather interface {
	Path(path string) string
}

func randomName(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// testCgroup is a cgroup the test created with the library, for the mode
// the host is in.
type testCgroup struct {
	path   string
	v2     bool
	add    func(pid int) error
	delete func() error
}

// limits: memLimit and pidsLimit 0 mean unlimited. The memory limit is also
// the memory+swap limit, when the kernel accounts swap, so an OOM test
// cannot be saved by swapping.
func newTestCgroup(t *testing.T, memLimit, pidsLimit int64) *testCgroup {
	t.Helper()
	requireRoot(t)
	path := testParent + "/" + randomName(t)
	tc := &testCgroup{path: path}
	var parentDirs []string

	switch mode := cgroups.Mode(); mode {
	case cgroups.Unified:
		tc.v2 = true
		res := &cgroup2.Resources{}
		if memLimit > 0 {
			res.Memory = &cgroup2.Memory{Max: &memLimit}
		}
		if pidsLimit > 0 {
			res.Pids = &cgroup2.Pids{Max: pidsLimit}
		}
		m, err := cgroup2.NewManager(defaultV2Mountpoint, path, res)
		if err != nil {
			t.Fatalf("create v2 cgroup %s: %v", path, err)
		}
		if memLimit > 0 {
			if exists(filepath.Join(defaultV2Mountpoint, path, "memory.swap.max")) {
				zero := int64(0)
				if err := m.Update(&cgroup2.Resources{Memory: &cgroup2.Memory{Swap: &zero}}); err != nil {
					t.Fatalf("set memory.swap.max: %v", err)
				}
			} else {
				t.Logf("note: no memory.swap.max (no swap accounting); memory.max alone limits the cgroup")
			}
		}
		tc.add = func(pid int) error { return m.AddProc(uint64(pid)) }
		tc.delete = func() error { return deleteV2(m, filepath.Join(defaultV2Mountpoint, path)) }
		parentDirs = []string{filepath.Join(defaultV2Mountpoint, testParent)}
	case cgroups.Legacy, cgroups.Hybrid:
		res := &specs.LinuxResources{}
		if memLimit > 0 {
			res.Memory = &specs.LinuxMemory{Limit: &memLimit}
			if exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") {
				res.Memory.Swap = &memLimit
			} else {
				t.Logf("note: no memory.memsw.* files (no swap accounting); memory.limit_in_bytes alone limits the cgroup")
			}
		}
		if pidsLimit > 0 {
			res.Pids = &specs.LinuxPids{Limit: &pidsLimit}
		}
		cg, err := cgroup1.New(cgroup1.StaticPath(path), res)
		if err != nil {
			t.Fatalf("create v1 cgroup %s: %v", path, err)
		}
		tc.add = func(pid int) error { return cg.Add(cgroup1.Process{Pid: pid}) }
		tc.delete = func() error {
			if err := cg.Delete(); err != nil && !errors.Is(err, cgroup1.ErrCgroupDeleted) {
				return err
			}
			return nil
		}
		for _, s := range cg.Subsystems() {
			if p, ok := s.(pather); ok {
				parentDirs = append(parentDirs, p.Path(testParent))
			}
		}
	default:
		t.Fatalf("no cgroup file system (mode %d)", mode)
	}

	// Registered before any child's cleanup, so it runs after the children
	// are killed and reaped.
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := tc.delete()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("delete test cgroup %s: %v", path, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, d := range parentDirs {
			_ = unix.Rmdir(d) // best effort: another run may be using it
		}
	})
	return tc
}

// deleteV2 removes a v2 test cgroup; removing it twice is no error.
func deleteV2(m *cgroup2.Manager, dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return m.Delete()
}

// child is a re-executed test binary (see childMain).
type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  *os.File
	done    chan struct{}
	waitErr error
}

func startChild(t *testing.T, allocMiB int) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(allocMiB))
	cmd.Stdout = w
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	c := &child{cmd: cmd, stdin: stdin, stdout: r, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-c.done:
		case <-time.After(waitLong):
			t.Errorf("child %d did not exit after SIGKILL", cmd.Process.Pid)
		}
		stdin.Close()
		r.Close()
	})
	return c
}

// run lets the child allocate.
func (c *child) run(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		t.Fatalf("signal child: %v", err)
	}
}

// waitReady waits for the child to report its memory allocated and touched.
func (c *child) waitReady(t *testing.T) {
	t.Helper()
	if err := c.stdout.SetReadDeadline(time.Now().Add(waitLong)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c.stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("child not ready: %q, %v", line, err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in %s: %s", what, waitLong, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLoadNotFound(t *testing.T) {
	if cgroups.Mode() == cgroups.Unavailable {
		t.Skip("no cgroup file system")
	}
	_, err := Load(testParent + "/does-not-exist-" + randomName(t))
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Load of a missing cgroup: err = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "relative/path", "/a/../b", "/", "/sys/fs/cgroup/memory/x"} {
		if _, err := Load(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Load(%q): err = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestStats(t *testing.T) {
	const memLimit, pidsLimit, alloc = 64 * mib, 100, 16
	tc := newTestCgroup(t, memLimit, pidsLimit)
	ch := startChild(t, alloc)
	if err := tc.add(ch.cmd.Process.Pid); err != nil {
		t.Fatalf("add child to cgroup: %v", err)
	}
	ch.run(t)
	ch.waitReady(t)

	c, err := Load(tc.path)
	if err != nil {
		t.Fatalf("Load(%s): %v", tc.path, err)
	}
	if c.V2() != tc.v2 {
		t.Fatalf("V2() = %v, want %v (mode %d)", c.V2(), tc.v2, cgroups.Mode())
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	t.Logf("v2=%v stats: %+v", c.V2(), *st)

	if st.MemoryUsage < alloc*mib {
		t.Errorf("MemoryUsage = %d, want ≥ %d (the child touched %d MiB)", st.MemoryUsage, alloc*mib, alloc)
	}
	if st.MemoryLimit != memLimit {
		t.Errorf("MemoryLimit = %d, want %d", st.MemoryLimit, memLimit)
	}
	// memory.peak exists from Linux 5.19; v1 always has max_usage_in_bytes.
	if !c.V2() || exists(filepath.Join(c.dir2, "memory.peak")) {
		if st.MemoryMaxUsage < alloc*mib {
			t.Errorf("MemoryMaxUsage = %d, want ≥ %d", st.MemoryMaxUsage, alloc*mib)
		}
	}
	if st.PidsCurrent < 1 {
		t.Errorf("PidsCurrent = %d, want ≥ 1", st.PidsCurrent)
	}
	if st.PidsLimit != pidsLimit {
		t.Errorf("PidsLimit = %d, want %d", st.PidsLimit, pidsLimit)
	}
	if st.CPUUsageNanos == 0 {
		t.Errorf("CPUUsageNanos = 0, want > 0")
	}
	if st.OOMKills != 0 {
		t.Errorf("OOMKills = %d, want 0", st.OOMKills)
	}

	pids, err := c.Pids()
	if err != nil {
		t.Fatalf("Pids: %v", err)
	}
	if !slices.Equal(pids, []int{ch.cmd.Process.Pid}) {
		t.Errorf("Pids = %v, want [%d]", pids, ch.cmd.Process.Pid)
	}
}

func TestStatsUnlimitedAndDeleted(t *testing.T) {
	tc := newTestCgroup(t, 0, 0)
	c, err := Load(tc.path)
	if err != nil {
		t.Fatalf("Load(%s): %v", tc.path, err)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.MemoryLimit != 0 || st.PidsLimit != 0 {
		t.Errorf("unlimited cgroup: MemoryLimit = %d, PidsLimit = %d, want 0 and 0", st.MemoryLimit, st.PidsLimit)
	}
	if err := tc.delete(); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Stats(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Stats of a deleted cgroup: err = %v, want ErrNotFound", err)
	}
	if _, err := c.Pids(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Pids of a deleted cgroup: err = %v, want ErrNotFound", err)
	}
	if _, err := c.OOMKills(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("OOMKills of a deleted cgroup: err = %v, want ErrNotFound", err)
	}
	if _, err := Load(tc.path); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Load of a deleted cgroup: err = %v, want ErrNotFound", err)
	}
}

func TestOOMKill(t *testing.T) {
	const memLimit, alloc = 32 * mib, 200
	tc := newTestCgroup(t, memLimit, 100)
	c, err := Load(tc.path)
	if err != nil {
		t.Fatalf("Load(%s): %v", tc.path, err)
	}
	if n, err := c.OOMKills(); err != nil || n != 0 {
		t.Fatalf("OOMKills of a new cgroup = %d, %v; want 0", n, err)
	}

	ch := startChild(t, alloc)
	if err := tc.add(ch.cmd.Process.Pid); err != nil {
		t.Fatalf("add child to cgroup: %v", err)
	}
	ch.run(t)
	select {
	case <-ch.done:
	case <-time.After(waitLong):
		t.Fatalf("the child is still running after %s", waitLong)
	}
	var ee *exec.ExitError
	if !errors.As(ch.waitErr, &ee) {
		t.Fatalf("child exit: %v, want killed by SIGKILL", ch.waitErr)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child exit: %v, want killed by SIGKILL", ch.waitErr)
	}

	// Counted when the victim was picked: by the time it is reaped.
	n, err := c.OOMKills()
	if err != nil || n < 1 {
		t.Errorf("OOMKills after the kill = %d, %v; want ≥ 1", n, err)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	t.Logf("v2=%v stats after OOM: %+v", c.V2(), *st)
	if st.OOMKills != n {
		t.Errorf("Stats.OOMKills = %d, OOMKills %d", st.OOMKills, n)
	}
	if st.MemoryLimit != memLimit {
		t.Errorf("MemoryLimit = %d, want %d", st.MemoryLimit, memLimit)
	}
}

// TestV2OnHybridUnifiedMount exercises the v2 code on a host in hybrid mode:
// the cgroup2 hierarchy mounted at /sys/fs/cgroup/unified has no memory or
// pids controller there (they are bound to v1), but cpu.stat, cgroup.procs
// and io.stat-less stats work, which covers Load, Stats and the errors of the
// v2 path. On a unified host TestStats and TestOOMKill cover v2 fully.
func TestV2OnHybridUnifiedMount(t *testing.T) {
	const mount = "/sys/fs/cgroup/unified"
	if cgroups.Mode() != cgroups.Hybrid {
		t.Skipf("host not in hybrid mode (mode %d): v2 is covered by the other tests or not available", cgroups.Mode())
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(mount, &sfs); err != nil || sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skipf("%s is not a cgroup2 mount", mount)
	}
	requireRoot(t)
	path := testParent + "/" + randomName(t)
	m, err := cgroup2.NewManager(mount, path, &cgroup2.Resources{})
	if err != nil {
		t.Fatalf("create v2 cgroup: %v", err)
	}
	dir := filepath.Join(mount, path)
	t.Cleanup(func() { // runs after the child's cleanup has killed and reaped it
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := deleteV2(m, dir)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("delete v2 cgroup %s: %v", dir, err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = unix.Rmdir(filepath.Join(mount, testParent))
	})

	if _, err := loadV2(mount, path+"-missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("loadV2 of a missing cgroup: err = %v, want ErrNotFound", err)
	}

	ch := startChild(t, 8)
	if err := m.AddProc(uint64(ch.cmd.Process.Pid)); err != nil {
		t.Fatalf("add child: %v", err)
	}
	ch.run(t)
	ch.waitReady(t)

	c, err := loadV2(mount, path)
	if err != nil {
		t.Fatalf("loadV2: %v", err)
	}
	if !c.V2() {
		t.Fatal("V2() = false for a v2 cgroup")
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	t.Logf("v2 (hybrid unified mount) stats: %+v", *st)
	if st.CPUUsageNanos == 0 {
		t.Errorf("CPUUsageNanos = 0, want > 0 (cpu.stat usage_usec is always there in v2)")
	}
	if st.MemoryUsage != 0 || st.MemoryLimit != 0 || st.PidsCurrent != 0 || st.PidsLimit != 0 {
		t.Errorf("memory/pids stats without those controllers should be 0: %+v", *st)
	}
	if pids, err := c.Pids(); err != nil || !slices.Equal(pids, []int{ch.cmd.Process.Pid}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, ch.cmd.Process.Pid)
	}
	if _, err := c.OOMKills(); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("OOMKills without a memory controller: err = %v, want ErrUnavailable", err)
	}

	_ = ch.cmd.Process.Kill()
	<-ch.done
	eventually(t, "v2 cgroup deleted", func() (bool, string) {
		err := deleteV2(m, dir)
		return err == nil, fmt.Sprint(err)
	})
	if _, err := c.Stats(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Stats of a deleted v2 cgroup: err = %v, want ErrNotFound", err)
	}
}
