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

// TestPrintTableCLIRow checks row 10 (its ratio like any timed row's) and
// that a note lands in the table with as many cells as the header.
func TestPrintTableCLIRow(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range xs {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	tests := []struct {
		name string
		all  []*results
		want []string
	}{
		{
			name: "measured",
			all: []*results{
				{engine: "condenser", cliTrue: ms(30, 40, 50, 60, 200)},
				{engine: "podman-runc", cliTrue: ms(100, 120, 160, 170, 400)},
				{engine: "containerd"},
			},
			want: []string{
				"| 10. docker run --rm true (docker CLI; peers: their CLI), median | ms | 50.0 | 160 | — | 3.20 | — |",
				"| 10. docker run --rm true (docker CLI), p95 | ms | 200 | 400 | — | 2.00 | — |",
			},
		},
		{
			name: "no docker CLI",
			all: []*results{
				{engine: "condenser", notes: []string{"row 10 skipped: no docker | here"}},
				{engine: "podman-runc", cliTrue: ms(100)},
			},
			want: []string{
				"| 10. docker run --rm true (docker CLI; peers: their CLI), median | ms | — | 100 | — |",
				"| note (condenser): row 10 skipped: no docker \\| here | | | | |",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			printTable(&b, tt.all)
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w+"\n") {
					t.Errorf("no line %q in\n%s", w, b.String())
				}
			}
			cells := strings.Count(strings.SplitN(b.String(), "\n", 2)[0], "|")
			for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
				if n := strings.Count(line, "|") - strings.Count(line, "\\|"); n != cells {
					t.Errorf("%d cell separators, header %d: %q", n, cells, line)
				}
			}
		})
	}
}
