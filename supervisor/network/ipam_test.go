package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

func testPool(t *testing.T, subnet, gw string) pool {
	return pool{dir: filepath.Join(t.TempDir(), "ipam", "net"), subnet: netip.MustParsePrefix(subnet), gateway: netip.MustParseAddr(gw)}
}

func TestPoolAllocate(t *testing.T) {
	for _, c := range []struct {
		name, subnet, gw string
		taken            []string // before
		want             string   // "" → exhausted
	}{
		{"raind0 from .1", "10.166.0.0/24", "10.166.0.254", nil, "10.166.0.1"},
		{"user network skips the gateway .1", "10.167.0.0/24", "10.167.0.1", nil, "10.167.0.2"},
		{"lowest free", "10.166.0.0/24", "10.166.0.254", []string{"10.166.0.1", "10.166.0.3"}, "10.166.0.2"},
		{"after the taken", "10.166.0.0/24", "10.166.0.254", []string{"10.166.0.1", "10.166.0.2"}, "10.166.0.3"},
		{"never the broadcast", "10.166.0.0/30", "10.166.0.1", []string{"10.166.0.2"}, ""},
		{"never the gateway", "10.166.0.0/30", "10.166.0.2", []string{"10.166.0.1"}, ""},
		{"a /30 has one", "10.166.0.0/30", "10.166.0.1", nil, "10.166.0.2"},
		{"crosses an octet", "10.1.0.0/16", "10.1.0.1", []string{"10.1.0.255"}, "10.1.0.2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := testPool(t, c.subnet, c.gw)
			for _, a := range c.taken {
				if err := p.claim(netip.MustParseAddr(a), names.NewID()); err != nil {
					t.Fatal(err)
				}
			}
			id := names.NewID()
			got, err := p.allocate(id)
			if c.want == "" {
				if !errors.Is(err, errdefs.ErrResourceExhausted) {
					t.Fatalf("allocate = %v, %v; want resource exhausted", got, err)
				}
				return
			}
			if err != nil || got.String() != c.want {
				t.Fatalf("allocate = %v, %v; want %s", got, err, c.want)
			}
			if b, err := os.ReadFile(filepath.Join(p.dir, c.want)); err != nil || string(b) != id {
				t.Errorf("the address's file holds %q, %v; want the id", b, err)
			}
		})
	}
}

func TestPoolExhaustionAndRelease(t *testing.T) {
	p := testPool(t, "10.166.0.0/28", "10.166.0.14") // 13 for containers
	ids := map[netip.Addr]string{}
	for i := range 13 {
		id := names.NewID()
		a, err := p.allocate(id)
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		ids[a] = id
	}
	if a, err := p.allocate(names.NewID()); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("the 14th allocation = %v, %v; want resource exhausted", a, err)
	}
	five := netip.MustParseAddr("10.166.0.5")
	// Only the holder frees an address.
	if err := p.release(five, names.NewID()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.allocate(names.NewID()); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("a release by another id freed the address: %v", err)
	}
	if err := p.release(five, ids[five]); err != nil {
		t.Fatal(err)
	}
	if err := p.release(five, ids[five]); err != nil { // again: nothing
		t.Fatal(err)
	}
	if a, err := p.allocate(names.NewID()); err != nil || a != five {
		t.Fatalf("after a release: %v, %v; want %s", a, err, five)
	}
	if ents, _ := os.ReadDir(p.dir); len(ents) != 13 {
		t.Errorf("%d files, want 13 (temporary files left?)", len(ents))
	}
}

func TestPoolConcurrent(t *testing.T) {
	p := testPool(t, "10.166.0.0/24", "10.166.0.254")
	const n = 120
	var wg sync.WaitGroup
	got := make([]netip.Addr, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			// A pool value per goroutine, as two processes would have.
			q := pool{dir: p.dir, subnet: p.subnet, gateway: p.gateway}
			got[i], errs[i] = q.allocate(fmt.Sprintf("id-%d", i))
		})
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, a := range got {
		if errs[i] != nil {
			t.Fatalf("allocation %d: %v", i, errs[i])
		}
		if j, dup := seen[a]; dup {
			t.Fatalf("allocations %d and %d both got %s", j, i, a)
		}
		seen[a] = i
	}
	used, err := p.list()
	if err != nil || len(used) != n {
		t.Fatalf("list: %d, %v", len(used), err)
	}
	for a, id := range used {
		if want := fmt.Sprintf("id-%d", seen[a]); id != want {
			t.Errorf("%s is held by %q, given to %q", a, id, want)
		}
	}
	// The lowest n addresses, none other.
	for a := range used {
		if a.As4()[3] > n {
			t.Errorf("%s handed out while lower ones were free", a)
		}
	}
}

func TestPoolSweep(t *testing.T) {
	p := testPool(t, "10.166.0.0/24", "10.166.0.254")
	keep, drop := names.NewID(), names.NewID()
	a1, _ := p.allocate(keep)
	a2, _ := p.allocate(drop)
	tmp, err := p.temp("half")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(p.dir, "junk"), nil, 0o600)
	n, err := p.sweep(func(a netip.Addr, id string) bool { return id == keep })
	if err != nil || n != 3 {
		t.Fatalf("sweep = %d, %v; want 3 removed", n, err)
	}
	used, _ := p.list()
	if len(used) != 1 || used[a1] != keep {
		t.Errorf("after the sweep: %v (dropped %s)", used, a2)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the temporary file stayed: %v", err)
	}
}
