package supervisor

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/shim/client"
)

func TestTransitions(t *testing.T) {
	all := []State{StateCreating, StateCreated, StateRunning, StateStopped, StateRestarting, StateRemoving}
	allowed := map[[2]State]bool{
		{StateCreating, StateCreated}: true, {StateCreating, StateRemoving}: true,
		{StateCreated, StateRunning}: true, {StateCreated, StateStopped}: true, {StateCreated, StateRemoving}: true,
		{StateRunning, StateStopped}: true,
		{StateStopped, StateRunning}: true, {StateStopped, StateCreated}: true, {StateStopped, StateRestarting}: true, {StateStopped, StateRemoving}: true,
		{StateRestarting, StateRunning}: true, {StateRestarting, StateCreated}: true, {StateRestarting, StateStopped}: true, {StateRestarting, StateRemoving}: true,
	}
	for _, from := range all {
		for _, to := range all {
			if got, want := canTransition(from, to), allowed[[2]State{from, to}]; got != want {
				t.Errorf("%s → %s: allowed %v, want %v", from, to, got, want)
			}
		}
	}
}

// TestDecide is the reconnect decision for every record state and every
// answer of its shim.
func TestDecide(t *testing.T) {
	gone := probe{}
	mute := probe{dialed: true} // answers the dial, not State
	at := func(s client.Status) probe { return probe{dialed: true, status: s} }
	cases := []struct {
		st      State
		hasShim bool
		p       probe
		want    action
	}{
		// interrupted creates and deletes are finished, whatever the shim says
		{StateCreating, false, gone, finish},
		{StateCreating, true, gone, finish},
		{StateCreating, true, at(client.StatusCreated), finish},
		{StateRemoving, true, at(client.StatusStopped), finish},
		{StateRemoving, false, gone, finish},
		// created and running containers
		{StateCreated, true, at(client.StatusCreated), attach},
		{StateCreated, true, at(client.StatusRunning), attach}, // started, the record not yet written
		{StateCreated, true, at(client.StatusStopped), exited},
		{StateCreated, true, gone, lost},
		{StateCreated, false, gone, lost},
		{StateRunning, true, at(client.StatusRunning), attach},
		{StateRunning, true, mute, attach},
		{StateRunning, true, at(client.StatusStopped), exited},
		{StateRunning, true, gone, lost},
		{StateRunning, true, at(client.StatusUnknown), lost},
		{StateRunning, true, at(client.StatusCreated), created},
		{StateRunning, false, gone, lost},
		// stopped containers keep no shim; one left over goes
		{StateStopped, false, gone, keep},
		{StateStopped, true, gone, released},
		{StateStopped, true, at(client.StatusStopped), released},
		{StateStopped, true, at(client.StatusUnknown), released},
		{StateStopped, true, at(client.StatusCreated), created}, // a start cut short
		{StateStopped, true, at(client.StatusRunning), attach},
		{StateRestarting, false, gone, keep},
		{StateRestarting, true, at(client.StatusUnknown), released},
		{StateRestarting, true, at(client.StatusCreated), created},
		{StateRestarting, true, at(client.StatusRunning), attach},
	}
	for _, c := range cases {
		if got := decide(c.st, c.hasShim, c.p); got != c.want {
			t.Errorf("decide(%s, shim %v, %+v) = %s, want %s", c.st, c.hasShim, c.p, got, c.want)
		}
	}
}

func TestLifecycleWithFakes(t *testing.T) {
	ctx := context.Background()
	d := newFakeDaemon(t)
	c := d.create("web", nil)
	if c.State != StateCreated || c.Pid == 0 || c.ShimAddress == "" || len(d.shims.live(c.ID)) != 1 {
		t.Fatalf("created: %+v", c)
	}
	if _, err := d.sup.Create(ctx, CreateRequest{Image: "busybox", Name: "web"}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("second create of the name: %v, want a conflict", err)
	}
	if _, err := d.sup.Start(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.sup.Start(ctx, "web"); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("start of a running container: %v", err)
	}
	d.shims.exitContainer(t, c.ID, 3)
	if code, err := d.sup.Wait(ctx, "web"); err != nil || code != 3 {
		t.Fatalf("wait: %d, %v", code, err)
	}
	got := d.get(c.ID)
	if got.State != StateStopped || got.ExitCode == nil || *got.ExitCode != 3 {
		t.Fatalf("after the exit: %+v", got)
	}
	// No process for a stopped container: its shim goes once the exit is
	// recorded.
	got = d.await(c.ID, "without its shim", func(c *Container) bool { return c.ShimAddress == "" })
	if n := len(d.shims.live(c.ID)); n != 0 || got.ShimPid != 0 {
		t.Fatalf("a stopped container keeps %d shims (%q)", n, got.ShimAddress)
	}
	// It starts again, with a new shim.
	if got, err := d.sup.Start(ctx, "web"); err != nil || got.State != StateRunning || got.ExitCode != nil {
		t.Fatalf("start again: %+v, %v", got, err)
	}
	if got := d.get(c.ID); !got.CreatedAt.Equal(c.CreatedAt) {
		t.Errorf("createdAt rewritten by a start: %v, was %v", got.CreatedAt, c.CreatedAt)
	}
	if _, err := d.sup.Delete(ctx, "web", false); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("delete of a running container: %v", err)
	}
	stopped, err := d.sup.Stop(ctx, "web", -1)
	if err != nil || stopped.State != StateStopped || *stopped.ExitCode != 128+int(syscall.SIGTERM) {
		t.Fatalf("stop: %+v, %v", stopped, err)
	}
	if _, err := d.sup.Delete(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.sup.Get(ctx, c.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if d.shims.count() != 0 || len(d.rootfs.prepared) != 0 {
		t.Fatalf("left behind: %d shims, rootfs %v", d.shims.count(), d.rootfs.prepared)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	d := newFakeDaemon(t)
	d.shims.ignoreTERM = true
	c := d.create("stubborn", nil)
	ctx := context.Background()
	if _, err := d.sup.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	got, err := d.sup.Stop(ctx, c.ID, 10*time.Millisecond)
	if err != nil || *got.ExitCode != 128+int(syscall.SIGKILL) || !got.StopRequested {
		t.Fatalf("stop: %+v, %v", got, err)
	}
}

func TestForceDeleteRunning(t *testing.T) {
	d := newFakeDaemon(t)
	ctx := context.Background()
	c := d.create("x", func(r *CreateRequest) { r.RestartPolicy = "always" })
	if _, err := d.sup.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.sup.Delete(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	if d.shims.count() != 0 {
		t.Fatalf("%d shims left", d.shims.count())
	}
}

// TestCreateHoldsTheLock: a delete that arrives while a create is under
// way waits for it, then removes the whole container; nothing the create
// writes afterwards brings it back.
func TestCreateHoldsTheLock(t *testing.T) {
	d := newFakeDaemon(t)
	ctx := context.Background()
	entered, release := make(chan string), make(chan struct{})
	d.shims.createHook = func(id string) error {
		entered <- id
		<-release
		return nil
	}
	var wg sync.WaitGroup
	var created *Container
	var createErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		created, createErr = d.sup.Create(ctx, CreateRequest{Image: "busybox", Name: "racy"})
	}()
	id := <-entered
	if got := d.get("racy"); got.State != StateCreating || got.ID != id {
		t.Fatalf("during create: %+v", got)
	}
	deleted := make(chan error, 1)
	go func() {
		_, err := d.sup.Delete(ctx, "racy", true)
		deleted <- err
	}()
	select {
	case err := <-deleted:
		t.Fatalf("delete of a container being created returned at once: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	if createErr != nil || created.State != StateCreated {
		t.Fatalf("create: %+v, %v", created, createErr)
	}
	if err := <-deleted; err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := d.sup.Get(ctx, id); !errors.Is(err, errdefs.ErrNotFound) || d.shims.count() != 0 {
		t.Fatalf("after delete: %v, %d shims", err, d.shims.count())
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	d := newFakeDaemon(t)
	d.shims.createHook = func(string) error { return errors.New("runc create failed: exec: \"/nonexistent\": no such file") }
	_, err := d.sup.Create(context.Background(), CreateRequest{Image: "busybox", Name: "bad"})
	if err == nil {
		t.Fatal("create succeeded")
	}
	if cs, _ := d.sup.List(context.Background()); len(cs) != 0 || d.shims.count() != 0 || len(d.rootfs.prepared) != 0 {
		t.Fatalf("left: %d records, %d shims, rootfs %v", len(cs), d.shims.count(), d.rootfs.prepared)
	}
}

func TestShimLostWhileRunning(t *testing.T) {
	for _, keepExit := range []bool{true, false} {
		t.Run(map[bool]string{true: "exit status on disk", false: "no exit status"}[keepExit], func(t *testing.T) {
			d := newFakeDaemon(t)
			ctx := context.Background()
			c := d.create("x", nil)
			if _, err := d.sup.Start(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			if keepExit {
				d.shims.mu.Lock()
				d.shims.exits[c.ID] = client.Exit{ExitCode: 7, ExitedAt: time.Now()}
				d.shims.mu.Unlock()
			}
			d.shims.kill(t, c.ID, keepExit)
			if _, err := d.sup.Wait(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			got := d.get(c.ID)
			if got.State != StateStopped || (got.ExitCode != nil) != keepExit || (keepExit && *got.ExitCode != 7) {
				t.Fatalf("after the shim died: %+v", got)
			}
			if d.shims.cleanups[c.ID] == 0 {
				t.Fatal("no out-of-band clean-up after the shim died")
			}
			if got, err := d.sup.Start(ctx, c.ID); err != nil || got.State != StateRunning {
				t.Fatalf("start again: %+v, %v", got, err)
			}
		})
	}
}

// TestReconnect: what start-up makes of each record and its shim.
func TestReconnect(t *testing.T) {
	ctx := context.Background()
	d := newFakeDaemon(t)
	running := d.create("running", nil)
	exitedAway := d.create("exited-away", nil)
	shimGone := d.create("shim-gone", nil)
	created := d.create("created", nil)
	for _, c := range []*Container{running, exitedAway, shimGone} {
		if _, err := d.sup.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
	}
	d.sup.Close()
	d.sup = nil
	// While the daemon is away.
	d.shims.exitContainer(t, exitedAway.ID, 4)
	d.shims.kill(t, shimGone.ID, false)
	d.open()
	if got := d.get(running.ID); got.State != StateRunning {
		t.Errorf("running: %+v", got)
	}
	if got := d.get(exitedAway.ID); got.State != StateStopped || got.ExitCode == nil || *got.ExitCode != 4 || len(d.shims.live(got.ID)) != 0 {
		t.Errorf("exited while away: %+v", got)
	}
	if got := d.get(shimGone.ID); got.State != StateStopped || got.ExitCode != nil {
		t.Errorf("shim gone: %+v", got)
	}
	if got := d.get(created.ID); got.State != StateCreated || len(d.shims.live(got.ID)) != 1 {
		t.Errorf("created: %+v", got)
	}
	// The running container's monitor is back.
	d.shims.exitContainer(t, running.ID, 0)
	if code, err := d.sup.Wait(ctx, running.ID); err != nil || code != 0 {
		t.Fatalf("wait after reconnect: %d, %v", code, err)
	}
	if got := d.get(running.ID); got.State != StateStopped {
		t.Fatalf("exit after reconnect not recorded: %+v", got)
	}
}

// TestReconnectFinishesInterrupted: records a killed daemon left in
// creating or removing are finished: everything goes, the record too.
func TestReconnectFinishesInterrupted(t *testing.T) {
	for _, st := range []State{StateCreating, StateRemoving} {
		t.Run(string(st), func(t *testing.T) {
			d := newFakeDaemon(t)
			c := d.create("x", nil)
			c.State = st
			if err := d.sup.recs.put(c); err != nil {
				t.Fatal(err)
			}
			d.restart()
			if _, err := d.sup.Get(context.Background(), c.ID); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("record: %v", err)
			}
			if d.shims.count() != 0 || len(d.rootfs.prepared) != 0 {
				t.Fatalf("left: %d shims, rootfs %v, cleanups %v", d.shims.count(), d.rootfs.prepared, d.shims.cleanups)
			}
		})
	}
}

func TestRestartPolicyOnFailure(t *testing.T) {
	d := newFakeDaemon(t)
	ctx := context.Background()
	c := d.create("flaky", func(r *CreateRequest) { r.RestartPolicy = "on-failure:2" })
	if _, err := d.sup.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		d.shims.exitContainer(t, c.ID, 1)
		d.await(c.ID, "restarted", func(c *Container) bool { return c.State == StateRunning && c.RestartCount == i })
	}
	d.shims.exitContainer(t, c.ID, 1)
	got := d.await(c.ID, "stopped", inState(StateStopped))
	if got.RestartCount != 2 {
		t.Fatalf("restart count %d", got.RestartCount)
	}
	// A manual start gives the policy its tries back (Docker).
	if got, err := d.sup.Start(ctx, c.ID); err != nil || got.RestartCount != 0 {
		t.Fatalf("manual start: %+v, %v", got, err)
	}
	d.shims.exitContainer(t, c.ID, 1)
	d.await(c.ID, "restarted after a manual start", func(c *Container) bool { return c.State == StateRunning && c.RestartCount == 1 })
}

func TestRestartBackoff(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		backoff int
		ran     time.Duration
		want    time.Duration
	}{
		{"first", 0, time.Second, 100 * time.Millisecond},
		{"third quick one", 2, time.Second, 400 * time.Millisecond},
		{"capped", 12, time.Second, time.Minute},
		{"after a long run", 12, time.Hour, 100 * time.Millisecond},
		{"after exactly 10 s", 5, 10 * time.Second, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			c := d.create("b", func(r *CreateRequest) { r.RestartPolicy = "always" })
			c.State, c.StartedAt, c.Backoff = StateRunning, start, tc.backoff
			if err := d.sup.recs.put(c); err != nil {
				t.Fatal(err)
			}
			if err := d.sup.exited(context.Background(), c, &client.Exit{ExitCode: 1, ExitedAt: start.Add(tc.ran)}); err != nil {
				t.Fatal(err)
			}
			ok, delay := d.sup.policyRestart(c)
			if !ok || delay != tc.want {
				t.Fatalf("restart %v after %v, want %v", ok, delay, tc.want)
			}
		})
	}
}

// TestStopWhileRestarting: a container waiting out its back-off shows
// "restarting"; stopping it ends the wait, and a plain delete refuses it.
func TestStopWhileRestarting(t *testing.T) {
	d := newFakeDaemon(t)
	ctx := context.Background()
	c := d.create("r", func(r *CreateRequest) { r.RestartPolicy = "always" })
	c.Backoff = 10 // a long back-off: a minute
	if err := d.sup.recs.put(c); err != nil {
		t.Fatal(err)
	}
	if _, err := d.sup.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	// Start reset the back-off; make this exit a quick one again.
	got := d.get(c.ID)
	got.Backoff = 10
	if err := d.sup.recs.put(got); err != nil {
		t.Fatal(err)
	}
	d.shims.exitContainer(t, c.ID, 1)
	d.await(c.ID, "restarting", inState(StateRestarting))
	if _, err := d.sup.Delete(ctx, c.ID, false); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("plain delete of a restarting container: %v", err)
	}
	if got, err := d.sup.Stop(ctx, c.ID, -1); err != nil || got.State != StateStopped {
		t.Fatalf("stop: %+v, %v", got, err)
	}
	if _, err := d.sup.Delete(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
}

func TestAutoRemove(t *testing.T) {
	d := newFakeDaemon(t)
	ctx := context.Background()
	c := d.create("rm", func(r *CreateRequest) { r.AutoRemove = true })
	if _, err := d.sup.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	d.shims.exitContainer(t, c.ID, 0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := d.sup.Get(ctx, c.ID); errors.Is(err, errdefs.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not removed")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestCreateValidates(t *testing.T) {
	d := newFakeDaemon(t)
	cases := []CreateRequest{
		{Image: ""},
		{Image: "busybox", Name: "-bad"},
		{Image: "busybox", RestartPolicy: "sometimes"},
		{Image: "busybox", RestartPolicy: "always:3"},
		{Image: "busybox", RestartPolicy: "on-failure:-1"},
		{Image: "busybox", RestartPolicy: "always", AutoRemove: true},
	}
	for _, req := range cases {
		if _, err := d.sup.Create(context.Background(), req); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("create %+v: %v, want invalid argument", req, err)
		}
	}
	if _, err := d.sup.Create(context.Background(), CreateRequest{Image: "missing"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing image: %v", err)
	}
}

// TestKilledDuringRestartLaunch: a daemon killed while it launched the
// shim of a stopped container's start leaves the address in the record
// (written before the launch); the next daemon lets that shim go, and the
// container starts again.
func TestKilledDuringRestartLaunch(t *testing.T) {
	for _, launched := range []bool{true, false} {
		t.Run(map[bool]string{true: "shim launched", false: "before the launch"}[launched], func(t *testing.T) {
			ctx := context.Background()
			d := newFakeDaemon(t)
			c := d.create("x", nil)
			if _, err := d.sup.Start(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := d.sup.Stop(ctx, c.ID, -1); err != nil {
				t.Fatal(err)
			}
			c = d.await(c.ID, "without its shim", func(c *Container) bool { return c.ShimAddress == "" })
			c.ShimAddress = d.shims.Address(c.ID, c.Bundle)
			if err := d.sup.recs.put(c); err != nil {
				t.Fatal(err)
			}
			d.sup.Close()
			if launched {
				if _, err := d.shims.Launch(ctx, c.ID, c.Bundle); err != nil {
					t.Fatal(err)
				}
			}
			d.open()
			if got := d.get(c.ID); got.State != StateStopped || got.ShimAddress != "" || d.shims.count() != 0 {
				t.Fatalf("after restart: %+v, %d shims", got, d.shims.count())
			}
			if got, err := d.sup.Start(ctx, c.ID); err != nil || got.State != StateRunning {
				t.Fatalf("start: %+v, %v", got, err)
			}
		})
	}
}

// TestRefusedCreateKeepsTheSpare: a request refused before anything is
// made (here a bind of a host path that does not exist) leaves the spare
// shim for the next create; a create that fails later uses it up.
func TestRefusedCreateKeepsTheSpare(t *testing.T) {
	d := newFakeDaemon(t)
	d.sup.Close()
	d.cfg.SpareShim = true
	d.open()
	ctx := context.Background()
	spare := func() string {
		deadline := time.Now().Add(5 * time.Second)
		for {
			d.sup.mu.Lock()
			sp := d.sup.spare
			d.sup.mu.Unlock()
			if sp != nil {
				return sp.id
			}
			if time.Now().After(deadline) {
				t.Fatal("no spare")
			}
			time.Sleep(time.Millisecond)
		}
	}
	first := spare()
	req := CreateRequest{Image: "busybox"}
	req.Mounts = []string{"/nonexistent-host-path:/x"}
	if _, err := d.sup.Create(ctx, req); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("create: %v", err)
	}
	if got := spare(); got != first || len(d.shims.live(first)) != 1 {
		t.Fatalf("spare %s replaced by %s after a refused create", first[:12], got[:12])
	}
	c := d.create("uses-the-spare", nil)
	if c.ID != first {
		t.Fatalf("created %s, not with the spare %s", c.ID[:12], first[:12])
	}
}
