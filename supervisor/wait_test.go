package supervisor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
)

// waitResult is what a wait run in the background returned.
type waitResult struct {
	code int
	err  error
}

// awaitAsync registers a wait and runs it in the background; the result
// arrives on the channel. The goroutine ends with the test's context.
func awaitAsync(t *testing.T, d *fakeDaemon, ref string, cond WaitCondition) <-chan waitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	wait, release, err := d.sup.Await(ctx, ref, cond)
	if err != nil {
		t.Fatalf("await %s: %v", cond, err)
	}
	t.Cleanup(release)
	ch := make(chan waitResult, 1)
	go func() {
		code, err := wait(ctx)
		ch <- waitResult{code, err}
	}()
	return ch
}

func pending(t *testing.T, ch <-chan waitResult, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: the wait returned early: %+v", what, r)
	default:
	}
}

func result(t *testing.T, ch <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not return")
	}
	return waitResult{}
}

func TestAwait(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		cond WaitCondition
		// run drives the container (created, "c") after the wait is
		// registered; want is the exit code the wait returns.
		run  func(t *testing.T, d *fakeDaemon, c *Container, ch <-chan waitResult)
		want int
	}{
		{"not-running on a created container returns at once", WaitNotRunning,
			func(t *testing.T, d *fakeDaemon, c *Container, ch <-chan waitResult) {}, 0},
		{"next-exit on a created container waits for its start and exit", WaitNextExit,
			func(t *testing.T, d *fakeDaemon, c *Container, ch <-chan waitResult) {
				pending(t, ch, "before start")
				if _, err := d.sup.Start(ctx, c.ID); err != nil {
					t.Fatal(err)
				}
				pending(t, ch, "after start")
				d.shims.exitContainer(t, c.ID, 3)
			}, 3},
		{"removed waits for the removal", WaitRemoved,
			func(t *testing.T, d *fakeDaemon, c *Container, ch <-chan waitResult) {
				if _, err := d.sup.Start(ctx, c.ID); err != nil {
					t.Fatal(err)
				}
				d.shims.exitContainer(t, c.ID, 7)
				d.await(c.ID, "stopped", inState(StateStopped))
				pending(t, ch, "stopped, not removed")
				if _, err := d.sup.Delete(ctx, c.ID, false); err != nil {
					t.Fatal(err)
				}
			}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			c := d.create("w", nil)
			ch := awaitAsync(t, d, "w", tt.cond)
			tt.run(t, d, c, ch)
			r := result(t, ch)
			if r.err != nil || r.code != tt.want {
				t.Fatalf("wait: %d, %v; want %d", r.code, r.err, tt.want)
			}
		})
	}
}

// A not-running wait on a running container ends with its exit, and an
// auto-removed container's removed wait gets its exit code.
func TestAwaitRunning(t *testing.T) {
	ctx := context.Background()
	d := newFakeDaemon(t)
	c := d.create("r", func(r *CreateRequest) { r.AutoRemove = true })
	if _, err := d.sup.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	notRunning := awaitAsync(t, d, c.ID, WaitNotRunning)
	removed := awaitAsync(t, d, c.ID, WaitRemoved)
	pending(t, notRunning, "running")
	d.shims.exitContainer(t, c.ID, 42)
	for name, ch := range map[string]<-chan waitResult{"not-running": notRunning, "removed": removed} {
		if r := result(t, ch); r.err != nil || r.code != 42 {
			t.Fatalf("%s: %d, %v; want 42", name, r.code, r.err)
		}
	}
	if _, err := d.sup.Get(ctx, c.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("auto-removed container still there: %v", err)
	}
}

func TestAwaitErrors(t *testing.T) {
	d := newFakeDaemon(t)
	d.create("x", nil)
	if _, _, err := d.sup.Await(context.Background(), "nosuch", WaitNotRunning); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown container: %v", err)
	}
	if _, _, err := d.sup.Await(context.Background(), "x", "later"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("unknown condition: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait, release, err := d.sup.Await(ctx, "x", WaitNextExit)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	cancel()
	if _, err := wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}
