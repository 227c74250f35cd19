package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/testutil"
)

var (
	abFlag       = flag.String("ab", "", "BenchmarkAB: comma-separated directories of builds (condenser, condenser-shim) to compare on row 1; relative ones are taken from the package directory, where go test runs")
	abRoundsFlag = flag.Int("ab-rounds", 3, "BenchmarkAB: rounds; each runs every build once, one after the other")
)

// BenchmarkAB compares builds on row 1 (`true` create→exit, alternating
// with bare `runc run` of the same bundle): each round runs every build's
// daemon alone, one after the other, -runs times, and prints each one's
// median, bare runc's and their ratio. One daemon at a time: some of the
// start path's costs are the kernel's and global (a cgroup move warmed by
// one daemon is warm for another), so builds must not run side by side.
//
//	go test -run '^$' -bench BenchmarkAB -benchtime 1x ./internal/bench -args -ab /tmp/old/bin,$PWD/bin -runs 100
func BenchmarkAB(b *testing.B) {
	var bins []string
	for _, d := range strings.Split(*abFlag, ",") {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			b.Fatal(err)
		}
		bins = append(bins, abs)
	}
	if len(bins) < 2 {
		b.Skip("-ab names fewer than two builds")
	}
	testutil.RequireRoot(b)
	testutil.RequireBinary(b, "runc")
	reg := testutil.StartRegistry(b)
	img := Images{Registry: reg.Host, Small: reg.Ref("library/busybox:latest")}
	reg.Push(b, img.Small, testutil.BusyboxImage(b))
	// The daemons' own bridge and NAT table, removed afterwards: the
	// host's are never touched.
	net := testutil.Network(b).Args()
	fmt.Fprintln(os.Stdout, "| round | build | run `true`, median ms | bare `runc run`, median ms | ratio |")
	fmt.Fprintln(os.Stdout, "|---|---|---|---|---|")
	for round := range *abRoundsFlag {
		for _, bin := range bins {
			r, err := setUpAndMeasure(b, NewCondenser(bin, net...), img, func(ctx context.Context, _ *testing.B, e Engine, img Images, dir string) (*results, error) {
				if err := e.Pull(ctx, img.Small); err != nil {
					return nil, err
				}
				r := &results{engine: e.Name()}
				return r, runTrue(ctx, e, r, filepath.Join(dir, "bare"))
			})
			if err != nil {
				b.Fatalf("%s: %v", bin, err)
			}
			m, bare := quantile(r.runTrue, 0.5), quantile(r.runcTrue, 0.5)
			fmt.Fprintf(os.Stdout, "| %d | %s | %.1f | %.1f | %.3f |\n", round+1, bin, ms(m), ms(bare), float64(m)/float64(bare))
		}
	}
}
