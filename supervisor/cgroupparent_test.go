package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/supervisor/oci"
)

// TestCgroupParent: a container's cgroupsPath is Config.CgroupParent/<id>,
// oci.CgroupParent by default; an invalid parent is refused at Open.
func TestCgroupParent(t *testing.T) {
	for _, parent := range []string{"", "/condenser-test/sub"} {
		d := newFakeDaemon(t)
		d.sup.Close()
		d.cfg.CgroupParent = parent
		d.open()
		c := d.create("c", nil)
		b, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var spec specs.Spec
		if err := json.Unmarshal(b, &spec); err != nil {
			t.Fatal(err)
		}
		want := parent
		if want == "" {
			want = oci.CgroupParent
		}
		if spec.Linux == nil || spec.Linux.CgroupsPath != want+"/"+c.ID {
			t.Errorf("parent %q: cgroupsPath %+v, want %s/<id>", parent, spec.Linux, want)
		}
	}
	for _, parent := range []string{"relative", "/", "/a/../b", "machine.slice:condenser:x"} {
		cfg := Config{Root: t.TempDir(), State: t.TempDir(), Images: fakeImages{}, Rootfs: &fakeRootfs{prepared: map[string]bool{}}, Shims: newFakeShims(), CgroupParent: parent}
		if s, err := Open(context.Background(), cfg); !errors.Is(err, errdefs.ErrInvalidArgument) {
			if err == nil {
				s.Close()
			}
			t.Errorf("Open with cgroup parent %q: %v, want an error wrapping ErrInvalidArgument", parent, err)
		}
	}
}
