package supervisor

import (
	"context"
	"sync"
	"testing"
	"time"
)

// dialingShims are fake shims that count the dials of each address.
type dialingShims struct {
	*fakeShims
	mu    sync.Mutex
	dials map[string]int
}

func (d *dialingShims) Dial(ctx context.Context, addr string) (Shim, error) {
	d.mu.Lock()
	d.dials[addr]++
	d.mu.Unlock()
	return d.fakeShims.Dial(ctx, addr)
}

func (d *dialingShims) dialed(addr string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials[addr]
}

// TestSpareConnectedAhead: a spare shim is dialled and asked who it is
// when it is launched, not by the create that takes it (a millisecond off
// every create); the container runs through that connection, and its
// record has the shim's pid from the start.
func TestSpareConnectedAhead(t *testing.T) {
	ds := &dialingShims{fakeShims: newFakeShims(), dials: map[string]int{}}
	d := &fakeDaemon{t: t, shims: ds.fakeShims, rootfs: &fakeRootfs{prepared: map[string]bool{}}}
	d.cfg = Config{Root: t.TempDir(), State: t.TempDir(), Images: fakeImages{}, Rootfs: d.rootfs, Shims: ds, StopTimeout: time.Second, SpareShim: true}
	d.open()
	t.Cleanup(func() { d.sup.Close() })
	deadline := time.Now().Add(5 * time.Second)
	for SpareID(d.sup) == "" {
		if time.Now().After(deadline) {
			t.Fatal("no spare shim")
		}
		time.Sleep(time.Millisecond)
	}
	spare := SpareID(d.sup)
	addr := ds.Address(spare, "")
	if n := ds.dialed(addr); n != 1 {
		t.Fatalf("the spare was dialled %d times before any create, want once", n)
	}
	c := d.create("a", nil)
	if c.ID != spare {
		t.Fatalf("created %s, not with the spare %s", c.ID[:12], spare[:12])
	}
	if n := ds.dialed(addr); n != 1 {
		t.Errorf("the create dialled the spare's shim again (%d dials)", n)
	}
	if c.ShimPid == 0 || d.get(c.ID).ShimPid != c.ShimPid {
		t.Errorf("shim pid %d, recorded %d", c.ShimPid, d.get(c.ID).ShimPid)
	}
	if _, err := d.sup.Start(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	ds.exitContainer(t, c.ID, 3)
	if code, err := d.sup.Wait(context.Background(), c.ID); err != nil || code != 3 {
		t.Fatalf("wait: %d, %v", code, err)
	}
}
