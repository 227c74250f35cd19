package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
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
// a local registry and checks that nothing is left behind, on the host's
// networking too (Podman's bridge network: interfaces, iptables,
// /var/lib/cni, /run/netns; testutil.HoldIPForward restores
// net.ipv4.ip_forward).
func TestPeerEngines(t *testing.T) {
	if !*peersFlag {
		t.Skip("peer engines are exercised by make bench-peers (-peers)")
	}
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	ref := reg.Ref("library/busybox:latest")
	reg.Push(t, ref, testutil.BusyboxImage(t))
	img := Images{Registry: reg.Host, Small: ref, Large: ref}

	// Podman's bridge network, one engine after the other; the CNI bridge
	// plugin turns ip_forward on, and the hold puts it back when the last
	// test process holding it is done (others may hold it meanwhile, so
	// its value is no leftover to check here).
	subnet := testutil.ReserveSubnet(t, 220, 239)
	testutil.HoldIPForward(t)

	for _, e := range []Engine{NewPodman("crun", subnet), NewPodman("runc", subnet), NewContainerd()} {
		t.Run(e.Name(), func(t *testing.T) { testPeer(t, e, img) })
	}
}

func testPeer(t *testing.T, e Engine, img Images) {
	before := hostPaths(t)
	var netBefore []string
	if p, ok := e.(*Podman); ok {
		netBefore = networkLines(t, p.subnet)
	}
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
	if p, ok := e.(*Podman); ok {
		step("run true on a network", func() error {
			d, err := p.RunTrueNetworked(ctx)
			if err == nil && d <= 0 {
				err = errors.New("no time measured")
			}
			t.Logf("run true on a network measured: %v", d.Round(time.Millisecond))
			return err
		})
		// The container had an address of the network, on its bridge.
		step("address on the network", func() error {
			args := append(append([]string{"run", "--rm", "--network", p.net.name}, podmanRunFlags...), img.Small, "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
			out, err := p.podman(ctx, args...)
			if err != nil {
				return err
			}
			f := strings.Fields(out)
			i := slices.Index(f, "inet")
			if i < 0 || i+1 == len(f) {
				return fmt.Errorf("eth0 has no IPv4 address: %s", out)
			}
			if a, err := netip.ParsePrefix(f[i+1]); err != nil || !p.net.subnet.Contains(a.Addr()) {
				return fmt.Errorf("eth0's address %s is not in %v", f[i+1], p.net.subnet)
			}
			t.Logf("eth0: %s", f[i+1])
			if _, err := os.Stat("/sys/class/net/" + p.net.name + "/bridge"); err != nil {
				return fmt.Errorf("no bridge %s: %w", p.net.name, err)
			}
			return nil
		})
	} else if _, ok := e.(NetworkRunner); ok {
		t.Errorf("%s runs containers on a network: test it here", e.Name())
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
		if !slices.Contains(before, p) && !otherTestInterface(p) {
			t.Errorf("left behind: %s", p)
		}
	}
	if p, ok := e.(*Podman); ok {
		after := networkLines(t, p.subnet)
		for _, l := range after {
			if !slices.Contains(netBefore, l) {
				t.Errorf("left behind in iptables: %s", l)
			}
		}
		for _, l := range netBefore {
			if !slices.Contains(after, l) {
				t.Errorf("gone from iptables: %s", l)
			}
		}
	}
}

// networkLines lists the lines of iptables-save and ip6tables-save,
// counters stripped, that name a table, a CNI chain, the network's bridge
// (every bridge of Podman's networks here is cbp…) or an address of subnet.
func networkLines(t *testing.T, subnet netip.Prefix) []string {
	t.Helper()
	var lines []string
	for _, ipt := range iptablesFamilies {
		out, err := exec.Command(ipt.save).Output()
		if err != nil {
			t.Fatalf("%s: %v", ipt.save, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if i := strings.LastIndex(l, " ["); strings.HasPrefix(l, ":") && i > 0 {
				l = l[:i]
			}
			if strings.HasPrefix(l, "*") || strings.Contains(l, "CNI-") || (cniOwner{name: "cbp", subnet: subnet}).names(l) {
				lines = append(lines, ipt.save+": "+l)
			}
		}
	}
	return lines
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
		"/var/lib/containers", "/var/lib/containers/*", "/var/lib/containerd", "/opt/containerd",
		"/run/runc", "/run/runc/*", "/etc/cni/net.d/*", "/etc/containers/networks", "/sys/class/net/*",
		"/run/netns", "/var/lib/cni", "/var/lib/cni/*", "/var/lib/cni/*/*",
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

// otherTestInterface tells whether p is the interface of a Condenser test
// network (testutil.Network's bridges "cnt…", its daemons' veths "vc…"),
// which other test processes make and remove meanwhile; the peers' are
// never named so.
func otherTestInterface(p string) bool {
	name, ok := strings.CutPrefix(p, "/sys/class/net/")
	return ok && (strings.HasPrefix(name, "cnt") || strings.HasPrefix(name, "vc"))
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
