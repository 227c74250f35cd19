package supervisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/oci"
)

// awaitSpare waits until the supervisor has a spare shim other than not.
func awaitSpare(t *testing.T, d *daemon, not string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if id := supervisor.SpareID(d.sup); id != "" && id != not {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatal("no spare shim")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// shimServing reports whether a shim server for container id runs.
func shimServing(id string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "serve\x00") && strings.Contains(string(b), id) {
			return true
		}
	}
	return false
}

// awaitGone waits until container id has no shim and no directories.
func awaitGone(t *testing.T, d *daemon, id string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := []string{}
		if shimServing(id) {
			left = append(left, "shim process")
		}
		for _, dir := range []string{filepath.Join(d.cfg.State, "shims", id), filepath.Join(d.cfg.Root, "containers", id)} {
			if _, err := os.Stat(dir); err == nil {
				left = append(left, dir)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s left: %v", id[:12], left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSpareShim(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()

	// Create takes the spare: the container has its id, and runs.
	spare := awaitSpare(t, d, "")
	c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"sh", "-c", "exit 7"}}})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != spare {
		t.Errorf("container %s did not take the spare shim %s", c.ID[:12], spare[:12])
	}
	if _, err := d.sup.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if code, err := d.sup.Wait(ctx, c.ID); err != nil || code != 7 {
		t.Fatalf("wait: %d %v", code, err)
	}

	// A request refused before anything is made leaves the spare alone.
	spare = awaitSpare(t, d, spare)
	_, err = d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Mounts: []string{"relative:/x"}}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("create with a bad mount: %v", err)
	}
	if got := supervisor.SpareID(d.sup); got != spare || !shimServing(spare) {
		t.Fatalf("the spare %s went with a refused request (now %q)", spare[:12], got)
	}
	// A create that fails in the runtime takes the spare, and stops it.
	if _, err = d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"/nonexistent"}}}); err == nil {
		t.Fatal("create of a container whose command does not exist succeeded")
	}
	awaitGone(t, d, spare)

	// A daemon killed with a spare leaves it; the next start removes it,
	// and whatever else has no record.
	spare = awaitSpare(t, d, spare)
	orphan := filepath.Join(d.cfg.Root, "containers", strings.Repeat("ab", 32))
	if err := os.MkdirAll(filepath.Join(orphan, "upper", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	supervisor.ForgetSpare(d.sup)
	d.restart()
	awaitGone(t, d, spare)
	awaitGone(t, d, filepath.Base(orphan))
	if _, err := d.sup.Get(ctx, c.ID); err != nil {
		t.Errorf("the container went with the orphans: %v", err)
	}
	awaitSpare(t, d, spare) // and a new spare is ready
}
