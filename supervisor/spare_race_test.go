package supervisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/raind/condenser/internal/errdefs"
)

// gatedShims are fake shims whose spares' launches wait for the test: each
// announces itself on launching and goes on when the test sends on gate.
// A container's own launch (its bundle has a config.json) does not wait.
type gatedShims struct {
	*fakeShims
	launching chan string
	gate      chan struct{}
}

func (g *gatedShims) Launch(ctx context.Context, id, bundle string) (string, error) {
	if _, err := os.Stat(filepath.Join(bundle, "config.json")); err == nil {
		return g.fakeShims.Launch(ctx, id, bundle)
	}
	g.launching <- id
	<-g.gate
	return g.fakeShims.Launch(ctx, id, bundle)
}

// TestSpareGivenBackWhileAnotherIsLaunched: a create refused for its name
// gives back the spare it took (returnSpare) while the next spare is being
// launched for a create that went through meanwhile. There is one spare
// afterwards: the other shim goes, it is not left running with no
// container (found by the two-name chaos test: a second "spare" nobody
// knew of, until the next daemon start swept it).
func TestSpareGivenBackWhileAnotherIsLaunched(t *testing.T) {
	g := &gatedShims{fakeShims: newFakeShims(), launching: make(chan string, 4), gate: make(chan struct{})}
	d := &fakeDaemon{t: t, shims: g.fakeShims, rootfs: &fakeRootfs{prepared: map[string]bool{}}}
	d.cfg = Config{Root: t.TempDir(), State: t.TempDir(), Images: fakeImages{}, Rootfs: d.rootfs, Shims: g, StopTimeout: time.Second, SpareShim: true}
	d.open()
	t.Cleanup(func() {
		close(g.gate) // every launch still waiting goes on
		d.sup.Close()
	})
	launch := func() string { // lets the next launch go on
		t.Helper()
		select {
		case id := <-g.launching:
			g.gate <- struct{}{}
			return id
		case <-time.After(5 * time.Second):
			t.Fatal("no spare launched")
			return ""
		}
	}
	awaitSpare := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for SpareID(d.sup) != want {
			if time.Now().After(deadline) {
				t.Fatalf("spare %q, want %q", SpareID(d.sup), want)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// The spare at start, taken by "a"; the next one, s2.
	awaitSpare(launch())
	d.create("a", nil)
	s2 := launch()
	awaitSpare(s2)

	// A create refused for its name takes s2 and is held (by s2's lock)
	// before it gives it back.
	unlock := d.sup.lock(s2)
	refused := make(chan error, 1)
	go func() {
		_, err := d.sup.Create(context.Background(), CreateRequest{Image: "busybox", Name: "a"})
		refused <- err
	}()
	awaitSpare("")
	// Meanwhile "b" is created without a spare, and the next spare's
	// launch begins.
	d.create("b", nil)
	var s3 string
	select {
	case s3 = <-g.launching:
	case <-time.After(5 * time.Second):
		t.Fatal("no spare launched after the create")
	}
	// s2 is given back while s3 is being launched.
	unlock()
	if err := <-refused; !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("create of a second \"a\": %v, want a conflict", err)
	}
	awaitSpare(s2)
	g.gate <- struct{}{} // s3's launch ends
	deadline := time.Now().Add(5 * time.Second)
	for filling := true; filling; {
		d.sup.mu.Lock()
		filling = d.sup.spareFilled != nil
		d.sup.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the spare's launch does not end")
		}
		time.Sleep(time.Millisecond)
	}

	// One spare: the shims are a's, b's and it.
	for {
		spare := SpareID(d.sup)
		n := d.shims.count()
		if n == 3 && (spare == s2 || spare == s3) && len(d.shims.live(spare)) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shims (s2 alive: %v, s3 alive: %v), spare %.12s; want 3: a's, b's and one spare",
				n, len(d.shims.live(s2)) > 0, len(d.shims.live(s3)) > 0, spare)
		}
		time.Sleep(time.Millisecond)
	}
}
