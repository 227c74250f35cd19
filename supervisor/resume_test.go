package supervisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/oci"
)

// awaitState waits until container id is in state want.
func awaitState(t *testing.T, d *daemon, id string, want supervisor.State) *supervisor.Container {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := d.sup.Get(context.Background(), id)
		if err == nil && c.State == want {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v %v, want %s", id[:12], c, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRestartPoliciesAtDaemonStart: when the daemon starts, containers that
// stopped while it was away — or whose host rebooted under them, bundle
// and all — are started again as their restart policy says, as Docker does;
// a stopped auto-remove container is removed.
func TestRestartPoliciesAtDaemonStart(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()
	run := func(policy string, autoRemove bool, args ...string) *supervisor.Container {
		t.Helper()
		c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", RestartPolicy: policy, AutoRemove: autoRemove, Config: oci.Config{Command: args}})
		if err != nil {
			t.Fatal(err)
		}
		if c, err = d.sup.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		return c
	}
	killedAway := run("always", false, "sleep", "100")  // killed while the daemon is away
	rebooted := run("always", false, "sleep", "100")    // its host "reboots"
	userStopped := run("always", false, "sleep", "100") // stopped by its user: always brings it back
	unlessStopped := run("unless-stopped", false, "sleep", "100")
	succeeded := run("on-failure", false, "sh", "-c", "while [ ! -e /go ]; do sleep 0.05; done") // exits 0 while away: stays
	removed := run("", true, "sleep", "100")                                                     // exits while away: removed
	for _, c := range []*supervisor.Container{userStopped, unlessStopped} {
		if _, err := d.sup.Stop(ctx, c.ID, time.Second); err != nil {
			t.Fatal(err)
		}
	}

	d.sup.Close() // the daemon goes away; the containers carry on
	for _, c := range []*supervisor.Container{killedAway, removed} {
		syscall.Kill(c.Pid, syscall.SIGKILL)
	}
	if err := os.WriteFile(filepath.Join(succeeded.RootfsPath(), "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Its exit is recorded by its shim while the daemon is away.
	deadline := time.Now().Add(20 * time.Second)
	for syscall.Kill(succeeded.Pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// A reboot: the shim and the container are gone, and with the state
	// directory (tmpfs) the bundle too.
	syscall.Kill(rebooted.ShimPid, syscall.SIGKILL)
	syscall.Kill(rebooted.Pid, syscall.SIGKILL)
	if err := os.RemoveAll(rebooted.Bundle); err != nil {
		t.Fatal(err)
	}
	d.open()

	for _, c := range []*supervisor.Container{killedAway, rebooted, userStopped} {
		got := awaitState(t, d, c.ID, supervisor.StateRunning)
		if got.RestartCount != c.RestartCount+1 {
			t.Errorf("%s: restart count %d", c.ID[:12], got.RestartCount)
		}
	}
	if _, err := os.Stat(filepath.Join(rebooted.Bundle, "config.json")); err != nil {
		t.Errorf("the rebooted container's bundle was not made again: %v", err)
	}
	awaitState(t, d, unlessStopped.ID, supervisor.StateStopped)
	if c := awaitState(t, d, succeeded.ID, supervisor.StateStopped); c.ExitCode == nil || *c.ExitCode != 0 {
		t.Errorf("on-failure container: exit %v", c.ExitCode)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		_, err := d.sup.Get(ctx, removed.ID)
		if errors.Is(err, errdefs.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("auto-remove container still there: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
