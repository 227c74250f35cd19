package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/client"
)

// runDelete runs `condenser-shim delete` for the container and returns
// what it printed; it must succeed.
func runDelete(t *testing.T, o client.Options) string {
	t.Helper()
	cmd := exec.Command(shimBinary, "delete", "--id", o.ID, "--bundle", o.Bundle, "--runtime", o.Runtime, "--runtime-root", o.RuntimeRoot)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("condenser-shim delete: %v: %s", err, errb.String())
	}
	return out.String()
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	return !strings.HasPrefix(s[strings.LastIndexByte(s, ')')+1:], " Z")
}

// cgroupsOf lists the directories of the container's cgroup that exist, in
// any hierarchy.
func cgroupsOf(id string) []string {
	v1, _ := filepath.Glob("/sys/fs/cgroup/*/condenser-test/" + id)
	v2, _ := filepath.Glob("/sys/fs/cgroup/condenser-test/" + id)
	return append(v1, v2...)
}

// checkCleanedUp checks that nothing of the container is left but its
// bundle's config.json, exit.json and logs.
func (c *container) checkCleanedUp(pids ...int) {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("process %d still runs", pid)
		}
	}
	if mountedIn(t, os.Getpid(), filepath.Join(c.bundle, "rootfs")) {
		t.Error("rootfs still mounted")
	}
	if _, err := os.Stat(filepath.Join(c.opts.RuntimeRoot, c.id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("runtime state left: %v", err)
	}
	if left := cgroupsOf(c.id); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	for _, f := range []string{c.socket(), filepath.Join(c.bundle, api.PidFile)} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.bundle, "config.json")); err != nil {
		t.Errorf("config.json: %v", err)
	}
}

// TestDelete runs `condenser-shim delete` on containers in every state, with
// their shim alive or killed: it kills what runs, removes the runtime's
// state, the mount and the cgroups, prints the exit status when the shim
// left one, and does it all again the second time without failing.
func TestDelete(t *testing.T) {
	for _, rt := range runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			tests := []struct {
				name     string // no comma: it is in the overlay's paths
				args     []string
				start    bool
				wait     bool
				killShim bool
				// loseState removes the runtime's state (as a runtime
				// killed half-way through create leaves it): the
				// container's processes are found by their cgroup.
				loseState bool
				wantCode  int // -1: unknown
			}{
				{"created/shim killed", []string{"sleep", "100"}, false, false, true, false, -1},
				{"created/shim killed/runtime state lost", []string{"sleep", "100"}, false, false, true, true, -1},
				{"running/shim killed/runtime state lost", []string{"sleep", "100"}, true, false, true, true, -1},
				{"created/shim alive", []string{"sleep", "100"}, false, false, false, false, -1},
				{"running/shim killed", []string{"sleep", "100"}, true, false, true, false, -1},
				{"running/shim alive", []string{"sleep", "100"}, true, false, false, false, -1},
				{"stopped/shim alive", []string{"sh", "-c", "exit 3"}, true, true, false, false, 3},
				{"stopped/shim killed", []string{"sh", "-c", "exit 3"}, true, true, true, false, 3},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					c := newContainer(t, rt, tc.args)
					ctx := context.Background()
					info, err := c.client.Connect(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if tc.start {
						c.start()
					}
					if tc.wait {
						c.wait()
					}
					shim := c.shimPid()
					if shim == 0 || len(cgroupsOf(c.id)) == 0 || !mountedIn(t, shim, filepath.Join(c.bundle, "rootfs")) {
						t.Fatalf("shim %d, cgroups %v, rootfs mounted %v: nothing to clean up", shim, cgroupsOf(c.id), mountedIn(t, shim, filepath.Join(c.bundle, "rootfs")))
					}
					if tc.killShim {
						syscall.Kill(shim, syscall.SIGKILL)
						waitGone(t, shim)
					}
					if tc.loseState {
						state := filepath.Join(c.opts.RuntimeRoot, c.id)
						if err := os.RemoveAll(state); err != nil {
							t.Fatal(err)
						}
						os.Mkdir(state, 0o700) // what is left of a create cut short
					}
					want := "{\"unknown\":true}\n"
					if tc.wantCode >= 0 {
						e, err := api.ReadExit(c.bundle)
						if err != nil || e.ExitCode != tc.wantCode {
							t.Fatalf("exit.json: %+v %v", e, err)
						}
						b, _ := json.Marshal(e)
						want = string(b) + "\n"
					}
					for i := range 2 {
						if got := runDelete(t, c.opts); got != want {
							t.Errorf("delete #%d printed %q, want %q", i+1, got, want)
						}
						c.checkCleanedUp(shim, info.TaskPid)
					}
				})
			}
		})
	}
}

// TestDeleteWaitsForLaunch checks that a delete run while a launch holds
// the bundle's lock (a daemon killed in the middle of `condenser-shim
// start`) waits for it, and then removes the shim and the container the
// launch made.
func TestDeleteWaitsForLaunch(t *testing.T) {
	rt := runtimes(t)[0]
	c := newBundle(t, rt, []string{"sleep", "100"})
	ctx := context.Background()
	// What `condenser-shim start` does, in steps: lock, spawn the server,
	// unlock once it serves.
	lock, err := lockBundle(ctx, c.bundle)
	if err != nil {
		t.Fatal(err)
	}
	unlock := func() { lock.Close() }
	type result struct {
		e   *client.Exit
		err error
	}
	done := make(chan result, 1)
	go func() {
		e, err := client.Cleanup(ctx, c.opts)
		done <- result{e, err}
	}()
	select {
	case r := <-done:
		unlock()
		t.Fatalf("delete did not wait for the launch: %+v %v", r.e, r.err)
	case <-time.After(500 * time.Millisecond):
	}
	so := Options{ID: c.id, Bundle: c.bundle, Runtime: c.opts.Runtime, RuntimeRoot: c.opts.RuntimeRoot}
	addr, err := spawn(ctx, so, shimBinary, lock)
	if err != nil {
		unlock()
		t.Fatal(err)
	}
	if c.client, err = client.Dial(ctx, addr); err != nil {
		unlock()
		t.Fatal(err)
	}
	if _, err := c.client.Create(ctx, client.CreateOptions{Rootfs: c.rootfs()}); err != nil {
		unlock()
		t.Fatalf("create: %v\n%s", err, c.shimLog())
	}
	info, _ := c.client.Connect(ctx)
	select {
	case r := <-done:
		unlock()
		t.Fatalf("delete did not wait for the launch: %+v %v", r.e, r.err)
	default:
	}
	unlock()
	select {
	case r := <-done:
		if r.err != nil || r.e != nil {
			t.Fatalf("cleanup: %+v %v, want an unknown exit", r.e, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("delete still waits after the launch is over")
	}
	select {
	case <-c.client.Done():
	case <-time.After(5 * time.Second):
		t.Error("the shim's connection is still open")
	}
	c.checkCleanedUp(info.ShimPid, info.TaskPid)
}

// TestDeleteLockTimeout checks that a lock held too long fails the wait
// with ErrUnavailable.
func TestDeleteLockTimeout(t *testing.T) {
	bundle := t.TempDir()
	lock, err := lockBundle(context.Background(), bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := lockBundle(ctx, bundle); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("second lock: %v, want ErrUnavailable", err)
	}
}

// TestLockOutlivesTheStarter: the server shares the starter's lock, so a
// starter killed half-way leaves the bundle locked until the server lets
// go (here: until the child holding it exits).
func TestLockOutlivesTheStarter(t *testing.T) {
	bundle := t.TempDir()
	lock, err := lockBundle(context.Background(), bundle)
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sh", "-c", "read x")
	child.ExtraFiles = []*os.File{lock}
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	lock.Close() // the starter is gone
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := lockBundle(ctx, bundle); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("lock while the server holds it: %v, want ErrUnavailable", err)
	}
	stdin.Close() // the server lets go
	child.Wait()
	l, err := lockBundle(context.Background(), bundle)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestDeleteNothingThere checks that a bundle without a container, without
// config.json, or no bundle at all, is cleaned up without error.
func TestDeleteNothingThere(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	withExit := filepath.Join(base, "with-exit")
	os.MkdirAll(withExit, 0o700)
	exit := api.Exit{Pid: 42, ExitCode: 137, ExitedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), OOMKilled: true}
	b, _ := json.Marshal(exit)
	os.WriteFile(filepath.Join(withExit, api.ExitFile), b, 0o644)
	empty := filepath.Join(base, "empty")
	os.MkdirAll(empty, 0o700)
	// A stale pid file naming a process that is no shim of the bundle.
	os.WriteFile(filepath.Join(empty, api.PidFile), []byte(fmt.Sprint(os.Getpid())), 0o644)
	tests := []struct {
		name   string
		bundle string
		want   *client.Exit
	}{
		{"no bundle", filepath.Join(base, "none"), nil},
		{"empty bundle", empty, nil},
		{"exit.json only", withExit, &client.Exit{Pid: 42, ExitCode: 137, ExitedAt: exit.ExitedAt, OOMKilled: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := client.Options{Binary: shimBinary, ID: names.NewID(), Bundle: tc.bundle, Runtime: "runc", RuntimeRoot: filepath.Join(base, "rt")}
			for range 2 {
				e, err := client.Cleanup(context.Background(), o)
				if err != nil || !sameExit(e, tc.want) {
					t.Fatalf("cleanup: %+v %v, want %+v", e, err, tc.want)
				}
			}
			if _, err := os.Stat(filepath.Join(base, "none")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("delete made the missing bundle: %v", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(empty, api.PidFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale pid file left: %v", err)
	}
}

// TestDeleteDroplet runs `condenser-shim delete` with Droplet's driver on a
// fake droplet (shim/runtime's): droplet delete is run (after a kill when
// the container runs), the container's directory goes, and what is mounted
// there is unmounted, never removed through.
func TestDeleteDroplet(t *testing.T) {
	testutil.RequireRoot(t)
	script, err := os.ReadFile("runtime/testdata/fake-droplet.sh")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		status string
		want   []string
	}{
		{"stopped", []string{"delete %s"}},
		{"running", []string{"delete %s", "kill %s KILL", "delete %s"}},
	}
	for _, tc := range tests {
		t.Run(tc.status, func(t *testing.T) {
			dir, root, base := t.TempDir(), t.TempDir(), t.TempDir()
			bin := filepath.Join(dir, "droplet")
			if err := os.WriteFile(bin, bytes.ReplaceAll(script, []byte("@DIR@"), []byte(dir)), 0o755); err != nil {
				t.Fatal(err)
			}
			id := names.NewID()
			bundle := filepath.Join(base, "bundle")
			os.MkdirAll(bundle, 0o700)
			os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"root":{"path":"rootfs"}}`), 0o644)
			// Droplet's container: its state and its mounted root
			// filesystem (a bind of something precious).
			cdir := filepath.Join(root, id)
			rootfsDir := filepath.Join(cdir, "rootfs")
			os.MkdirAll(rootfsDir, 0o755)
			st, _ := json.MarshalIndent(map[string]any{"id": id, "status": tc.status, "pid": 4242}, "", "    ")
			os.WriteFile(filepath.Join(cdir, "state.json"), st, 0o644)
			os.WriteFile(filepath.Join(cdir, "config.json"), []byte(`{"root":{"path":"`+rootfsDir+`"}}`), 0o644)
			precious := t.TempDir()
			os.WriteFile(filepath.Join(precious, "keep"), []byte("x"), 0o644)
			if err := unix.Mount(precious, rootfsDir, "", unix.MS_BIND, ""); err != nil {
				t.Fatalf("bind mount: %v", err)
			}
			t.Cleanup(func() { unix.Unmount(rootfsDir, unix.MNT_DETACH) })

			o := client.Options{Binary: shimBinary, ID: id, Bundle: bundle, Runtime: bin, RuntimeRoot: root}
			for i := range 2 {
				if e, err := client.Cleanup(context.Background(), o); err != nil || e != nil {
					t.Fatalf("cleanup #%d: %+v %v", i+1, e, err)
				}
			}
			calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(calls)), "\n") {
				got = append(got, strings.TrimPrefix(l, "RAIND_ROOT_DIR="+root+" "))
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, fmt.Sprintf(w, id))
			}
			if !slices.Equal(got, want) {
				t.Errorf("droplet calls %q, want %q", got, want)
			}
			if _, err := os.Stat(filepath.Join(precious, "keep")); err != nil {
				t.Errorf("removed through the mount: %v", err)
			}
			if mountedIn(t, os.Getpid(), rootfsDir) {
				t.Error("Droplet's rootfs still mounted")
			}
			if _, err := os.Stat(cdir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Droplet's container directory left: %v", err)
			}
		})
	}
}

func TestIsShimServing(t *testing.T) {
	const b = "/run/condenser/shims/abc"
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"/usr/local/bin/condenser-shim", "serve", "--id", "abc", "--bundle", b, "--runtime", "runc"}, true},
		{[]string{"condenser-shim", "serve", "--bundle", b}, true},
		{[]string{"condenser-shim", "serve", "--bundle", b + "2"}, false},
		{[]string{"condenser-shim", "start", "--bundle", b}, false},
		{[]string{"/bin/sleep", "serve", "--bundle", b}, false},
		{[]string{"condenser-shim", "serve", "--bundle"}, false},
		{[]string{"condenser-shim"}, false},
		{nil, false},
	}
	for _, tc := range tests {
		if got := isShimServing(tc.args, b); got != tc.want {
			t.Errorf("isShimServing(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestCheckCgroupsPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/condenser/0123abcd", true},
		{"/condenser-test/shimtest-1", true},
		{"/", false},
		{"//", false},
		{"condenser/abc", false},
		{"system.slice:condenser:abc", false},
		{"/condenser/../system.slice", false},
	}
	for _, tc := range tests {
		if err := checkCgroupsPath(tc.path); (err == nil) != tc.ok {
			t.Errorf("checkCgroupsPath(%q) = %v, want ok %v", tc.path, err, tc.ok)
		}
	}
}

// sameExit reports whether a and b are the same exit status, or both nil.
func sameExit(a, b *client.Exit) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Pid == b.Pid && a.ExitCode == b.ExitCode && a.ExitedAt.Equal(b.ExitedAt) && a.OOMKilled == b.OOMKilled
}

// TestDeleteDropletWithoutItsDirectory runs `condenser-shim delete` with
// Droplet's driver for a container whose directory in RAIND_ROOT_DIR is
// not there (a create cut short, a clean-up that removed it and then
// failed): what Droplet and the driver keep elsewhere goes all the same,
// and Droplet, which would panic, is not run.
func TestDeleteDropletWithoutItsDirectory(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "ip")
	script, err := os.ReadFile("runtime/testdata/fake-droplet.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir, root, base := t.TempDir(), t.TempDir(), t.TempDir()
	bin := filepath.Join(dir, "droplet")
	if err := os.WriteFile(bin, bytes.ReplaceAll(script, []byte("@DIR@"), []byte(dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	id := names.NewID()
	veth := "rdt" + id[:8]
	bundle := filepath.Join(base, "bundle")
	os.MkdirAll(bundle, 0o700)
	config := fmt.Sprintf(`{"root":{"path":"rootfs"},"linux":{"cgroupsPath":"/condenser-test/%s"},
		"annotations":{"io.raind.net.config":"{\"interface\":{\"name\":\"%s\"}}"}}`, id, veth)
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(config), 0o644)

	// The veth Droplet made.
	if out, err := exec.Command("ip", "link", "add", veth, "type", "veth", "peer", "name", veth+"p").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "delete", veth).Run() })
	// Droplet's cgroup directory (plain files on a hybrid host).
	dropletCg := filepath.Join("/sys/fs/cgroup/raind", id)
	if err := os.MkdirAll(dropletCg, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dropletCg, "memory.max"), []byte("0"), 0o644)
	t.Cleanup(func() { os.RemoveAll(dropletCg) })
	// The etc/ its init reads, at Droplet's fixed path; what the test
	// makes of /etc/raind goes again.
	var made []string
	for _, d := range []string{"/etc/raind", "/etc/raind/container"} {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			made = append([]string{d}, made...)
		}
	}
	etc := filepath.Join("/etc/raind/container", id, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	t.Cleanup(func() {
		os.RemoveAll(filepath.Join("/etc/raind/container", id))
		for _, d := range made {
			os.Remove(d) // only when empty: nobody else's
		}
	})
	// The init in the container's cgroup (v1, where the driver puts it).
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	pid := sleep.Process.Pid
	go sleep.Wait()
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	for _, h := range []string{"memory", "pids"} {
		cg := filepath.Join("/sys/fs/cgroup", h, "condenser-test", id)
		if err := os.MkdirAll(cg, 0o755); err != nil {
			t.Skipf("no v1 %s hierarchy: %v", h, err)
		}
		t.Cleanup(func() { syscall.Rmdir(cg) })
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	o := client.Options{Binary: shimBinary, ID: id, Bundle: bundle, Runtime: bin, RuntimeRoot: root}
	for i := range 2 {
		if e, err := client.Cleanup(context.Background(), o); err != nil || e != nil {
			t.Fatalf("cleanup #%d: %+v %v", i+1, e, err)
		}
	}
	if calls, err := os.ReadFile(filepath.Join(dir, "calls")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("droplet ran: %q", calls)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		t.Error("the container's init still runs")
	}
	if cgs := cgroupsOf(id); len(cgs) > 0 {
		t.Errorf("cgroups left: %q", cgs)
	}
	for _, p := range []string{dropletCg, filepath.Join("/etc/raind/container", id), filepath.Join("/sys/class/net", veth)} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}
