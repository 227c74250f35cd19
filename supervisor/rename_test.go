package supervisor

import (
	"context"
	"errors"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

func TestRename(t *testing.T) {
	ctx := context.Background()
	d := newFakeDaemon(t)
	a := d.create("a", nil)
	d.create("b", nil)
	tests := []struct {
		ref, name string
		kind      error // nil: renamed
	}{
		{"a", "b", errdefs.ErrConflict},
		{"a", "a", errdefs.ErrInvalidArgument},
		{"a", "-bad", errdefs.ErrInvalidArgument},
		{"a", "", errdefs.ErrInvalidArgument},
		{"nosuch", "c", errdefs.ErrNotFound},
		{"a", "c", nil},
		{"c", "a", nil}, // the old name is free again
	}
	for _, tt := range tests {
		c, err := d.sup.Rename(ctx, tt.ref, tt.name)
		if tt.kind != nil {
			if !errors.Is(err, tt.kind) {
				t.Fatalf("rename %s → %q: %v, want %v", tt.ref, tt.name, err, tt.kind)
			}
			continue
		}
		if err != nil || c.Name != tt.name {
			t.Fatalf("rename %s → %q: %+v, %v", tt.ref, tt.name, c, err)
		}
		if got := d.get(tt.name); got.ID != a.ID {
			t.Fatalf("%q resolves to %s", tt.name, got.ID)
		}
		if _, err := d.sup.Get(ctx, tt.ref); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("old name %q still resolves: %v", tt.ref, err)
		}
	}
	// The new name survives a daemon restart, and the old one stays free.
	d.restart()
	if got := d.get("a"); got.ID != a.ID {
		t.Fatalf("after restart: %q is %s", "a", got.ID)
	}
	if _, err := d.sup.Get(ctx, "c"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("after restart the old name resolves: %v", err)
	}
	d.create("c", nil)
}
