package supervisor_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/oci"
)

// patchRecord sets fields of a record while the daemon is down.
func patchRecord(t *testing.T, root, id string, fields map[string]any) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(root, "containers.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("containers"))
		var c map[string]any
		if err := json.Unmarshal(b.Get([]byte(id)), &c); err != nil {
			return err
		}
		for k, v := range fields {
			c[k] = v
		}
		v, _ := json.Marshal(c)
		return b.Put([]byte(id), v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// containerCgroups lists container id's cgroup directories (cgroupsPath
// <the daemon's cgroup parent>/<id>, in every v1 hierarchy and in the v2
// one).
func (d *daemon) containerCgroups(id string) []string {
	return testutil.CgroupDirs(d.cfg.CgroupParent + "/" + id)
}

// cleanupCgroups makes sure, even when the test fails, that nothing of
// container id is left running in its cgroups and that they are gone.
func cleanupCgroups(t *testing.T, d *daemon, id string) {
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for _, dir := range d.containerCgroups(id) {
			for {
				b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						syscall.Kill(pid, syscall.SIGKILL) // a process of the test's container
					}
				}
				if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	return pid > 0 && err == nil && !strings.Contains(string(b), ") Z ")
}

func awaitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkReaped checks that nothing of c runs or is mounted any more, and
// that its cgroups, runtime state and shim files are gone.
func checkReaped(t *testing.T, d *daemon, c *supervisor.Container) {
	t.Helper()
	if alive(c.Pid) {
		t.Errorf("the container's process %d outlived its shim", c.Pid)
	}
	if cg := d.containerCgroups(c.ID); len(cg) > 0 {
		t.Errorf("cgroups left: %v", cg)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), filepath.Join(c.Bundle, "rootfs")) {
		t.Errorf("root filesystem still mounted")
	}
	checkGone(t, filepath.Join(d.cfg.State, "runtime", c.ID), filepath.Join(c.Bundle, "shim.pid"), filepath.Join(c.Bundle, "shim.sock"))
}

// TestShimKilled: a running container whose shim is killed, while the
// supervisor runs and while it is away, is recorded as stopped with an
// unknown exit code; its process (which outlives the shim) is killed and
// its cgroups, mount, runtime state and shim files go; it starts again.
func TestShimKilled(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()
	for _, away := range []bool{false, true} {
		c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"sleep", "100"}}})
		if err != nil {
			t.Fatal(err)
		}
		cleanupCgroups(t, d, c.ID)
		if c, err = d.sup.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if away {
			d.sup.Close()
		}
		if err := syscall.Kill(c.ShimPid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if away {
			awaitTrue(t, "the shim's death", func() bool { return !alive(c.ShimPid) })
			d.open()
		}
		var got *supervisor.Container
		awaitTrue(t, "the container stopped", func() bool {
			got, err = d.sup.Get(ctx, c.ID)
			return err == nil && got.State == supervisor.StateStopped
		})
		if got.ExitCode != nil || got.ShimPid != 0 {
			t.Errorf("away=%v: exit code %v, shim pid %d; want unknown (nil) and none", away, got.ExitCode, got.ShimPid)
		}
		if code, err := d.sup.Wait(ctx, c.ID); code != -1 || err != nil {
			t.Errorf("away=%v: wait %d %v, want -1", away, code, err)
		}
		checkReaped(t, d, c)
		if got, err = d.sup.Start(ctx, c.ID); err != nil || got.State != supervisor.StateRunning || !alive(got.ShimPid) {
			t.Fatalf("away=%v: start again: %+v %v", away, got, err)
		}
		// Stopped at once after its start, the init may still be the
		// runtime's (which dies of SIGTERM) rather than sleep (which, as
		// pid 1, ignores it until SIGKILL).
		if got, err := d.sup.Stop(ctx, c.ID, 0); err != nil || got.ExitCode == nil || (*got.ExitCode != 137 && *got.ExitCode != 143) {
			code := "nil"
			if got != nil && got.ExitCode != nil {
				code = strconv.Itoa(*got.ExitCode)
			}
			t.Errorf("away=%v: stop after the restart: exit code %s, %v; want 137 or 143", away, code, err)
		}
		if _, err := d.sup.Delete(ctx, c.ID, false); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRuntimeKilledDuringCreate: a create cut short with the runtime
// killed after it made the container's cgroups and started its init, but
// before it wrote its state (so that `runtime delete` does not know the
// container), leaves nothing: the init is killed, the cgroups and the
// runtime's directory are removed.
func TestRuntimeKilledDuringCreate(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()
	c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"sleep", "100"}}})
	if err != nil {
		t.Fatal(err)
	}
	cleanupCgroups(t, d, c.ID)
	d.sup.Close()
	// What a runtime killed mid-create leaves: an init waiting in the
	// container's cgroups, a state directory the runtime does not
	// recognize, no shim to clean up.
	syscall.Kill(c.ShimPid, syscall.SIGKILL)
	awaitTrue(t, "the shim's death", func() bool { return !alive(c.ShimPid) })
	runtimeDir := filepath.Join(d.cfg.State, "runtime", c.ID)
	if err := os.Remove(filepath.Join(runtimeDir, "state.json")); err != nil {
		t.Fatal(err)
	}
	if !alive(c.Pid) || len(d.containerCgroups(c.ID)) == 0 {
		t.Fatalf("set-up: init %d alive %v, cgroups %v", c.Pid, alive(c.Pid), d.containerCgroups(c.ID))
	}
	setState(t, d.cfg.Root, c.ID, supervisor.StateCreating)
	d.open()
	if _, err := d.sup.Get(ctx, c.ID); err == nil {
		t.Error("record kept")
	}
	checkReaped(t, d, c)
	checkGone(t, c.Bundle, filepath.Join(d.cfg.Root, "containers", c.ID))
}

// TestInterruptedRestartIsCreated: a daemon killed while it started a
// stopped container again, after the new shim created it but before the
// record said so, finds the container created — with its new shim and
// init — and a user can start it.
func TestInterruptedRestartIsCreated(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()
	c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"sleep", "100"}}})
	if err != nil {
		t.Fatal(err)
	}
	d.sup.Close()
	// The record as the restart left it: stopped, with the old run's
	// shim and init.
	patchRecord(t, d.cfg.Root, c.ID, map[string]any{"state": supervisor.StateStopped, "shimPid": 1, "pid": 1})
	d.open()
	got, err := d.sup.Get(ctx, c.ID)
	if err != nil || got.State != supervisor.StateCreated || got.ShimPid != c.ShimPid || got.Pid != c.Pid {
		t.Fatalf("after the restart: %+v %v; want created, shim %d, init %d", got, err, c.ShimPid, c.Pid)
	}
	if got, err = d.sup.Start(ctx, c.ID); err != nil || got.State != supervisor.StateRunning {
		t.Fatalf("start: %+v %v", got, err)
	}
}

// TestShimLaunchedByAKilledDaemon: a daemon killed while it launched a
// shim leaves `condenser-shim start` running, which makes the shim's
// bundle and socket and starts the shim after the daemon is gone (here:
// half a second later, by a wrapper). The next start waits for it, then
// finds the shim's directory without a record and stops the shim: no shim
// is left running unreachable.
func TestShimLaunchedByAKilledDaemon(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	d.sup.Close()

	id := strings.Repeat("5", 64)
	bundle := filepath.Join(d.cfg.State, "shims", id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "slow-shim")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nsleep 0.5\nexec "+d.cfg.ShimBinary+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := exec.Command(wrapper, "start", "--id", id, "--bundle", bundle, "--runtime", d.cfg.Runtime,
		"--runtime-root", filepath.Join(d.cfg.State, "runtime"), "--socket", filepath.Join(bundle, "shim.sock"))
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	serving := func() []int { // the shim server this test caused
		var pids []int
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), "serve\x00") && strings.Contains(string(b), bundle+"\x00") {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				pids = append(pids, pid)
			}
		}
		return pids
	}
	t.Cleanup(func() {
		start.Process.Kill()
		start.Wait()
		for _, pid := range serving() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	d.open()
	start.Wait()
	awaitTrue(t, "the shim of no record stopped", func() bool {
		_, err := os.Stat(bundle)
		return len(serving()) == 0 && errors.Is(err, os.ErrNotExist)
	})
}
