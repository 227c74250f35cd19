package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// numbered is the n-th line of the follow tests.
func numbered(stream string, n int) string { return fmt.Sprintf("%s %06d\n", stream, n) }

// collector gathers followed entries and counts them.
type collector struct {
	mu  sync.Mutex
	got []Entry
	n   atomic.Int64
}

func (c *collector) add(e Entry) error {
	c.mu.Lock()
	c.got = append(c.got, e)
	c.mu.Unlock()
	c.n.Add(1)
	return nil
}

// checkSequence checks that es are exactly stream lines from..to-1.
func checkSequence(t *testing.T, es []Entry, stream string, from, to int) {
	t.Helper()
	want := from
	for _, e := range es {
		if e.Stream != stream {
			continue
		}
		if e.Log != numbered(stream, want) {
			t.Fatalf("%s: got %q, want %q (every line once, in order)", stream, e.Log, numbered(stream, want))
		}
		want++
	}
	if want != to {
		t.Fatalf("%s: got lines %d..%d, want up to %d", stream, from, want-1, to-1)
	}
}

// A follower started before the writer sees every line exactly once and
// in order while the writer rotates many times, several times between two
// polls, and returns once the writer stopped and everything was read.
//
// The writer stays at most window lines ahead of the follower, which
// bounds how many files are created after the one being read: fewer than
// maxFiles, so none of them is deleted before the follower opens it.
// Docker's follower has the same bound (a reader more than MaxFiles-1
// rotations behind loses the files deleted in between).
func TestFollowRotationsPaced(t *testing.T) {
	for _, tail := range []int{-1, 0, 3} {
		t.Run(fmt.Sprintf("tail=%d", tail), func(t *testing.T) {
			const (
				maxSize  = 1024
				maxFiles = 4
				lines    = 1500 // about 14 lines a file: > 100 rotations
				batch    = 5
				// An entry is at most ~70 bytes, so a file holds >= 14
				// lines: window lines span at most 3 files after the one
				// being read, fewer than maxFiles.
				window = 25
			)
			w, path := newWriter(t, Options{MaxSize: maxSize, MaxFiles: maxFiles})
			// Lines written before the follower starts: the tail of them.
			pre := 20
			for i := range pre {
				w.Copy("stdout", strings.NewReader(numbered("stdout", i)))
			}
			var c collector
			var stopped atomic.Bool
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- Follow(ctx, path, ReadOptions{MaxFiles: maxFiles, Tail: tail, Interval: 2 * time.Millisecond},
					func() bool { return !stopped.Load() }, c.add)
			}()
			first := 0 // the first line the follower must see
			switch {
			case tail == 0:
				first = pre
			case tail > 0:
				first = pre - tail
			}
			// Wait for the snapshot before writing more (its content is checked).
			for c.n.Load() < int64(pre-first) {
				time.Sleep(100 * time.Microsecond)
			}
			if tail == 0 {
				time.Sleep(20 * time.Millisecond) // let Follow take its snapshot
			}
			for i := pre; i < lines; i += batch {
				for start := time.Now(); int64(i-first)-c.n.Load() > window-batch; {
					if time.Since(start) > 10*time.Second {
						t.Fatalf("follower stuck at %d lines (written %d)", c.n.Load(), i-first)
					}
					time.Sleep(50 * time.Microsecond)
				}
				var sb strings.Builder
				for j := i; j < min(i+batch, lines); j++ {
					sb.WriteString(numbered("stdout", j))
				}
				if err := w.Copy("stdout", strings.NewReader(sb.String())); err != nil {
					t.Error(err)
				}
			}
			stopped.Store(true) // right after the last write: must still be read
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if ctx.Err() != nil {
				t.Fatal("Follow returned only at the timeout")
			}
			checkSequence(t, c.got, "stdout", first, lines)
		})
	}
}

// Two streams written as fast as they go, rotating every few lines, with a
// follower polling every 10 ms (many rotations between two polls):
// maxFiles is large enough that no file is deleted during the test, so the
// follower must see exactly the files' content, in order.
//
// With readerFiles 3 the follower is told fewer files than the writer
// keeps: it still finds its file among the rotated ones.
func TestFollowRotationsFreeRunning(t *testing.T) {
	for _, readerFiles := range []int{400, 3} {
		t.Run(fmt.Sprintf("reader files=%d", readerFiles), func(t *testing.T) { testFollowFreeRunning(t, readerFiles) })
	}
}

func testFollowFreeRunning(t *testing.T, readerFiles int) {
	const (
		maxSize  = 4096
		maxFiles = 400
		lines    = 3000 // per stream; ~160 rotations
	)
	w, path := newWriter(t, Options{MaxSize: maxSize, MaxFiles: maxFiles})
	var c collector
	var stopped atomic.Bool
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	copy10 := func(s string, i int) {
		var sb strings.Builder
		for j := i; j < i+10; j++ {
			sb.WriteString(numbered(s, j))
		}
		if err := w.Copy(s, strings.NewReader(sb.String())); err != nil {
			t.Error(err)
		}
	}
	// The follower reads the first lines before the writers go on: one
	// that opened the log later (a goroutine scheduled late, on a loaded
	// machine) would rightly begin past the lines rotated out of the
	// readerFiles files it reads.
	copy10("stdout", 0)
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, path, ReadOptions{MaxFiles: readerFiles, Tail: -1, Interval: 10 * time.Millisecond},
			func() bool { return !stopped.Load() }, c.add)
	}()
	for c.n.Load() < 10 {
		if ctx.Err() != nil {
			t.Fatal("the follower reads nothing")
		}
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	for _, s := range []string{"stdout", "stderr"} {
		wg.Go(func() {
			for i := map[string]int{"stdout": 10}[s]; i < lines; i += 10 {
				copy10(s, i)
			}
		})
	}
	wg.Wait()
	stopped.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkSequence(t, c.got, "stdout", 0, lines)
	checkSequence(t, c.got, "stderr", 0, lines)
	all := readAll(t, path, maxFiles)
	if len(all) != len(c.got) {
		t.Fatalf("followed %d entries, the files hold %d", len(c.got), len(all))
	}
	for i := range all {
		if all[i].Entry != c.got[i] {
			t.Fatalf("entry %d: followed %+v, file has %+v", i, c.got[i], all[i].Entry)
		}
	}
	if names, _ := filepath.Glob(path + ".*"); len(names) < 50 {
		t.Fatalf("only %d rotations", len(names))
	}
}

// The last N entries and the follow hand over at an exact position, while
// the writer writes and rotates: the lines received are consecutive.
func TestFollowTailHandover(t *testing.T) {
	for _, tail := range []int{1, 10, 100} { // 100 spans rotated files
		t.Run(fmt.Sprintf("tail=%d", tail), func(t *testing.T) {
			w, path := newWriter(t, Options{MaxSize: 2048, MaxFiles: 50})
			var written atomic.Int64
			stop := make(chan struct{})
			writerDone := make(chan struct{})
			go func() {
				defer close(writerDone)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if err := w.Copy("stdout", strings.NewReader(numbered("stdout", i))); err != nil {
						t.Error(err)
						return
					}
					written.Store(int64(i + 1))
				}
			}()
			for written.Load() < 500 {
				time.Sleep(100 * time.Microsecond)
			}
			var c collector
			var stopped atomic.Bool
			done := make(chan error, 1)
			go func() {
				done <- Follow(context.Background(), path, ReadOptions{MaxFiles: 50, Tail: tail, Interval: 5 * time.Millisecond},
					func() bool { return !stopped.Load() }, c.add)
			}()
			for c.n.Load() < int64(tail)+200 {
				time.Sleep(100 * time.Microsecond)
			}
			close(stop)
			<-writerDone
			stopped.Store(true)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			var first int
			if _, err := fmt.Sscanf(c.got[0].Log, "stdout %d", &first); err != nil {
				t.Fatal(err)
			}
			checkSequence(t, c.got, "stdout", first, int(written.Load()))
		})
	}
}

// A final line without its newline (a write in progress or torn) is
// never sent in part: not by the tail, not by the follow, which sends it
// once its end is written.
func TestTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	line := func(i int) string {
		return fmt.Sprintf(`{"log":"l%d\n","stream":"stdout","time":"2024-01-01T00:00:%02dZ"}`+"\n", i, i)
	}
	// The torn line is a whole JSON object that lacks only its newline.
	torn := strings.TrimSuffix(line(2), "\n")
	if err := os.WriteFile(path, []byte(line(0)+line(1)+torn), 0o640); err != nil {
		t.Fatal(err)
	}
	es, err := ReadLast(path, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := logsOf(es); !equalStrings(got, []string{"l0\n", "l1\n"}) {
		t.Fatalf("ReadLast = %q, want the two complete lines", got)
	}

	var c collector
	var stopped atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- Follow(context.Background(), path, ReadOptions{MaxFiles: 1, Tail: 1, Interval: time.Millisecond},
			func() bool { return !stopped.Load() }, c.add)
	}()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	time.Sleep(20 * time.Millisecond)
	// The rest of the torn line and a next line, a byte at a time.
	for _, b := range []byte("\n" + line(3)) {
		f.Write([]byte{b})
		time.Sleep(200 * time.Microsecond)
	}
	// A new torn line, never completed.
	f.Write([]byte(line(4)[:20]))
	time.Sleep(10 * time.Millisecond)
	stopped.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := logsOf(c.got); !equalStrings(got, []string{"l1\n", "l2\n", "l3\n"}) {
		t.Fatalf("followed %q, want l1 (tail) then l2, l3 each once", got)
	}
}

func logsOf(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Log)
	}
	return out
}

// reference is what a tail must return: every complete line of every
// file, oldest first, parsed, selected, the last n kept.
func reference(t *testing.T, path string, maxFiles int, opts ReadOptions) []Entry {
	t.Helper()
	var all []Entry
	for i := maxFiles - 1; i >= 0; i-- {
		data, err := os.ReadFile(rotated(path, i))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if k := bytes.LastIndexByte(data, '\n'); k >= 0 {
			data = data[:k+1]
		} else {
			data = nil
		}
		for line := range bytes.Lines(data) {
			if len(line) == 1 {
				continue
			}
			var e Entry
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatal(err)
			}
			if opts.keep(&e) {
				all = append(all, e)
			}
		}
	}
	if opts.Tail >= 0 && len(all) > opts.Tail {
		all = all[len(all)-opts.Tail:]
	}
	return all
}

// Read with Tail reads backwards in chunks: lines straddling chunk
// boundaries, lines longer than a chunk, rotated files, torn last lines
// and filters give what a whole read would.
func TestTailTable(t *testing.T) {
	type layout struct {
		name  string
		build func(t *testing.T, path string)
	}
	entry := func(stream string, log string, sec int) string {
		b := appendString([]byte(`{"log":`), log)
		b = append(b, `,"stream":`...)
		b = appendString(b, stream)
		b = append(b, fmt.Sprintf(`,"time":"2024-01-01T00:%02d:%02dZ"}`+"\n", sec/60, sec%60)...)
		return string(b)
	}
	// fixed writes lines of one encoded length L each, so that line ends
	// fall on, just before and just after chunk boundaries.
	fixed := func(L int) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			var sb strings.Builder
			for i := range 3 * chunkSize / L * 2 {
				e := entry("stdout", "", i%3600)
				pad := L - len(e)
				sb.WriteString(entry([]string{"stdout", "stderr"}[i%2], fmt.Sprintf("%06d %s", i, strings.Repeat("p", pad-7)), i%3600))
			}
			if err := os.WriteFile(path, []byte(sb.String()), 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
	layouts := []layout{
		{"empty", func(t *testing.T, path string) { os.WriteFile(path, nil, 0o640) }},
		{"one line", func(t *testing.T, path string) { os.WriteFile(path, []byte(entry("stdout", "x\n", 1)), 0o640) }},
		{"only torn", func(t *testing.T, path string) {
			os.WriteFile(path, []byte(strings.TrimSuffix(entry("stdout", "x\n", 1), "\n")), 0o640)
		}},
		{"torn after lines", func(t *testing.T, path string) {
			os.WriteFile(path, []byte(entry("stdout", "a\n", 1)+entry("stderr", "b\n", 2)+`{"log":"c`), 0o640)
		}},
		{"empty lines", func(t *testing.T, path string) {
			os.WriteFile(path, []byte("\n"+entry("stdout", "a\n", 1)+"\n\n"+entry("stderr", "b\n", 2)), 0o640)
		}},
		{"lines of chunk/4", fixed(chunkSize / 4)},
		{"lines of chunk/4+1", fixed(chunkSize/4 + 1)},
		{"lines of chunk/4-1", fixed(chunkSize/4 - 1)},
		{"lines of chunk", fixed(chunkSize)},
		{"lines of chunk+1", fixed(chunkSize + 1)},
		{"lines of chunk-1", fixed(chunkSize - 1)},
		{"lines of 2chunk+3", fixed(2*chunkSize + 3)},
		{"rotated, random sizes", func(t *testing.T, path string) {
			w, err := NewWriter(path, Options{MaxSize: 300 << 10, MaxFiles: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			rng := rand.New(rand.NewPCG(3, 4))
			for i := range 4000 {
				l := rng.IntN(300)
				if i%50 == 0 {
					l = rng.IntN(3 * MaxLine)
				}
				s := fmt.Sprintf("%d %s\n", i, strings.Repeat("é", l/2))
				if i%333 == 0 { // control bytes: a 96 KiB entry
					s = strings.Repeat("\x01", MaxLine) + "\n"
				}
				w.Copy([]string{"stdout", "stderr"}[rng.IntN(2)], strings.NewReader(s))
			}
			if _, err := os.Stat(path + ".2"); err != nil {
				t.Fatal("no rotation")
			}
		}},
		{"rotated, current empty, middle missing", func(t *testing.T, path string) {
			os.WriteFile(path+".2", []byte(entry("stdout", "old\n", 1)+entry("stderr", "older?\n", 2)+`{"to`), 0o640)
			os.WriteFile(path, nil, 0o640)
		}},
		{"rotated, few in current", func(t *testing.T, path string) {
			var sb strings.Builder
			for i := range 3000 {
				sb.WriteString(entry([]string{"stdout", "stderr"}[i%3/2], fmt.Sprintf("r%d\n", i), i%3600))
			}
			os.WriteFile(path+".1", []byte(sb.String()), 0o640)
			os.WriteFile(path, []byte(entry("stdout", "new\n", 3599)), 0o640)
		}},
	}
	filters := []struct {
		name string
		opts ReadOptions
	}{
		{"all", ReadOptions{}},
		{"stdout", ReadOptions{Filter: func(e *Entry) bool { return e.Stream == "stdout" }}},
		{"stderr", ReadOptions{Filter: func(e *Entry) bool { return e.Stream == "stderr" }}},
		{"none", ReadOptions{Filter: func(e *Entry) bool { return false }}},
		{"since", ReadOptions{Since: time.Date(2024, 1, 1, 0, 0, 2, 0, time.UTC)}},
		{"since+stderr", ReadOptions{Since: time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC), Filter: func(e *Entry) bool { return e.Stream == "stderr" }}},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			l.build(t, path)
			total := len(reference(t, path, 3, ReadOptions{Tail: -1}))
			for _, f := range filters {
				for _, n := range []int{-1, 0, 1, 2, 7, total - 1, total, total + 5} {
					if n < 0 && n != -1 {
						continue
					}
					opts := f.opts
					opts.Tail, opts.MaxFiles = n, 3
					want := reference(t, path, 3, opts)
					var got []Entry
					if err := Read(path, opts, func(e Entry) error { got = append(got, e); return nil }); err != nil {
						t.Fatalf("%s tail %d: %v", f.name, n, err)
					}
					if len(got) != len(want) {
						t.Fatalf("%s tail %d: %d entries, want %d", f.name, n, len(got), len(want))
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("%s tail %d: entry %d = %.80q, want %.80q", f.name, n, i, got[i].Log, want[i].Log)
						}
					}
				}
			}
		})
	}
}

// One tail of a 30 MB log reads from the end in bounded memory: a few
// chunk allocated in all (about 70 KiB, limit 1 MiB), not the file (the whole-file ReadLast
// allocated about 200 MB). Bytes allocated are deterministic, unlike time.
func TestTailMemoryBound(t *testing.T) {
	size := 30 << 20
	if testing.Short() {
		size = 8 << 20
	}
	path, n := writeLargeLog(t, size)
	const limit = 1 << 20
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	es, err := ReadLast(path, 3, 5)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 5 || es[4].Log != bigLine(n-1) || es[0].Log != bigLine(n-5) {
		t.Fatalf("tail = %q", logsOf(es))
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("tail 5 of %d MB: %d bytes allocated", size>>20, alloc)
	if alloc > limit {
		t.Errorf("tail 5 of %d MB allocated %d bytes (limit %d)", size>>20, alloc, limit)
	}

	// A filter that rejects all but the first entry reads the whole file
	// backwards: the heap stays bounded (garbage of the lines skipped is
	// collected), it does not hold the file.
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peak uint64
	seen := 0
	var ms runtime.MemStats
	err = Read(path, ReadOptions{Tail: 1, Filter: func(e *Entry) bool {
		if seen++; seen%20000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		return e.Log == bigLine(0)
	}}, func(e Entry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filtered tail of %d MB: peak heap growth %d bytes", size>>20, int64(peak)-int64(before.HeapAlloc))
	if peak > before.HeapAlloc && peak-before.HeapAlloc > 16<<20 {
		t.Errorf("filtered tail: heap grew by %d bytes", peak-before.HeapAlloc)
	}
}

// A follower whose writer stops before the log exists returns; one started
// on a missing log waits for it.
func TestFollowMissingLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := Follow(context.Background(), path, ReadOptions{Interval: time.Millisecond}, func() bool { return false }, func(Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := Read(path, ReadOptions{Tail: 1}, func(Entry) error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a missing log: %v", err)
	}
	var c collector
	var stopped atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- Follow(context.Background(), path, ReadOptions{Tail: 0, Interval: time.Millisecond}, func() bool { return !stopped.Load() }, c.add)
	}()
	time.Sleep(10 * time.Millisecond)
	w, err := NewWriter(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Copy("stdout", strings.NewReader(numbered("stdout", 0)+numbered("stdout", 1)))
	stopped.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkSequence(t, c.got, "stdout", 0, 2)
}

// fn's error ends Follow; a cancelled context ends it with nil.
func TestFollowStops(t *testing.T) {
	w, path := newWriter(t, Options{})
	w.Copy("stdout", strings.NewReader("a\nb\n"))
	boom := errors.New("boom")
	if err := Follow(context.Background(), path, ReadOptions{Tail: -1}, nil, func(Entry) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := Follow(ctx, path, ReadOptions{Tail: -1, Interval: time.Millisecond}, nil, func(Entry) error { return nil }); err != nil {
		t.Fatalf("cancelled: %v", err)
	}
}

// A follower more than MaxFiles-1 rotations behind loses the files deleted
// before it opened them (Docker's bound too), but never duplicates or
// reorders, goes on with the oldest file left, and ends with the last line.
func TestFollowFallsBehind(t *testing.T) {
	const lines = 2000
	w, path := newWriter(t, Options{MaxSize: 1024, MaxFiles: 3})
	w.Copy("stdout", strings.NewReader(numbered("stdout", 0)))
	var c collector
	var stopped atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- Follow(context.Background(), path, ReadOptions{MaxFiles: 3, Tail: -1, Interval: 50 * time.Millisecond},
			func() bool { return !stopped.Load() }, c.add)
	}()
	for c.n.Load() < 1 {
		time.Sleep(100 * time.Microsecond)
	}
	for i := 1; i < lines; i++ { // ~140 rotations within one poll
		w.Copy("stdout", strings.NewReader(numbered("stdout", i)))
	}
	stopped.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	prev := -1
	for _, e := range c.got {
		var n int
		if _, err := fmt.Sscanf(e.Log, "stdout %d", &n); err != nil || n <= prev {
			t.Fatalf("%q after line %d", e.Log, prev)
		}
		prev = n
	}
	if prev != lines-1 {
		t.Fatalf("last line %d, want %d", prev, lines-1)
	}
	t.Logf("received %d of %d lines", len(c.got), lines)
}
