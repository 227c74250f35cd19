package nat

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// BenchmarkPublish times Publish of one TCP port and the Unpublish that
// follows, alone in the table and with 200 other containers' ports in it
// (Unpublish reads the published chain), and reports the medians.
func BenchmarkPublish(b *testing.B) {
	for _, others := range []int{0, 20, 50, 200} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			checkHost(b)
			n := openNAT(b, Config{})
			ctx := context.Background()
			for i := range others {
				ip := netip.AddrFrom4([4]byte{10, 198, byte(i / 250), byte(i%250 + 1)})
				if err := n.Publish(ctx, fmt.Sprintf("other%d", i), ip, []Port{tcpPort(freePort(b, "tcp"), 80)}); err != nil {
					b.Fatal(err)
				}
			}
			p := []Port{tcpPort(freePort(b, "tcp"), 80)}
			ip := netip.MustParseAddr("10.198.255.1")
			var pub, unpub []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := n.Publish(ctx, "bench", ip, p); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := n.Unpublish(ctx, "bench"); err != nil {
					b.Fatal(err)
				}
				pub, unpub = append(pub, t1.Sub(t0)), append(unpub, time.Since(t1))
			}
			b.ReportMetric(median(pub), "publish-µs")
			b.ReportMetric(median(unpub), "unpublish-µs")
		})
	}
}

// BenchmarkOpen times Open of an existing table (a daemon's start), and
// Close.
func BenchmarkOpen(b *testing.B) {
	checkHost(b)
	n := openNAT(b, Config{})
	cfg := Config{Table: n.table.Name, KeepIPForward: true}
	var d, c []time.Duration
	for b.Loop() {
		t0 := time.Now()
		o, err := Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := o.Close(); err != nil {
			b.Fatal(err)
		}
		d, c = append(d, t1.Sub(t0)), append(c, time.Since(t1))
	}
	b.ReportMetric(median(d), "open-µs")
	b.ReportMetric(median(c), "close-µs")
}

// median in microseconds.
func median(d []time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Microsecond)
}
