package supervisor_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/oci"
)

// shimsOf returns the pids of the shim servers of container id.
func shimsOf(id string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(args) < 2 || args[1] != "serve" {
			continue
		}
		if i := slices.Index(args, "--id"); i < 0 || i+1 >= len(args) || args[i+1] != id {
			continue
		}
		var pid int
		for _, r := range filepath.Base(filepath.Dir(p)) {
			pid = pid*10 + int(r-'0')
		}
		if alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// checkStopped checks that container id, whose run was run, is stopped
// with exit code want and keeps nothing of that run: no shim process, no
// process of its own, no mount of its root filesystem, no cgroup, no
// runtime state, no shim socket or pid file.
func checkStopped(t *testing.T, d *daemon, id string, want int, run *supervisor.Container) {
	t.Helper()
	ctx := context.Background()
	var got *supervisor.Container
	// The exit is recorded (and waiters released) before the shim is let
	// go, under the container's lock: a moment later the shim is gone.
	awaitTrue(t, "the stopped container's shim to go", func() bool {
		var err error
		got, err = d.sup.Get(ctx, id)
		return err == nil && got.State == supervisor.StateStopped && got.ShimAddress == "" && len(shimsOf(id)) == 0 && !alive(run.ShimPid)
	})
	if got.ExitCode == nil || *got.ExitCode != want {
		t.Errorf("exit code %v, want %d", got.ExitCode, want)
	}
	if got.Pid != 0 || got.ShimPid != 0 {
		t.Errorf("a stopped container with pid %d, shim pid %d", got.Pid, got.ShimPid)
	}
	checkReaped(t, d, run)
	if code, err := d.sup.Wait(ctx, id); err != nil || code != want {
		t.Errorf("wait on the stopped container: %d %v, want %d", code, err, want)
	}
}

// TestStoppedContainerKeepsNoProcess: a container whose process exits is
// recorded as stopped with its exit code, and nothing of it runs or is
// mounted any more — no shim, no process, no root filesystem mount, no
// cgroup, no runtime state; it starts again, with the changes of its
// writable layer; the same holds across a restart of the daemon while it
// is stopped, and when it exits while the daemon is away.
//
// Each run appends a line to /runs in the container's writable layer and
// exits with 10 + the number of lines: the exit code tells that the layer
// survived. The third run waits, and is killed while the daemon is away.
func TestStoppedContainerKeepsNoProcess(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()
	script := `echo run >> /runs; n=$(wc -l < /runs); [ "$n" -eq 3 ] && exec sleep 100; exit $((10 + n))`
	c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Name: "exits", Config: oci.Config{Command: []string{"sh", "-c", script}}})
	if err != nil {
		t.Fatal(err)
	}
	cleanupCgroups(t, d, c.ID)
	start := func() *supervisor.Container {
		t.Helper()
		run, err := d.sup.Start(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if run.State != supervisor.StateRunning || run.ShimPid == 0 || run.Pid == 0 {
			t.Fatalf("started: %+v", run)
		}
		return run
	}

	// Run 1 exits 11.
	run := start()
	if code, err := d.sup.Wait(ctx, c.ID); err != nil || code != 11 {
		t.Fatalf("wait: %d %v, want 11", code, err)
	}
	checkStopped(t, d, c.ID, 11, run)

	// Run 2 exits 12: /runs survived in the writable layer.
	run = start()
	if code, err := d.sup.Wait(ctx, c.ID); err != nil || code != 12 {
		t.Fatalf("second run: %d %v, want 12", code, err)
	}
	checkStopped(t, d, c.ID, 12, run)

	// The daemon restarts while the container is stopped: it stays so,
	// and nothing is launched for it.
	d.restart()
	checkStopped(t, d, c.ID, 12, run)

	// Run 3 is killed while the daemon is away: the next daemon records
	// its exit and lets its shim go.
	run = start()
	if !becomes(run.Pid, "sleep 100") {
		t.Fatalf("third run: %d is not sleeping", run.Pid)
	}
	d.sup.Close()
	if err := syscall.Kill(run.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	awaitTrue(t, "the container's exit", func() bool { return !alive(run.Pid) })
	d.open()
	checkStopped(t, d, c.ID, 137, run)

	// Run 4 exits 14, after both.
	run = start()
	if code, err := d.sup.Wait(ctx, c.ID); err != nil || code != 14 {
		t.Fatalf("fourth run: %d %v, want 14", code, err)
	}
	checkStopped(t, d, c.ID, 14, run)

	if _, err := d.sup.Delete(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	checkGone(t, c.Bundle, filepath.Join(d.cfg.Root, "containers", c.ID))
	if shims := shimsOf(c.ID); len(shims) > 0 {
		t.Errorf("shims left after the delete: %v", shims)
	}
}

// becomes reports whether pid runs command line cmd within a few seconds.
func becomes(pid int, cmd string) bool {
	for range 250 {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/cmdline")
		if err != nil {
			return false
		}
		if strings.Join(strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), " ") == cmd {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestLogCompleteOnceStopped: once a container is stopped — Wait has
// returned, a followed log has ended — its log holds everything it wrote,
// up to its last line, even when it writes right up to its exit: here the
// pipe is full of empty lines (one log entry, one write, each) when it
// exits.
func TestLogCompleteOnceStopped(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()
	const lines = 30000 + 1
	c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"sh", "-c", "yes '' | head -n 30000; echo end; exit 3"}}})
	if err != nil {
		t.Fatal(err)
	}
	for run := range 3 {
		if _, err := d.sup.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		var followed string
		n := 0
		err := d.sup.Logs(ctx, c.ID, supervisor.LogOptions{Follow: true, Tail: -1, Stdout: true, Stderr: true}, func(e logging.Entry) error {
			n++
			followed = e.Log
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The log holds every run's lines: two a turn.
		if want := (2*run + 1) * lines; followed != "end\n" || n != want {
			t.Errorf("run %d: the followed log ended with %q after %d lines, want \"end\" after %d", run, followed, n, want)
		}
		if code, err := d.sup.Wait(ctx, c.ID); err != nil || code != 3 {
			t.Fatalf("run %d: wait %d %v", run, code, err)
		}
		if _, err := d.sup.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if code, err := d.sup.Wait(ctx, c.ID); err != nil || code != 3 {
			t.Fatalf("run %d: wait %d %v", run, code, err)
		}
		entries, err := logging.ReadLast(d.sup.LogPath(c), logging.DefaultMaxFiles, 1)
		if err != nil || len(entries) != 1 || entries[0].Log != "end\n" {
			t.Errorf("run %d: once Wait returned, the log ends with %+v (%v), want \"end\"", run, entries, err)
		}
		n = 0
		if err := d.sup.Logs(ctx, c.ID, supervisor.LogOptions{Tail: -1, Stdout: true, Stderr: true}, func(logging.Entry) error { n++; return nil }); err != nil || n != (2*run+2)*lines {
			t.Errorf("run %d: the log has %d lines (%v), want %d", run, n, err, (2*run+2)*lines)
		}
	}
}
