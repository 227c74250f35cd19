package bench

import (
	"strings"
	"testing"
	"time"
)

// TestPrintTableRatios checks the ratio columns: a peer's value over
// Condenser's, and none on rows that are ratios themselves.
func TestPrintTableRatios(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range xs {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	all := []*results{
		{engine: "condenser", netTrue: ms(40, 50, 60), noNetTrue: ms(40, 50, 60)},
		{engine: "podman-runc", netTrue: ms(300, 400, 500), noNetTrue: ms(100, 200, 300)},
	}
	var b strings.Builder
	printTable(&b, all)
	want := []string{
		"| 8. run `true` on a bridge network (veth, address, NAT), median | ms | 50.0 | 400 | 8.00 |",
		"| 8. run `true` with no network, alternating, median | ms | 50.0 | 200 | 4.00 |",
		"| 8. bridge network ÷ no network (medians) | × | 1.00 | 2.00 | — |",
		"| 1. run `true`, create→exit, median | ms | — | — | — |",
	}
	for _, w := range want {
		if !strings.Contains(b.String(), w+"\n") {
			t.Errorf("no line %q in\n%s", w, b.String())
		}
	}
}
