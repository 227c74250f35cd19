package supervisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/oci"
)

// daemon is a supervisor over a real image store, rootfs manager, shim and
// runtime, reopenable as after a daemon restart.
type daemon struct {
	t      *testing.T
	cfg    supervisor.Config
	sup    *supervisor.Supervisor
	images *imagestore.Store
}

func newDaemon(t *testing.T, rt testutil.Runtime, mirror string) *daemon {
	t.Helper()
	root := t.TempDir()
	state, err := os.MkdirTemp("", "cs") // short: shim socket paths have a length limit
	if err != nil {
		t.Fatal(err)
	}
	images, err := imagestore.Open(context.Background(), imagestore.Options{Root: root, Mirrors: map[string][]string{"docker.io": {"http://" + mirror}}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rootfs.NewManager(filepath.Join(root, "containers"))
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, images: images, cfg: supervisor.Config{
		Root: root, State: state, Runtime: rt.Binary, ShimBinary: shimBinary(t), Images: supervisor.StoreImages(images), Rootfs: m, StopTimeout: 2 * time.Second,
		SpareShim:    true,                     // as the daemon runs by default
		CgroupParent: testutil.CgroupParent(t), // its own, removed after the cleanup below
	}}
	d.open()
	t.Cleanup(func() {
		ctx := context.Background()
		if d.sup != nil {
			cs, _ := d.sup.List(ctx)
			for _, c := range cs {
				if _, err := d.sup.Delete(ctx, c.ID, true); err != nil {
					t.Errorf("cleanup: delete %s: %v", c.ID[:12], err)
				}
			}
			d.sup.Close()
		}
		images.Close()
		// No shim may outlive its containers. A shim told to shut down
		// closes its connection just before it exits: give the ones on
		// their way out a moment.
		deadline := time.Now().Add(5 * time.Second)
		for left := shimsServing(state); len(left) > 0; left = shimsServing(state) {
			if time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			for pid, cmd := range left {
				t.Errorf("shim left running: %s", cmd)
				syscall.Kill(pid, syscall.SIGKILL)
			}
			break
		}
		os.RemoveAll(state)
	})
	return d
}

// checkGone fails the test for each path that exists.
// shimsServing returns the shim servers of bundles under state, by pid.
func shimsServing(state string) map[int]string {
	out := map[int]string{}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "serve") && strings.Contains(string(b), state+"/") {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				out[pid] = strings.ReplaceAll(string(b), "\x00", " ")
			}
		}
	}
	return out
}

func checkGone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left", p)
		}
	}
}

func (d *daemon) open() {
	d.t.Helper()
	s, err := supervisor.Open(context.Background(), d.cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	d.sup = s
}

// restart closes the supervisor as a killed daemon would leave things
// (containers running) and opens it again.
func (d *daemon) restart() {
	d.t.Helper()
	d.sup.Close()
	d.open()
}

func (d *daemon) logs(c *supervisor.Container) string {
	d.t.Helper()
	entries, err := logging.ReadLast(d.sup.LogPath(c), 3, 1000)
	if err != nil {
		d.t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Log)
	}
	return b.String()
}

func busyboxRegistry(t *testing.T) *testutil.Registry {
	reg := testutil.StartRegistry(t)
	reg.Push(t, reg.Ref("library/busybox:latest"), testutil.BusyboxImage(t))
	return reg
}

func TestLifecycle(t *testing.T) {
	for _, rt := range testutil.Runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			reg := busyboxRegistry(t)
			d := newDaemon(t, rt, reg.Host)
			ctx := context.Background()
			c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Name: "hello", Config: oci.Config{Command: []string{"sh", "-c", "echo hello; exit 3"}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Name: "hello"}); !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("name conflict: %v", err)
			}
			if _, err := d.sup.Start(ctx, "hello"); err != nil {
				t.Fatal(err)
			}
			code, err := d.sup.Wait(ctx, c.ID[:6])
			if err != nil || code != 3 {
				t.Fatalf("wait: %d %v", code, err)
			}
			got, _ := d.sup.Get(ctx, "hello")
			if got.State != supervisor.StateStopped || got.ExitCode == nil || *got.ExitCode != 3 {
				t.Errorf("record %+v", got)
			}
			if out := d.logs(got); out != "hello\n" {
				t.Errorf("logs %q", out)
			}
			// A stopped container starts again.
			if _, err := d.sup.Start(ctx, "hello"); err != nil {
				t.Fatal(err)
			}
			if code, _ := d.sup.Wait(ctx, "hello"); code != 3 {
				t.Errorf("second run exit %d", code)
			}
			if out := d.logs(got); out != "hello\nhello\n" {
				t.Errorf("logs after two runs %q", out)
			}
			if _, err := d.sup.Delete(ctx, "hello", false); err != nil {
				t.Fatal(err)
			}
			if _, err := d.sup.Get(ctx, "hello"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("after delete: %v", err)
			}
			checkGone(t, got.Bundle, filepath.Join(d.cfg.Root, "containers", got.ID))
		})
	}
}

func TestStopKillAndRestartPolicy(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()
	// sleep as pid 1 ignores SIGTERM: stop escalates to SIGKILL after the timeout.
	c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"sleep", "100"}}})
	if err != nil {
		t.Fatal(err)
	}
	d.sup.Start(ctx, c.ID)
	start := time.Now()
	got, err := d.sup.Stop(ctx, c.ID, 500*time.Millisecond)
	if err != nil || got.State != supervisor.StateStopped || *got.ExitCode != 137 || time.Since(start) < 500*time.Millisecond {
		t.Fatalf("stop: %+v %v", got, err)
	}
	if _, err := d.sup.Delete(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}

	// on-failure:2 restarts a failing container twice, then leaves it.
	f, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", RestartPolicy: "on-failure:2", Config: oci.Config{Command: []string{"false"}}})
	if err != nil {
		t.Fatal(err)
	}
	d.sup.Start(ctx, f.ID)
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _ := d.sup.Get(ctx, f.ID)
		if got.RestartCount == 2 && got.State == supervisor.StateStopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart policy: %+v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", RestartPolicy: "sometimes"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad policy: %v", err)
	}
}

func TestContainersSurviveDaemonRestart(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()
	var ids []string
	for range 3 {
		c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"sleep", "100"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.sup.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	short, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"sleep", "100"}}})
	if err != nil {
		t.Fatal(err)
	}
	d.sup.Start(ctx, short.ID)

	d.sup.Close() // the daemon goes away; containers keep running
	// While it is away, one container exits.
	pid := short.Pid
	syscall.Kill(pid, syscall.SIGKILL)
	d.open()
	for _, id := range ids {
		c, err := d.sup.Get(ctx, id)
		if err != nil || c.State != supervisor.StateRunning {
			t.Errorf("after restart %s: %+v %v", id[:12], c, err)
		}
	}
	code, err := d.sup.Wait(ctx, short.ID)
	if err != nil || code != 137 {
		t.Errorf("container that died while the daemon was away: %d %v", code, err)
	}
	// Reconnected containers are still controlled.
	if _, err := d.sup.Stop(ctx, ids[0], 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if c, _ := d.sup.Get(ctx, ids[0]); c.State != supervisor.StateStopped {
		t.Errorf("stop after reconnect: %+v", c)
	}
}

func TestLogsFollowAndAutoRemove(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()
	c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Command: []string{"sh", "-c", "echo a; sleep 0.3; echo b >&2; sleep 0.3"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.sup.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	var got []string
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = d.sup.Logs(fctx, c.ID, supervisor.LogOptions{Follow: true, Tail: -1, Stdout: true, Stderr: true}, func(e logging.Entry) error {
		got = append(got, e.Stream+":"+e.Log)
		return nil
	})
	if err != nil || fctx.Err() != nil || strings.Join(got, "") != "stdout:a\nstderr:b\n" {
		t.Errorf("followed logs %q, %v (deadline: %v)", got, err, fctx.Err())
	}

	// autoRemove: gone once it exits.
	r, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", AutoRemove: true, Config: oci.Config{Command: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	events, stop := d.sup.Subscribe()
	defer stop()
	if _, err := d.sup.Start(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	for destroyed := false; !destroyed; {
		select {
		case e := <-events:
			destroyed = e.ID == r.ID && e.Action == "destroy"
		case <-deadline:
			t.Fatal("auto-removed container not destroyed")
		}
	}
	if _, err := d.sup.Get(ctx, r.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("auto-removed container still there: %v", err)
	}
}

// TestEtcFilesWrittenAgainAtStart: a container's /etc files are written
// without fsync at create, and again whenever the stopped container starts,
// so files a power loss emptied are whole again at the next start.
func TestEtcFilesWrittenAgainAtStart(t *testing.T) {
	rt := testutil.Runtimes(t)[0]
	reg := busyboxRegistry(t)
	d := newDaemon(t, rt, reg.Host)
	ctx := context.Background()
	c, err := d.sup.Create(ctx, supervisor.CreateRequest{Image: "busybox", Config: oci.Config{Hostname: "box", Command: []string{"cat", "/etc/hostname", "/etc/hosts"}}})
	if err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		if _, err := d.sup.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if code, err := d.sup.Wait(ctx, c.ID); err != nil || code != 0 {
			t.Fatalf("run %d: wait: %d %v", run, code, err)
		}
		if logs := d.logs(c); strings.Count(logs, "127.0.1.1\tbox") != run+1 || strings.Count(logs, "box\n") < 2*(run+1) {
			t.Fatalf("run %d: output %q", run, logs)
		}
		// What a power loss could leave of files written without fsync.
		etc, _ := filepath.Glob(filepath.Join(d.cfg.Root, "containers", c.ID, "etc", "*"))
		if len(etc) != 3 {
			t.Fatalf("etc files: %v", etc)
		}
		for _, f := range etc {
			if err := os.Truncate(f, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
}
