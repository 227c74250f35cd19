package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// results are one engine's samples.
type results struct {
	engine              string
	runTrue, runcTrue   []time.Duration
	monitors            []memory
	daemon              memory
	hasDaemon           bool
	seqStarts, conStart []time.Duration
	seqTotal, conTotal  time.Duration
	pulls               []time.Duration
	downloads           []time.Duration // skopeo's download of the same image, after each of Condenser's pulls
	answer, reconnected []time.Duration
	restartNA           bool
	lists               []time.Duration
	listTotal           time.Duration
	execTrue, runcExec  []time.Duration
	terminalShim        memory
	hasTerminalShim     bool
	netTrue, noNetTrue  []time.Duration
	scale               *scaleResults   // rows 9; nil without -scale
	cliTrue             []time.Duration // row 10
	// notes are printed under the table's rows, e.g. a row skipped for
	// want of a CLI.
	notes []string
}

// row is one line of the table: a value per engine (ok false: none).
type row struct {
	label string
	unit  string
	value func(r *results) (v float64, ok bool)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b int64) float64        { return float64(b) / (1 << 20) }

// durations is a row of a quantile of a sample, in ms.
func durations(label string, q float64, sample func(r *results) []time.Duration) row {
	return row{label, "ms", func(r *results) (float64, bool) {
		s := sample(r)
		return ms(quantile(s, q)), len(s) > 0
	}}
}

func memories(label string, get func(m memory) int64) row {
	return row{label, "MiB", func(r *results) (float64, bool) {
		xs := make([]int64, len(r.monitors))
		for i, m := range r.monitors {
			xs[i] = get(m)
		}
		return mib(quantile(xs, 0.5)), len(xs) > 0
	}}
}

func rows() []row {
	return []row{
		durations("1. run `true`, create→exit, median", 0.5, func(r *results) []time.Duration { return r.runTrue }),
		durations("1. run `true`, p95", 0.95, func(r *results) []time.Duration { return r.runTrue }),
		durations("1. bare `runc run` of the same bundle, median", 0.5, func(r *results) []time.Duration { return r.runcTrue }),
		durations("1. bare `runc run`, p95", 0.95, func(r *results) []time.Duration { return r.runcTrue }),
		{"1. run `true` ÷ bare runc (medians)", "×", func(r *results) (float64, bool) {
			return ms(quantile(r.runTrue, 0.5)) / ms(quantile(r.runcTrue, 0.5)), len(r.runcTrue) > 0
		}},
		memories("2. monitor per idle container, RSS median", func(m memory) int64 { return m.rss }),
		memories("2. monitor per idle container, PSS median", func(m memory) int64 { return m.pss }),
		{"2. daemon RSS (Condenser: with its spare shim)", "MiB", func(r *results) (float64, bool) { return mib(r.daemon.rss), r.hasDaemon }},
		{"3. containers started one after another, total", "s", func(r *results) (float64, bool) {
			return r.seqTotal.Seconds(), r.seqTotal > 0
		}},
		durations("3. one after another, per start median", 0.5, func(r *results) []time.Duration { return r.seqStarts }),
		durations("3. one after another, per start p95", 0.95, func(r *results) []time.Duration { return r.seqStarts }),
		{"3. containers started by concurrent clients, total", "s", func(r *results) (float64, bool) {
			return r.conTotal.Seconds(), r.conTotal > 0
		}},
		durations("3. concurrent, per start median", 0.5, func(r *results) []time.Duration { return r.conStart }),
		durations("3. concurrent, per start p95", 0.95, func(r *results) []time.Duration { return r.conStart }),
		durations("4. cold pull + unpack, median", 0.5, func(r *results) []time.Duration { return r.pulls }),
		durations("4. cold pull + unpack, p95", 0.95, func(r *results) []time.Duration { return r.pulls }),
		durations("4. skopeo copy of the same image (download only), median", 0.5, func(r *results) []time.Duration { return r.downloads }),
		{"4. cold pull + unpack ÷ download only (medians)", "×", func(r *results) (float64, bool) {
			return ms(quantile(r.pulls, 0.5)) / ms(quantile(r.downloads, 0.5)), len(r.downloads) > 0
		}},
		durations("5. daemon restart: API answers, median", 0.5, func(r *results) []time.Duration { return r.answer }),
		durations("5. daemon restart: all reconnected, median", 0.5, func(r *results) []time.Duration { return r.reconnected }),
		durations("5. daemon restart: all reconnected, p95", 0.95, func(r *results) []time.Duration { return r.reconnected }),
		{"6. list containers under load, requests/s", "1/s", func(r *results) (float64, bool) {
			return float64(len(r.lists)) / r.listTotal.Seconds(), len(r.lists) > 0
		}},
		durations("6. list containers under load, median", 0.5, func(r *results) []time.Duration { return r.lists }),
		durations("6. list containers under load, p99", 0.99, func(r *results) []time.Duration { return r.lists }),
		durations("7. exec `true` in a running container, median", 0.5, func(r *results) []time.Duration { return r.execTrue }),
		durations("7. exec `true`, p95", 0.95, func(r *results) []time.Duration { return r.execTrue }),
		durations("7. bare `runc exec` of the same container, median", 0.5, func(r *results) []time.Duration { return r.runcExec }),
		{"7. exec `true` ÷ bare runc exec (medians)", "×", func(r *results) (float64, bool) {
			return ms(quantile(r.execTrue, 0.5)) / ms(quantile(r.runcExec, 0.5)), len(r.runcExec) > 0
		}},
		{"7. shim with a terminal and a client attached, RSS", "MiB", func(r *results) (float64, bool) { return mib(r.terminalShim.rss), r.hasTerminalShim }},
		{"7. shim with a terminal and a client attached, PSS", "MiB", func(r *results) (float64, bool) { return mib(r.terminalShim.pss), r.hasTerminalShim }},
		durations("8. run `true` on a bridge network (veth, address, NAT), median", 0.5, func(r *results) []time.Duration { return r.netTrue }),
		durations("8. run `true` with no network, alternating, median", 0.5, func(r *results) []time.Duration { return r.noNetTrue }),
		{"8. bridge network ÷ no network (medians)", "×", func(r *results) (float64, bool) {
			return ms(quantile(r.netTrue, 0.5)) / ms(quantile(r.noNetTrue, 0.5)), len(r.noNetTrue) > 0
		}},
	}
}

// scaleRows are rows 9: -scale containers running at once.
func scaleRows() []row {
	scale := func(label, unit string, v func(s *scaleResults) float64) row {
		return row{label, unit, func(r *results) (float64, bool) {
			if r.scale == nil || r.scale.n == 0 {
				return 0, false
			}
			return v(r.scale), true
		}}
	}
	perContainer := func(label string, get func(s *scaleResults) int64) row {
		return scale(label, "MiB", func(s *scaleResults) float64 { return mib(get(s)) / float64(s.n) })
	}
	starts := func(label string, q float64, last bool) row {
		return row{label, "ms", func(r *results) (float64, bool) {
			if r.scale == nil || len(r.scale.starts) == 0 {
				return 0, false
			}
			st := r.scale.starts
			if k := min(100, len(st)); last {
				st = st[len(st)-k:]
			} else {
				st = st[:k]
			}
			return ms(quantile(st, q)), true
		}}
	}
	sample := func(label string, q float64, get func(s *scaleResults) []time.Duration) row {
		return row{label, "ms", func(r *results) (float64, bool) {
			if r.scale == nil || len(get(r.scale)) == 0 {
				return 0, false
			}
			return ms(quantile(get(r.scale), q)), true
		}}
	}
	return []row{
		scale("9. containers running at once (-scale; fewer: as many as the engine reached)", "", func(s *scaleResults) float64 { return float64(s.n) }),
		scale("9. started one after another, total", "s", func(s *scaleResults) float64 { return s.total.Seconds() }),
		starts("9. per start, first 100, median", 0.5, false),
		starts("9. per start, first 100, p95", 0.95, false),
		starts("9. per start, last 100, median", 0.5, true),
		starts("9. per start, last 100, p95", 0.95, true),
		perContainer("9. memory per container in all (host's MemTotal−MemAvailable growth)", func(s *scaleResults) int64 { return s.hostUsed }),
		perContainer("9. … monitors' PSS", func(s *scaleResults) int64 { return s.monitorPSS }),
		perContainer("9. … containers' cgroups (memory.usage_in_bytes)", func(s *scaleResults) int64 { return s.cgroup }),
		perContainer("9. … kernel (slab, page tables, stacks) growth", func(s *scaleResults) int64 { return s.kernel }),
		perContainer("9. … daemon RSS growth", func(s *scaleResults) int64 { return s.daemon - s.daemonBefore }),
		{"9. daemon RSS, all running", "MiB", func(r *results) (float64, bool) {
			if r.scale == nil || r.scale.daemon == 0 {
				return 0, false
			}
			return mib(r.scale.daemon), true
		}},
		{"9. list them under load, requests/s", "1/s", func(r *results) (float64, bool) {
			if r.scale == nil || len(r.scale.lists) == 0 {
				return 0, false
			}
			return float64(len(r.scale.lists)) / r.scale.listTotal.Seconds(), true
		}},
		sample("9. list them under load, median", 0.5, func(s *scaleResults) []time.Duration { return s.lists }),
		sample("9. list them under load, p99", 0.99, func(s *scaleResults) []time.Duration { return s.lists }),
		sample("9. daemon kill -9: API answers, median", 0.5, func(s *scaleResults) []time.Duration { return s.answer }),
		sample("9. daemon kill -9: all reconnected, median", 0.5, func(s *scaleResults) []time.Duration { return s.reconnected }),
		scale("9. stop and remove them all, total", "s", func(s *scaleResults) float64 { return s.remove.Seconds() }),
	}
}

// cliRows are rows 10: `run --rm busybox true` with the engine's CLI,
// the whole invocation (Condenser: the docker CLI on its Docker API).
func cliRows() []row {
	cli := func(r *results) []time.Duration { return r.cliTrue }
	return []row{
		durations("10. docker run --rm true (docker CLI; peers: their CLI), median", 0.5, cli),
		durations("10. docker run --rm true (docker CLI), p95", 0.95, cli),
	}
}

// printTable writes a Markdown table: a column per engine and, for each
// other engine, its ratio to the first — except on rows that are ratios
// themselves (unit ×), where a ratio of ratios would read as a
// comparison it is not.
func printTable(w io.Writer, all []*results) {
	rs := rows()
	if slices.ContainsFunc(all, func(r *results) bool { return r.scale != nil }) {
		rs = append(rs, scaleRows()...)
	}
	printRows(w, all, append(rs, cliRows()...))
	printNotes(w, all)
}

// printNotes writes each engine's notes as rows of the table (the Makefile
// keeps only the table's lines), the note in the first cell.
func printNotes(w io.Writer, all []*results) {
	empty := strings.Repeat(" |", 2*len(all)) // unit, engines, ratios
	for _, r := range all {
		for _, n := range r.notes {
			fmt.Fprintf(w, "| note (%s): %s |%s\n", r.engine, strings.ReplaceAll(n, "|", "\\|"), empty)
		}
	}
}

// printRows is printTable with the rows given.
func printRows(w io.Writer, all []*results, rs []row) {
	head := []string{"workload", "unit"}
	for _, r := range all {
		head = append(head, r.engine)
	}
	for _, r := range all[1:] {
		head = append(head, r.engine+" ÷ "+all[0].engine)
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, rw := range rs {
		cells := []string{rw.label, rw.unit}
		base, baseOK := rw.value(all[0])
		for _, r := range all {
			cells = append(cells, cell(rw.value(r)))
		}
		for _, r := range all[1:] {
			v, ok := rw.value(r)
			cells = append(cells, cell(v/base, ok && baseOK && base != 0 && rw.unit != "×"))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

func cell(v float64, ok bool) string {
	switch {
	case !ok:
		return "—"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
