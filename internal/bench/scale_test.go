package bench

import (
	"strings"
	"testing"
	"time"
)

// TestScaleRows checks rows 9: the first and the last 100 starts, the
// memory per container, and that they are left out when nothing ran them.
func TestScaleRows(t *testing.T) {
	s := &scaleResults{n: 250, total: 9 * time.Second, monitorPSS: 250 << 20, daemon: 60 << 20, daemonBefore: 35 << 20}
	for i := range 250 {
		d := 20 * time.Millisecond
		switch {
		case i < 100:
			d = 10 * time.Millisecond
		case i >= 150:
			d = 30 * time.Millisecond
		}
		s.starts = append(s.starts, d)
	}
	var b strings.Builder
	printTable(&b, []*results{{engine: "condenser", scale: s}, {engine: "podman-runc"}})
	for _, w := range []string{
		"| 9. containers running at once (-scale; fewer: as many as the engine reached) |  | 250 | — | — |",
		"| 9. per start, first 100, median | ms | 10.0 | — | — |",
		"| 9. per start, last 100, p95 | ms | 30.0 | — | — |",
		"| 9. … monitors' PSS | MiB | 1.00 | — | — |",
		"| 9. … daemon RSS growth | MiB | 0.10 | — | — |",
		"| 9. daemon kill -9: API answers, median | ms | — | — | — |",
	} {
		if !strings.Contains(b.String(), w+"\n") {
			t.Errorf("no line %q in\n%s", w, b.String())
		}
	}
	b.Reset()
	printTable(&b, []*results{{engine: "condenser"}})
	if strings.Contains(b.String(), "| 9.") {
		t.Errorf("rows 9 without -scale:\n%s", b.String())
	}
}
