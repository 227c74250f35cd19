package supervisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/oci"
)

// setState rewrites a record's state while the daemon is down, as a daemon
// killed in the middle of an operation leaves it.
func setState(t *testing.T, root, id string, st supervisor.State) {
	t.Helper()
	patchRecord(t, root, id, map[string]any{"state": string(st)})
}

// TestInterruptedOperationsLeaveNothing: a create or a delete cut short by
// a killed daemon is finished at the next start — no shim, mount, runtime
// state, bundle, directory or record remains.
func TestInterruptedOperationsLeaveNothing(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	for _, st := range []supervisor.State{supervisor.StateCreating, supervisor.StateRemoving} {
		t.Run(string(st), func(t *testing.T) {
			d := newDaemon(t, rt, reg.Host)
			ctx := context.Background()
			c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"sleep", "100"}}})
			if err != nil {
				t.Fatal(err)
			}
			if st == supervisor.StateRemoving {
				d.sup.Start(ctx, c.ID)
			}
			c, _ = d.sup.Get(ctx, c.ID)
			d.sup.Close()
			setState(t, d.cfg.Root, c.ID, st)
			d.open()
			if _, err := d.sup.Get(ctx, c.ID); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("record kept: %v", err)
			}
			for _, pid := range []int{c.ShimPid, c.Pid} {
				if b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat"); err == nil && !strings.Contains(string(b), ") Z ") {
					t.Errorf("process %d still alive", pid)
				}
			}
			mi, _ := os.ReadFile("/proc/self/mountinfo")
			if strings.Contains(string(mi), c.ID) {
				t.Errorf("mount left:\n%s", mi)
			}
			checkGone(t, c.Bundle, filepath.Join(d.cfg.Root, "containers", c.ID), filepath.Join(d.cfg.State, "runtime", c.ID))
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
