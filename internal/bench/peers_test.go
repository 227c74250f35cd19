package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/internal/testutil"
)

var peersFlag = flag.Bool("peers", false, "also run the peer engines (podman, containerd); they must be installed")

// TestPeerEngines runs each peer engine through every method once against
// a local registry and checks that nothing is left behind.
func TestPeerEngines(t *testing.T) {
	if !*peersFlag {
		t.Skip("peer engines are exercised by make bench-peers (-peers)")
	}
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	ref := reg.Ref("library/busybox:latest")
	reg.Push(t, ref, testutil.BusyboxImage(t))
	img := Images{Registry: reg.Host, Small: ref, Large: ref}

	for _, e := range []Engine{NewPodman("crun"), NewPodman("runc"), NewContainerd()} {
		t.Run(e.Name(), func(t *testing.T) { testPeer(t, e, img) })
	}
}

func testPeer(t *testing.T, e Engine, img Images) {
	before := hostPaths(t)
	dir := filepath.Join(t.TempDir(), e.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	closed := false
	defer func() {
		if !closed {
			if err := e.Close(ctx); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	}()
	step := func(what string, f func() error) {
		t.Helper()
		t0 := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: %v", what, time.Since(t0).Round(time.Millisecond))
	}
	monitors := func(want int) []int {
		t.Helper()
		var pids []int
		err := poll(ctx, 10*time.Second, func() error {
			var err error
			if pids, err = e.Monitors(ctx); err == nil && len(pids) != want {
				err = errors.New("")
			}
			return err
		})
		if err != nil {
			t.Fatalf("monitors: %v: got %v, want %d", err, pids, want)
		}
		return pids
	}

	step("setup", func() error { return e.Setup(ctx, dir, img) })
	step("cold pull", func() error { return e.Pull(ctx, img.Small) })
	step("remove image", func() error { return e.RemoveImage(ctx, img.Small) })
	step("cold pull again", func() error { return e.Pull(ctx, img.Small) })
	if img.Large != img.Small {
		step("pull large", func() error { return e.Pull(ctx, img.Large) })
	}
	for range 3 {
		step("run true", func() error {
			d, err := e.RunTrue(ctx)
			if err == nil && d <= 0 {
				err = errors.New("no time measured")
			}
			t.Logf("run true measured: %v", d.Round(time.Millisecond))
			return err
		})
	}
	for _, name := range []string{"peer-1", "peer-2"} {
		step("start detached "+name, func() error { return e.StartDetached(ctx, name) })
	}
	shims := monitors(2)
	if rt, ok := strings.CutPrefix(e.Name(), "podman-"); ok {
		// conmon runs the runtime the engine is named after.
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", shims[0]))
		if args := strings.Split(string(b), "\x00"); !slices.ContainsFunc(args, func(a string) bool { return filepath.Base(a) == rt }) {
			t.Errorf("conmon of %s runs no %s: %q", e.Name(), rt, args)
		}
	}
	daemon := e.DaemonPID()
	if (daemon == 0) != strings.HasPrefix(e.Name(), "podman") {
		t.Fatalf("daemon pid %d", daemon)
	}
	step("list", func() error { return e.List(ctx) })

	answer, reconnected, err := e.Restart(ctx, 2)
	switch {
	case strings.HasPrefix(e.Name(), "podman"):
		if !errors.Is(err, ErrNotApplicable) {
			t.Fatalf("restart: %v, want ErrNotApplicable", err)
		}
	case err != nil:
		t.Fatalf("restart: %v", err)
	case answer <= 0 || reconnected < answer:
		t.Fatalf("restart: answer %v, reconnected %v", answer, reconnected)
	case e.DaemonPID() == daemon || e.DaemonPID() == 0:
		t.Fatalf("daemon pid %d after restart, was %d", e.DaemonPID(), daemon)
	default:
		t.Logf("restart: answer %v, reconnected %v", answer.Round(time.Millisecond), reconnected.Round(time.Millisecond))
		if after := monitors(2); !slices.Equal(after, shims) {
			t.Fatalf("monitors %v after restart, were %v", after, shims)
		}
	}
	step("list", func() error { return e.List(ctx) })

	step("remove all", func() error { return e.RemoveAll(ctx) })
	monitors(0)
	step("remove image", func() error { return e.RemoveImage(ctx, img.Small) })
	if img.Large != img.Small {
		step("remove large", func() error { return e.RemoveImage(ctx, img.Large) })
	}
	closed = true
	step("close", func() error { return e.Close(ctx) })

	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists (%v)", dir, err)
	}
	if mounts := mountsUnder(t, dir); len(mounts) > 0 {
		t.Errorf("left mounted: %v", mounts)
	}
	if procs := procsMentioning(t, dir); len(procs) > 0 {
		t.Errorf("left running: %v", procs)
	}
	for _, p := range hostPaths(t) {
		if !slices.Contains(before, p) {
			t.Errorf("left behind: %s", p)
		}
	}
}

// hostPaths lists what exists where the peers could leave things outside
// their directory: state in /run, locks in /dev/shm, cgroups, host
// networking and configuration.
func hostPaths(t *testing.T) []string {
	t.Helper()
	var all []string
	for _, pattern := range []string{
		"/run/containerd", "/run/containerd/*", "/run/containerd/*/*", "/run/containerd/*/*/*",
		"/run/containers", "/run/containers/*", "/run/libpod", "/run/netns/*", "/dev/shm/libpod_lock",
		"/sys/fs/cgroup/*/" + ctrNamespace, "/sys/fs/cgroup/*/libpod_parent",
		"/var/lib/containers/storage", "/var/lib/containerd", "/opt/containerd",
		"/run/runc/*", "/etc/cni/net.d/*", "/etc/containers/networks", "/sys/class/net/*",
		filepath.Join(os.TempDir(), "podman-run-*"),
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, m...)
	}
	return all
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	return mounts
}

// procsMentioning lists the command lines, other than this process's,
// that contain s.
func procsMentioning(t *testing.T, s string) []string {
	t.Helper()
	paths, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	self := filepath.Join("/proc", strconv.Itoa(os.Getpid()), "cmdline")
	var procs []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil && p != self && strings.Contains(string(b), s) {
			procs = append(procs, filepath.Base(filepath.Dir(p))+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return procs
}
