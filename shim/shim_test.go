package shim

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/shim/logging"
)

// shimBinary is condenser-shim built once for the package's tests.
var shimBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "condenser-shim-test-")
	if err != nil {
		panic(err)
	}
	shimBinary = filepath.Join(dir, "condenser-shim")
	// Built as `make build` builds it; CONDENSER_SHIM_RACE=1 builds it
	// with the race detector (its reports go to the shims' logs, or where
	// GORACE's log_path says).
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", shimBinary, "../cmd/condenser-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOEXPERIMENT=nogreenteagc") // the Makefile's SHIM_GOEXPERIMENT
	if os.Getenv("CONDENSER_SHIM_RACE") == "1" {
		build = exec.Command("go", "build", "-race", "-o", shimBinary, "../cmd/condenser-shim")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
	}
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build condenser-shim: %v\n%s", err, out)
		os.Exit(1)
	}
	// The Droplet driver (delete's tests) makes Droplet's fixed audit
	// directory, /etc/raind/log, as a caller of Droplet must: the tests
	// leave no /etc/raind where there was none.
	_, err = os.Stat("/etc/raind")
	raindAbsent := errors.Is(err, fs.ErrNotExist)
	code := m.Run()
	if raindAbsent {
		os.RemoveAll("/etc/raind")
	}
	os.RemoveAll(dir)
	// The runtimes create the parent of the containers' cgroups; remove it
	// (rmdir only succeeds once it is empty).
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/condenser-test")
	for _, p := range parents {
		os.Remove(p)
	}
	os.Exit(code)
}

// runtimeCase is one OCI runtime the tests run containers with.
type runtimeCase = testutil.Runtime

func runtimes(t *testing.T) []runtimeCase { return testutil.Runtimes(t) }

// container is one container under a real shim, driven through
// shim/client, cleaned up after the test.
type container struct {
	t      *testing.T
	id     string
	bundle string
	opts   client.Options
	client *client.Client
}

// socket is the path of the container's shim socket.
func (c *container) socket() string { return client.Socket(c.bundle) }

type specOpt func(*specs.Spec)

func withMemory(limit int64) specOpt {
	return func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
		if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
			s.Linux.Resources.Memory.Swap = &limit
		}
	}
}

func withHostPID() specOpt {
	return func(s *specs.Spec) {
		var ns []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.PIDNamespace {
				ns = append(ns, n)
			}
		}
		s.Linux.Namespaces = ns
	}
}

// busyboxRootfs makes a root filesystem of the host's static busybox.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lower")
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("static busybox (busybox-static): %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "true", "false", "sleep", "echo", "cat", "yes", "head", "dd", "kill", "ls", "tr"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// newContainer writes a bundle for args, starts a shim and creates the
// container (not started).
func newContainer(t *testing.T, rt runtimeCase, args []string, opts ...specOpt) *container {
	t.Helper()
	return newContainerWith(t, rt, args, func(o client.Options) (string, error) { return client.Launch(context.Background(), o) }, opts...)
}

// newContainerWith is newContainer with the shim started by launch.
func newContainerWith(t *testing.T, rt runtimeCase, args []string, launch func(client.Options) (string, error), opts ...specOpt) *container {
	t.Helper()
	c := newBundle(t, rt, args, opts...)
	ctx := context.Background()
	addr, err := launch(c.opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.client, err = client.Dial(ctx, addr); err != nil {
		t.Fatal(err)
	}
	_, err = c.client.Create(ctx, client.CreateOptions{
		Rootfs:     c.rootfs(),
		LogMaxSize: 1 << 20, LogMaxFiles: 3,
	})
	if err != nil {
		t.Fatalf("create: %v\nshim log:\n%s", err, c.shimLog())
	}
	return c
}

// rootfs is the overlay of a busybox root filesystem for the container.
func (c *container) rootfs() []rootfs.Mount {
	base := filepath.Dir(c.bundle)
	upper, work := filepath.Join(base, "upper"), filepath.Join(base, "work")
	os.Mkdir(upper, 0o755)
	os.Mkdir(work, 0o755)
	return []rootfs.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + busyboxRootfs(c.t), "upperdir=" + upper, "workdir=" + work}}}
}

// newBundle writes the bundle of a container running args (no shim yet),
// and registers its clean-up.
func newBundle(t *testing.T, rt runtimeCase, args []string, opts ...specOpt) *container {
	t.Helper()
	id := names.NewID()
	base := t.TempDir()
	bundle := filepath.Join(base, "bundle")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(id, args)
	for _, o := range opts {
		o(spec)
	}
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	o := client.Options{Binary: shimBinary, ID: id, Bundle: bundle, Runtime: rt.Binary, RuntimeRoot: filepath.Join(base, "rtroot")}
	c := &container{t: t, id: id, bundle: bundle, opts: o}
	t.Cleanup(c.cleanup)
	return c
}

func (c *container) shimLog() string {
	b, _ := os.ReadFile(filepath.Join(c.bundle, "shim.log"))
	return string(b)
}

func (c *container) shimPid() int {
	b, err := os.ReadFile(filepath.Join(c.bundle, api.PidFile))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(b))
	return pid
}

// cleanup removes whatever the test left of the container with
// client.Cleanup (`condenser-shim delete`), which must succeed.
func (c *container) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if c.client != nil {
		c.client.Close()
	}
	if _, err := client.Cleanup(ctx, c.opts); err != nil {
		c.t.Errorf("cleanup: %v", err)
		exec.Command(c.opts.Runtime, "--root", c.opts.RuntimeRoot, "delete", "--force", c.id).Run()
		syscall.Unmount(filepath.Join(c.bundle, "rootfs"), syscall.MNT_DETACH)
	}
}

// waitGone waits until pid has exited (a zombie waiting for its parent,
// which for a detached shim is PID 1, counts as exited).
func waitGone(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if s := string(b); strings.HasPrefix(s[strings.LastIndexByte(s, ')')+1:], " Z") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("shim %d still running", pid)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func testSpec(id string, args []string) *specs.Spec {
	return &specs.Spec{
		Version: "1.0.2", // what every runtime here accepts (crun 1.8 refuses 1.3)
		Process: &specs.Process{
			Args: args, Cwd: "/",
			Env: []string{"PATH=/bin"},
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  []string{"CAP_KILL", "CAP_SETUID", "CAP_SETGID"},
				Effective: []string{"CAP_KILL", "CAP_SETUID", "CAP_SETGID"},
				Permitted: []string{"CAP_KILL", "CAP_SETUID", "CAP_SETGID"},
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "shimtest",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/condenser-test/" + id,
			Resources:   &specs.LinuxResources{},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			},
			MaskedPaths:   []string{"/proc/kcore"},
			ReadonlyPaths: []string{"/proc/sys"},
		},
	}
}

func (c *container) start() {
	c.t.Helper()
	if _, err := c.client.Start(context.Background()); err != nil {
		c.t.Fatalf("start: %v\nshim log:\n%s", err, c.shimLog())
	}
}

func (c *container) wait() client.Exit {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := c.client.Wait(ctx)
	if err != nil {
		c.t.Fatalf("wait: %v", err)
	}
	return e
}

func TestExitCodes(t *testing.T) {
	for _, rt := range runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			tests := []struct {
				name   string
				args   []string
				opts   []specOpt
				signal syscall.Signal
				want   int
			}{
				{"true", []string{"true"}, nil, 0, 0},
				{"false", []string{"false"}, nil, 0, 1},
				{"exit 42", []string{"sh", "-c", "exit 42"}, nil, 0, 42},
				{"SIGKILL", []string{"sleep", "100"}, nil, syscall.SIGKILL, 137},
				// pid 1 of a pid namespace ignores SIGTERM without a handler:
				// share the host's to see the signal's default action.
				{"SIGTERM", []string{"sleep", "100"}, []specOpt{withHostPID()}, syscall.SIGTERM, 143},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					c := newContainer(t, rt, tc.args, tc.opts...)
					c.start()
					if tc.signal != 0 {
						if err := c.client.Kill(context.Background(), tc.signal, false); err != nil {
							t.Fatal(err)
						}
					}
					e := c.wait()
					if e.ExitCode != tc.want || e.ExitedAt.IsZero() || e.OOMKilled {
						t.Errorf("exit %+v, want code %d", e, tc.want)
					}
					onDisk, err := api.ReadExit(c.bundle)
					if err != nil || onDisk.ExitCode != tc.want {
						t.Errorf("exit.json: %+v %v", onDisk, err)
					}
					st, err := c.client.State(context.Background())
					if err != nil || st.Status != client.StatusStopped || st.Exit.ExitCode != tc.want || st.Exit.ExitedAt.IsZero() {
						t.Errorf("state %v %v", st, err)
					}
					c.deleteAndShutdown()
				})
			}
		})
	}
}

// deleteAndShutdown deletes the container, stops the shim and checks that
// nothing stays behind: mount, runtime state, socket, shim process. It
// returns the exit status Delete reports.
func (c *container) deleteAndShutdown() client.Exit {
	c.t.Helper()
	ctx := context.Background()
	pid := c.shimPid()
	e, err := c.client.Delete(ctx)
	if err != nil {
		c.t.Fatalf("delete: %v", err)
	}
	if mountedIn(c.t, pid, filepath.Join(c.bundle, "rootfs")) {
		c.t.Error("rootfs still mounted in the shim's mount namespace after Delete")
	}
	if err := c.client.Shutdown(ctx, false); err != nil {
		c.t.Fatalf("shutdown: %v", err)
	}
	// The io socket is gone by the time the connection is: the daemon may
	// launch the container's next shim on this bundle at once.
	if _, err := os.Stat(filepath.Join(c.bundle, api.IOFile)); !errors.Is(err, os.ErrNotExist) {
		c.t.Errorf("io.sock still there when the shim's connection closed: %v", err)
	}
	waitGone(c.t, pid)
	if mountedIn(c.t, os.Getpid(), filepath.Join(c.bundle, "rootfs")) {
		c.t.Error("rootfs mounted on the host")
	}
	if _, err := os.Stat(filepath.Join(c.opts.RuntimeRoot, c.id)); !errors.Is(err, os.ErrNotExist) {
		c.t.Errorf("runtime state left: %v", err)
	}
	for _, f := range []string{c.socket(), filepath.Join(c.bundle, api.PidFile)} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			c.t.Errorf("%s left: %v", f, err)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/condenser-test/" + c.id); err == nil {
		c.t.Error("cgroup left")
	}
	return e
}

// mountedIn reports whether path is a mount point in pid's mount namespace.
func mountedIn(t *testing.T, pid int, path string) bool {
	t.Helper()
	_, ok := mountsIn(t, pid)[path]
	return ok
}

// mountsIn returns pid's mount table: the optional fields (shared:N,
// master:N) of each mount point.
func mountsIn(t *testing.T, pid int) map[string][]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		var opt []string
		for _, f := range fields[6:] {
			if f == "-" {
				break
			}
			opt = append(opt, f)
		}
		ms[fields[4]] = opt
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ms
}

// The shim mounts the container's root filesystem in a mount namespace of
// its own, a slave of the host's: the host's table does not grow with the
// containers (the runtime reads it on every start), a mount cannot outlive
// the shim and its container, and the host's mounts and unmounts under a
// shared mount still reach the shim (a network namespace removed on the
// host is not pinned by the shims started before).
func TestRootfsInShimMountNamespace(t *testing.T) {
	rt := runtimes(t)[0]
	// A shared mount on the host, made before the shim starts.
	shared := sharedDir(t)
	c := newContainer(t, rt, []string{"sleep", "100"})
	c.start()
	pid := c.shimPid()
	root := filepath.Join(c.bundle, "rootfs")
	if !mountedIn(t, pid, root) {
		t.Errorf("rootfs not mounted in the shim's namespace")
	}
	if mountedIn(t, os.Getpid(), root) {
		t.Errorf("rootfs mounted on the host")
	}
	for mp, opt := range mountsIn(t, pid) {
		for _, o := range opt {
			if strings.HasPrefix(o, "shared:") {
				t.Errorf("%s is a peer of the host's mount in the shim's namespace (%v): its mounts would reach the host", mp, opt)
			}
		}
	}
	if opt := mountsIn(t, pid)[shared]; len(opt) == 0 || !strings.HasPrefix(opt[0], "master:") {
		t.Errorf("the host's shared %s in the shim's namespace: %v, want a slave (master:N)", shared, opt)
	}
	// Mounted and unmounted on the host after the shim started: both
	// reach its namespace.
	sub := filepath.Join(shared, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	if !mountedIn(t, pid, sub) {
		t.Errorf("a mount made on the host under a shared mount does not reach the shim")
	}
	if err := unix.Unmount(sub, 0); err != nil {
		t.Fatal(err)
	}
	if mountedIn(t, pid, sub) {
		t.Errorf("a mount removed on the host stays in the shim's namespace")
	}
	if err := c.client.Kill(context.Background(), syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	c.wait()
	c.deleteAndShutdown()
}

func TestConcurrentWaitsAndLogs(t *testing.T) {
	for _, rt := range runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			c := newContainer(t, rt, []string{"sh", "-c", "echo hello out; echo hello err >&2; sleep 0.3; exit 3"})
			var wg sync.WaitGroup
			exits := make([]client.Exit, 2)
			for i := range exits {
				wg.Add(1)
				go func() { defer wg.Done(); exits[i] = c.wait() }()
			}
			c.start()
			wg.Wait()
			for _, e := range exits {
				if e.ExitCode != 3 || !e.ExitedAt.Equal(exits[0].ExitedAt) {
					t.Errorf("waits: %+v", exits)
				}
			}
			c.deleteAndShutdown()
			entries, err := logging.ReadLast(filepath.Join(c.bundle, c.id+"-json.log"), 3, 10)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, e := range entries {
				got[e.Stream] += e.Log
				if e.Time.IsZero() {
					t.Errorf("entry without time: %+v", e)
				}
			}
			if got["stdout"] != "hello out\n" || got["stderr"] != "hello err\n" {
				t.Errorf("log: %q", got)
			}
		})
	}
}

// rss returns a process's resident and proportional set sizes in bytes.
func rss(t testing.TB, pid int) (rss, pss int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss = n << 10
		case "Pss:":
			pss = n << 10
		}
	}
	return rss, pss
}

func TestLogFloodRotatesWithBoundedMemory(t *testing.T) {
	rt := runtimes(t)[0]
	// 40 MB of output, some of it in one long line without newline.
	c := newContainer(t, rt, []string{"sh", "-c", "yes 0123456789abcdef | head -c 30000000; head -c 10000000 /dev/zero | tr '\\0' x"})
	c.start()
	if e := c.wait(); e.ExitCode != 0 {
		t.Fatalf("exit %d", e.ExitCode)
	}
	hwm := vmHWM(t, c.shimPid())
	c.deleteAndShutdown()
	files, _ := filepath.Glob(filepath.Join(c.bundle, c.id+"-json.log*"))
	if len(files) != 3 {
		t.Errorf("%d log files, want 3: %v", len(files), files)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Size() > 1<<20 {
			t.Errorf("%s: %v bytes, want at most 1 MiB (%v)", f, fi.Size(), err)
		}
	}
	if hwm > 24<<20 {
		t.Errorf("shim peak RSS %d MiB while copying 40 MB of logs", hwm>>20)
	}
	t.Logf("shim peak RSS %.1f MiB", float64(hwm)/(1<<20))
}

func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n << 10
		}
	}
	return 0
}

func TestStatsAndOOM(t *testing.T) {
	for _, rt := range runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			c := newContainer(t, rt, []string{"sleep", "100"}, withMemory(64<<20))
			c.start()
			st, err := c.client.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.MemoryLimit != 64<<20 || st.MemoryUsage == 0 || st.PidsCurrent < 1 {
				t.Errorf("stats %+v", st)
			}
			pids, err := c.client.Pids(context.Background())
			if err != nil || len(pids) != 1 {
				t.Errorf("pids %v %v", pids, err)
			}
			c.client.Kill(context.Background(), syscall.SIGKILL, false)
			c.wait()
			c.deleteAndShutdown()

			oom := newContainer(t, rt, []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"}, withMemory(16<<20))
			oom.start()
			if e := oom.wait(); e.ExitCode != 137 || !e.OOMKilled {
				t.Errorf("exit %+v, want 137 and OOM killed", e)
			}
			if e := oom.deleteAndShutdown(); e.ExitCode != 137 || !e.OOMKilled {
				t.Errorf("delete: exit %+v, want 137 and OOM killed", e)
			}

			// Another process of the container OOM-killed: the
			// container was, as Docker reports it, whatever its exit.
			child := newContainer(t, rt, []string{"sh", "-c", "dd if=/dev/zero of=/dev/null bs=96M count=1; exit 3"}, withMemory(16<<20))
			child.start()
			if e := child.wait(); e.ExitCode != 3 || !e.OOMKilled {
				t.Errorf("exit %+v, want 3 and OOM killed", e)
			}
			child.deleteAndShutdown()
		})
	}
}

// `condenser-shim stacks` prints the running shim's goroutines.
func TestStacksCommand(t *testing.T) {
	c := newContainer(t, runtimes(t)[0], []string{"sleep", "100"})
	out, err := exec.Command(shimBinary, "stacks", "--bundle", c.bundle).CombinedOutput()
	if err != nil {
		t.Fatalf("condenser-shim stacks: %v: %s", err, out)
	}
	var n int
	if _, err := fmt.Sscanf(string(out), StackDumpHeader, &n); err != nil || n < 2 || !strings.Contains(string(out), "shim.(*service).Stacks") {
		t.Fatalf("condenser-shim stacks printed (%v):\n%s", err, out)
	}
	c.deleteAndShutdown()
}

func TestNoZombies(t *testing.T) {
	rt := runtimes(t)[0]
	c := newContainer(t, rt, []string{"sh", "-c", "sleep 30 & sleep 30 & exit 0"})
	c.start()
	c.wait()
	// The orphans die with the pid namespace and are re-parented to the
	// shim, which must reap them.
	shim := c.shimPid()
	deadline := time.Now().Add(10 * time.Second)
	for {
		z := zombies(t, shim)
		if len(z) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombie children of the shim: %v", z)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.deleteAndShutdown()
}

// In the host's pid namespace a container's orphans come to the shim
// while the container runs, with no pid the shim was told: it must reap
// them on SIGCHLD.
func TestNoZombiesInTheHostPIDNamespace(t *testing.T) {
	rt := runtimes(t)[0]
	c := newContainer(t, rt, []string{"sh", "-c", `sh -c "sleep 0.2 &"; sleep 100`}, withHostPID())
	c.start()
	shim := c.shimPid()
	deadline := time.Now().Add(10 * time.Second)
	orphan := false
	for {
		ch, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", shim, shim))
		if err != nil {
			t.Fatal(err)
		}
		// The container's sh and, until it is reaped, the orphaned sleep.
		orphan = orphan || len(strings.Fields(string(ch))) > 1
		if orphan && len(zombies(t, shim)) == 0 && len(strings.Fields(string(ch))) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("children of the shim %q, zombies %v (orphan seen: %v)", ch, zombies(t, shim), orphan)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.client.Kill(context.Background(), syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	c.wait()
	c.deleteAndShutdown()
}

func zombies(t *testing.T, ppid int) []int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

func TestShimOutlivesItsStarter(t *testing.T) {
	rt := runtimes(t)[0]
	// The shim is started by a shell in its own process group, which
	// stays; killing that whole group with -9 must not reach the shim.
	var starter *exec.Cmd
	c := newContainerWith(t, rt, []string{"sleep", "100"}, func(co client.Options) (string, error) {
		o := Options{ID: co.ID, Bundle: co.Bundle, Runtime: co.Runtime, RuntimeRoot: co.RuntimeRoot}
		starter = exec.Command("sh", append([]string{"-c", `"$0" start "$@" && exec sleep 100`, shimBinary}, o.args()...)...)
		starter.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := starter.StdoutPipe()
		if err != nil {
			return "", err
		}
		if err := starter.Start(); err != nil {
			return "", err
		}
		t.Cleanup(func() { syscall.Kill(-starter.Process.Pid, syscall.SIGKILL); starter.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		return strings.TrimSpace(line), err
	})
	c.start()
	if err := syscall.Kill(-starter.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.client.Close()

	// A new client connects, and the shim still controls the container
	// and reports its exit.
	ctx := context.Background()
	cl, err := client.Dial(ctx, "unix://"+c.socket())
	if err != nil {
		t.Fatal(err)
	}
	c.client = cl
	info, err := cl.Connect(ctx)
	if err != nil || info.ShimPid != c.shimPid() || info.TaskPid == 0 {
		t.Fatalf("connect: %+v %v", info, err)
	}
	cl.Kill(ctx, syscall.SIGKILL, false)
	if e := c.wait(); e.ExitCode != 137 {
		t.Errorf("exit %d", e.ExitCode)
	}
	c.deleteAndShutdown()
	// The shim is gone; the status is still on disk.
	if e, err := api.ReadExit(c.bundle); err != nil || e.ExitCode != 137 {
		t.Errorf("exit.json after the shim: %+v %v", e, err)
	}
}

func TestBadRequests(t *testing.T) {
	rt := runtimes(t)[0]
	c := newContainer(t, rt, []string{"sleep", "100"})
	ctx := context.Background()
	if _, err := c.client.Create(ctx, client.CreateOptions{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second create: %v", err)
	}
	c.start()
	if _, err := c.client.Start(ctx); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("second start: %v", err)
	}
	if _, err := c.client.Delete(ctx); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("delete while running: %v", err)
	}
	if err := c.client.Shutdown(ctx, false); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("shutdown before delete: %v", err)
	}
	c.client.Kill(ctx, syscall.SIGKILL, false)
	c.wait()
	if err := c.client.Kill(ctx, syscall.SIGTERM, false); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("kill after exit: %v", err)
	}
	c.deleteAndShutdown()
}

// TestRuntimeErrorReachesCaller checks that the runtime's own message (from
// its --log) is in the error when it refuses a container.
func TestRuntimeErrorReachesCaller(t *testing.T) {
	for _, rt := range runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			c := newBundle(t, rt, []string{"/no/such/binary"})
			os.MkdirAll(filepath.Join(c.bundle, "rootfs"), 0o755)
			ctx := context.Background()
			addr, err := client.Launch(ctx, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if c.client, err = client.Dial(ctx, addr); err != nil {
				t.Fatal(err)
			}
			_, err = c.client.Create(ctx, client.CreateOptions{})
			if err == nil {
				_, err = c.client.Start(ctx)
			}
			if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
				t.Fatalf("got %v, want the runtime's message about /no/such/binary", err)
			}
		})
	}
}

// TestStartWithoutRuntimeProcess starts runc containers through their exec
// FIFO: no `runc start` runs, and runc sees the container running, then
// stopped. A runtime wrapper named runc records every command.
func TestStartWithoutRuntimeProcess(t *testing.T) {
	testutil.RequireRoot(t)
	real := testutil.RequireBinary(t, "runc")
	dir := t.TempDir()
	record := filepath.Join(dir, "commands")
	wrapper := filepath.Join(dir, "runc")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec %s \"$@\"\n", record, real)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := newContainer(t, runtimeCase{Name: "runc", Binary: wrapper}, []string{"sh", "-c", "echo started; sleep 100"})
	c.start()
	out, err := exec.Command(real, "--root", c.opts.RuntimeRoot, "state", c.id).Output()
	if err != nil || !strings.Contains(string(out), `"status": "running"`) {
		t.Errorf("runc state after start: %s %v", out, err)
	}
	if err := c.client.Kill(context.Background(), syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if e := c.wait(); e.ExitCode != 137 {
		t.Errorf("exit %+v, want 137", e)
	}
	c.deleteAndShutdown()
	b, _ := os.ReadFile(record)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); slices.Contains(f, "start") {
			t.Errorf("runc ran %q", line)
		}
	}
	if !strings.Contains(string(b), " create ") {
		t.Errorf("the wrapper recorded no create: %q", b)
	}
}

// sharedDir returns a new directory that is a shared mount of its own on
// the host (unmounted by the test's clean-up).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

// withNetNS makes the container join the network namespace at path.
func withNetNS(path string) specOpt {
	return func(s *specs.Spec) {
		for i, n := range s.Linux.Namespaces {
			if n.Type == specs.NetworkNamespace {
				s.Linux.Namespaces[i].Path = path
			}
		}
	}
}

// A shim sees the network namespace the daemon binds, after the shim's
// launch, under a directory the host shares (it is launched ahead of its
// container); once its container has joined it, the shim lets go of that
// directory, so that the namespaces bound later for other containers are
// not copied into every shim (n² mounts) and none is pinned by a shim.
func TestShimLeavesTheNetnsDirectory(t *testing.T) {
	rt := runtimes(t)[0]
	dir := sharedDir(t)
	// bind binds a new network namespace (held by a short-lived process)
	// on dir/name, as the daemon binds a container's.
	bind := func(name string) string {
		t.Helper()
		holder := exec.Command("unshare", "--net", "sleep", "30")
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { holder.Process.Kill(); holder.Wait() }()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		src := fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
		deadline := time.Now().Add(5 * time.Second)
		for {
			// unshare has made the namespace once its link differs from ours.
			theirs, _ := os.Readlink(src)
			ours, _ := os.Readlink("/proc/self/ns/net")
			if theirs != "" && theirs != ours {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("unshare --net made no namespace")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := unix.Mount(src, p, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(p, unix.MNT_DETACH) })
		return p
	}
	// The shim is launched before its container's namespace is bound.
	var ns1 string
	c := newContainerWith(t, rt, []string{"sleep", "100"}, func(o client.Options) (string, error) {
		addr, err := client.Launch(context.Background(), o)
		if err != nil {
			return "", err
		}
		ns1 = bind("ns1")
		b, _ := os.ReadFile(filepath.Join(o.Bundle, api.PidFile))
		shim, _ := strconv.Atoi(string(b))
		if !mountedIn(t, shim, ns1) {
			t.Error("the namespace bound after the shim's launch does not reach it")
		}
		return addr, nil
	}, withNetNS(filepath.Join(dir, "ns1")))
	pid := c.shimPid()
	c.start()
	init, err := c.client.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", init.Pid))
	if got == want {
		t.Fatalf("the container is in the shim's network namespace %s, not the one bound", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for mountedIn(t, pid, dir) {
		if time.Now().After(deadline) {
			t.Fatalf("the shim still has %s mounted: %v", dir, mountsIn(t, pid)[dir])
		}
		time.Sleep(10 * time.Millisecond)
	}
	ns2 := bind("ns2")
	if mountedIn(t, pid, ns2) || mountedIn(t, pid, ns1) {
		t.Errorf("network namespaces still reach the shim's mount namespace")
	}
	if err := c.client.Kill(context.Background(), syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	c.wait()
	c.deleteAndShutdown()
}
