package network

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/names"
)

// BenchmarkAttachDetach attaches and detaches a container on the default
// network (a test bridge), and reports the median of each: with the state
// on a tmpfs (as /run/condenser is on a usual host; /dev/shm here) and on
// the disk (t.TempDir, where the records' fsync costs).
func BenchmarkAttachDetach(b *testing.B) {
	for _, c := range []struct {
		name string
		dir  string
	}{{"tmpfs", "/dev/shm"}, {"disk", ""}} {
		b.Run("state="+c.name, func(b *testing.B) {
			var st unix.Statfs_t
			if c.dir != "" && (unix.Statfs(c.dir, &st) != nil || st.Type != unix.TMPFS_MAGIC) {
				b.Skipf("%s is not a tmpfs", c.dir)
			}
			e := newEnv(b, func(cfg *Config) {
				if c.dir != "" {
					dir, err := os.MkdirTemp(c.dir, "condenser-network-")
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { os.RemoveAll(dir) })
					cfg.State = dir
				}
			})
			ctx := context.Background()
			var attach, detach []time.Duration
			for b.Loop() {
				id := names.NewID()
				t0 := time.Now()
				if _, err := e.m.Attach(ctx, id, AttachRequest{}); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := e.m.Detach(ctx, id); err != nil {
					b.Fatal(err)
				}
				attach, detach = append(attach, t1.Sub(t0)), append(detach, time.Since(t1))
			}
			b.ReportMetric(median(attach), "attach-ms-median")
			b.ReportMetric(median(detach), "detach-ms-median")
			e.waitVethsGone(b)
		})
	}
}

func median(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[len(ds)/2]) / float64(time.Millisecond)
}
