package shim

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/client"
)

// TestClientRoundTrip drives a real shim through every call of
// shim/client, then cleans up with client.Cleanup, checking the domain
// types each returns.
func TestClientRoundTrip(t *testing.T) {
	for _, rt := range runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			c := newBundle(t, rt, []string{"sh", "-c", "echo hello; sleep 100"}, withMemory(64<<20))
			// A previous run's exit status, which the new container's
			// Create must remove.
			stale, _ := json.Marshal(api.Exit{Pid: 1, ExitCode: 99, ExitedAt: time.Now()})
			os.WriteFile(filepath.Join(c.bundle, api.ExitFile), stale, 0o644)

			ctx := context.Background()
			addr, err := client.Launch(ctx, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if addr != "unix://"+filepath.Join(c.bundle, api.SocketFile) {
				t.Errorf("address %q", addr)
			}
			if c.client, err = client.Dial(ctx, addr); err != nil {
				t.Fatal(err)
			}
			cl := c.client
			info, err := cl.Connect(ctx)
			if err != nil || info.ShimPid != c.shimPid() || info.TaskPid != 0 || info.Version == "" {
				t.Errorf("connect before create: %+v %v (shim.pid %d)", info, err, c.shimPid())
			}
			if st, err := cl.State(ctx); err != nil || st.Status != client.StatusUnknown {
				t.Errorf("state before create: %+v %v", st, err)
			}
			if _, err := cl.Wait(ctx); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("wait before create: %v, want ErrNotFound", err)
			}
			log := filepath.Join(t.TempDir(), "c.log")
			pid, err := cl.Create(ctx, client.CreateOptions{Rootfs: c.rootfs(), LogPath: log, LogMaxSize: 1 << 20, LogMaxFiles: 2})
			if err != nil || pid <= 0 {
				t.Fatalf("create: %d %v\n%s", pid, err, c.shimLog())
			}
			if _, err := api.ReadExit(c.bundle); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("the previous run's exit.json is still there: %v", err)
			}
			if st, err := cl.State(ctx); err != nil || st.Status != client.StatusCreated || st.Pid != pid {
				t.Errorf("state after create: %+v %v", st, err)
			}
			if info, err := cl.Connect(ctx); err != nil || info.TaskPid != pid {
				t.Errorf("connect after create: %+v %v", info, err)
			}
			if p, err := cl.Start(ctx); err != nil || p != pid {
				t.Fatalf("start: %d %v", p, err)
			}
			if st, err := cl.State(ctx); err != nil || st.Status != client.StatusRunning || st.Pid != pid || st.Exit != (client.Exit{}) {
				t.Errorf("state after start: %+v %v", st, err)
			}
			if pids, err := cl.Pids(ctx); err != nil || !slices.Contains(pids, pid) {
				t.Errorf("pids %v %v, want %d among them", pids, err, pid)
			}
			if st, err := cl.Stats(ctx); err != nil || st.MemoryLimit != 64<<20 || st.MemoryUsage == 0 || st.PidsCurrent < 1 || st.CPUUsageNanos == 0 {
				t.Errorf("stats %+v %v", st, err)
			}
			if err := cl.Shutdown(ctx, false); !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("shutdown of a running container: %v, want ErrConflict", err)
			}
			// The output reaches the log (before the kill cuts it short).
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if b, _ := os.ReadFile(log); strings.Contains(string(b), "hello") {
					break
				}
			}
			if err := cl.Kill(ctx, syscall.SIGKILL, false); err != nil {
				t.Fatal(err)
			}
			e := c.wait()
			if e.ExitCode != 137 || e.ExitedAt.IsZero() || e.OOMKilled {
				t.Errorf("wait: %+v", e)
			}
			st, err := cl.State(ctx)
			if err != nil || st.Status != client.StatusStopped || st.Exit.ExitCode != 137 || st.Exit.Pid != pid || !st.Exit.ExitedAt.Equal(e.ExitedAt) {
				t.Errorf("state after exit: %+v %v", st, err)
			}
			if err := cl.Kill(ctx, syscall.SIGKILL, false); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("kill after exit: %v, want ErrNotFound", err)
			}
			d, err := cl.Delete(ctx)
			if err != nil || d.Pid != pid || d.ExitCode != 137 || !d.ExitedAt.Equal(e.ExitedAt) || d.OOMKilled {
				t.Errorf("delete: %+v %v", d, err)
			}
			if b, _ := os.ReadFile(log); !strings.Contains(string(b), `"log":"hello\n"`) {
				t.Errorf("log %s: %q", log, b)
			}
			shim := c.shimPid()
			if err := cl.Shutdown(ctx, false); err != nil {
				t.Fatal(err)
			}
			select {
			case <-cl.Done():
			case <-time.After(5 * time.Second):
				t.Error("Done not closed after Shutdown")
			}
			waitGone(t, shim)
			if _, err := cl.State(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
				t.Errorf("state on a closed connection: %v, want ErrUnavailable", err)
			}
			for range 2 {
				ce, err := client.Cleanup(ctx, c.opts)
				if err != nil || ce == nil || ce.ExitCode != 137 || ce.Pid != pid || !ce.ExitedAt.Equal(e.ExitedAt) {
					t.Errorf("cleanup: %+v %v", ce, err)
				}
			}
			c.checkCleanedUp(shim, pid)
			if _, err := client.Dial(ctx, addr); !errors.Is(err, errdefs.ErrUnavailable) {
				t.Errorf("dial after cleanup: %v, want ErrUnavailable", err)
			}
		})
	}
}
