package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// rawEntry is a parsed line together with its log as written.
type rawEntry struct {
	Entry
	rawLog string // the JSON string literal of "log"
}

// parseLine decodes one json-file line and checks that it is byte for byte
// what Docker (encoding/json) would write: key order, escaping, UTC time.
func parseLine(t testing.TB, line []byte) rawEntry {
	t.Helper()
	var m struct {
		Log    json.RawMessage `json:"log"`
		Stream string          `json:"stream"`
		Time   string          `json:"time"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("invalid JSON line %.200q: %v", line, err)
	}
	var log string
	if err := json.Unmarshal(m.Log, &log); err != nil {
		t.Fatalf("log %.200q: %v", m.Log, err)
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Time)
	if err != nil || !strings.HasSuffix(m.Time, "Z") {
		t.Fatalf("bad time %q: %v", m.Time, err)
	}
	if got := ts.Format(time.RFC3339Nano); got != m.Time {
		t.Fatalf("time %q is not canonical RFC3339Nano UTC (%q)", m.Time, got)
	}
	streamJSON, _ := json.Marshal(m.Stream)
	want := `{"log":` + string(m.Log) + `,"stream":` + string(streamJSON) + `,"time":"` + m.Time + `"}`
	if string(line) != want {
		t.Fatalf("line not laid out like Docker's:\n got %.300q\nwant %.300q", line, want)
	}
	// Invalid UTF-8 in the input decodes to U+FFFD, which re-encodes
	// differently; TestCopy checks those literals against the input.
	if !strings.ContainsRune(log, utf8.RuneError) {
		if logJSON, _ := json.Marshal(log); string(logJSON) != string(m.Log) {
			t.Fatalf("log not encoded like encoding/json:\n got %.300s\nwant %.300s", m.Log, logJSON)
		}
	}
	return rawEntry{Entry{Log: log, Stream: m.Stream, Time: ts}, string(m.Log)}
}

// readFile parses every line of a log file; each must end in "\n".
func readFile(t testing.TB, path string) []rawEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []rawEntry
	br := bufio.NewReaderSize(f, 256<<10)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(line) != 0 {
				t.Fatalf("%s: trailing bytes without newline: %.100q", path, line)
			}
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parseLine(t, line[:len(line)-1]))
	}
}

// readAll parses path.(maxFiles-1) … path in chronological order.
func readAll(t testing.TB, path string, maxFiles int) []rawEntry {
	t.Helper()
	var out []rawEntry
	for i := maxFiles - 1; i >= 0; i-- {
		if _, err := os.Stat(rotated(path, i)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		out = append(out, readFile(t, rotated(path, i))...)
	}
	return out
}

func logs(es []rawEntry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Log)
	}
	return out
}

func newWriter(t testing.TB, opts Options) (*Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "container.log")
	w, err := NewWriter(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, path
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		"", "hello", "a\"b\\c", "<script>&</script>", "\u2028\u2029", "é€😀",
		"\x7f", "\xff", "a\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"tab\there\r\n", "\b\f\v\x00\x01\x1f",
	}
	for b := 0; b < 256; b++ {
		cases = append(cases, string([]byte{byte(b)}), "x"+string([]byte{byte(b)})+"y")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := appendString(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\n", "<&>", "\u2028", "\xff\xfe", "é\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, _ := json.Marshal(string(b))
		if got := appendString(nil, b); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, want %s", b, got, want)
		}
	})
}

func TestCopy(t *testing.T) {
	long := strings.Repeat("x", MaxLine)
	cases := []struct {
		name  string
		input string
		want  []string
	}{
		{"empty stream", "", nil},
		{"lines", "one\ntwo\nthree\n", []string{"one\n", "two\n", "three\n"}},
		{"empty lines", "\n\na\n\n", []string{"\n", "\n", "a\n", "\n"}},
		{"crlf kept", "a\r\nb\r\n\r\n", []string{"a\r\n", "b\r\n", "\r\n"}},
		{"no trailing newline", "a\nlast", []string{"a\n", "last"}},
		{"only partial", "abc", []string{"abc"}},
		{"escaping", "<b>&\"\\\t\x00\u2028é\xff\n", []string{"<b>&\"\\\t\x00\u2028é\xff\n"}},
		{"line of MaxLine-1", long[1:] + "\n", []string{long[1:] + "\n"}},
		// Like Docker: the buffer fills before the newline is seen.
		{"line of MaxLine", long + "\n", []string{long, "\n"}},
		{"line of MaxLine+1", long + "y\n", []string{long, "y\n"}},
		{"two buffers no newline", long + long, []string{long, long}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, path := newWriter(t, Options{})
			start := time.Now()
			// One byte per Read too, to exercise buffering across reads.
			for _, r := range []io.Reader{strings.NewReader(tc.input), &oneByteReader{s: tc.input}} {
				if err := w.Copy("stderr", r); err != nil {
					t.Fatal(err)
				}
			}
			es := readFile(t, path)
			want := append(append([]string(nil), tc.want...), tc.want...)
			var got, wantJSON []string
			for i, e := range es {
				got = append(got, e.rawLog)
				if i < len(want) {
					b, _ := json.Marshal(want[i]) // the input bytes, as encoding/json writes them
					wantJSON = append(wantJSON, string(b))
				}
			}
			if !equalStrings(got, wantJSON) || len(es) != len(want) {
				t.Fatalf("logs = %.200q, want %.200q", got, wantJSON)
			}
			for _, e := range es {
				if e.Stream != "stderr" {
					t.Errorf("stream = %q", e.Stream)
				}
				if e.Time.Before(start.Add(-time.Second)) || e.Time.After(time.Now().Add(time.Second)) {
					t.Errorf("time %v out of range", e.Time)
				}
			}
		})
	}
}

type oneByteReader struct {
	s string
	i int
}

func (r *oneByteReader) Read(p []byte) (int, error) {
	if r.i >= len(r.s) {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.s[r.i]
	r.i++
	return 1, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCopyLongLine(t *testing.T) {
	cases := []struct {
		name string
		line string
	}{
		{"ascii", strings.Repeat("0123456789abcdef", 10*1024) + "tail\n"},
		{"ascii no newline", strings.Repeat("z", 3*MaxLine+7)},
		// Multi-byte runes straddle the 16 KiB boundaries: parts end on a
		// rune boundary so the text survives the split.
		{"utf8", strings.Repeat("é€😀a", 20*1024) + "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, path := newWriter(t, Options{})
			if err := w.Copy("stdout", strings.NewReader(tc.line)); err != nil {
				t.Fatal(err)
			}
			es := readFile(t, path)
			if len(es) < 2 {
				t.Fatalf("%d entries, want a split", len(es))
			}
			var sb strings.Builder
			for i, e := range es {
				last := i == len(es)-1
				if !last {
					if strings.HasSuffix(e.Log, "\n") {
						t.Errorf("part %d ends in newline", i)
					}
					if len(e.Log) > MaxLine || len(e.Log) < MaxLine-utf8.UTFMax+1 {
						t.Errorf("part %d has %d bytes", i, len(e.Log))
					}
					if tc.name != "utf8" && len(e.Log) != MaxLine {
						t.Errorf("ascii part %d has %d bytes, want %d", i, len(e.Log), MaxLine)
					}
				}
				if !utf8.ValidString(e.Log) {
					t.Errorf("part %d is not valid UTF-8", i)
				}
				sb.WriteString(e.Log)
			}
			if sb.String() != tc.line {
				t.Fatalf("reassembled line differs (%d bytes, want %d)", sb.Len(), len(tc.line))
			}
		})
	}
}

func TestSplitPoint(t *testing.T) {
	pad := strings.Repeat("a", 10)
	cases := []struct {
		tail string
		cut  int // bytes held back
	}{
		{"a", 0},
		{"é", 0},
		{"\xc3", 1},
		{"\xe2\x82", 2},
		{"\xe2", 1},
		{"\xf0\x9f\x98", 3},
		{"😀", 0},
		{"\xff", 0},     // invalid: emitted (becomes \ufffd)
		{"\x82\x82", 0}, // stray continuation bytes
		{"\xc3\x28", 0}, // invalid sequence
		{"\xf0\x9f\x98\x80", 0},
	}
	for _, tc := range cases {
		b := []byte(pad + tc.tail)
		if got := len(b) - splitPoint(b); got != tc.cut {
			t.Errorf("splitPoint(…%q) holds back %d, want %d", tc.tail, got, tc.cut)
		}
	}
}

// genLines writes n lines of varied lengths (some longer than MaxLine) to
// pw in random-sized chunks and returns what it wrote.
func genLines(pw *io.PipeWriter, seed uint64, n int, tag string) string {
	rng := rand.New(rand.NewPCG(seed, seed))
	var sb strings.Builder
	for i := range n {
		l := rng.IntN(200)
		if i%97 == 0 {
			l = MaxLine + rng.IntN(2*MaxLine)
		}
		fmt.Fprintf(&sb, "%s %d %s\n", tag, i, strings.Repeat(string(rune('a'+i%26)), l))
	}
	s := sb.String()
	for rest := s; len(rest) > 0; {
		k := min(len(rest), 1+rng.IntN(8192))
		pw.Write([]byte(rest[:k]))
		rest = rest[k:]
	}
	pw.Close()
	return s
}

func TestCopyConcurrentStreams(t *testing.T) {
	w, path := newWriter(t, Options{MaxSize: -1})
	streams := []string{"stdout", "stderr"}
	inputs := make([]string, len(streams))
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for i, s := range streams {
		pr, pw := io.Pipe()
		wg.Go(func() { inputs[i] = genLines(pw, uint64(i+1), 5000, s) })
		wg.Go(func() { errs <- w.Copy(s, pr) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]*strings.Builder{"stdout": {}, "stderr": {}}
	for _, e := range readFile(t, path) { // every line whole and valid
		got[e.Stream].WriteString(e.Log)
	}
	for i, s := range streams {
		if got[s].String() != inputs[i] {
			t.Errorf("%s: reassembled output differs from input", s)
		}
	}
}

func TestRotationFlood(t *testing.T) {
	const (
		maxSize  = 1 << 20
		maxFiles = 3
	)
	total := 50 << 20
	if testing.Short() {
		total = 8 << 20
	}
	w, path := newWriter(t, Options{MaxSize: maxSize, MaxFiles: maxFiles})
	streams := []string{"stdout", "stderr"}
	lastSeq := make([]int, len(streams))
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for i, s := range streams {
		pr, pw := io.Pipe()
		wg.Go(func() {
			bw := bufio.NewWriterSize(pw, 64<<10)
			seq := 0
			for written := 0; written < total/len(streams); written += 100 {
				fmt.Fprintf(bw, "%s %09d %s\n", s, seq, strings.Repeat("-", 100-len(s)-12))
				seq++
			}
			bw.Flush()
			pw.Close()
			lastSeq[i] = seq - 1
		})
		wg.Go(func() { errs <- w.Copy(s, pr) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	names, _ := filepath.Glob(path + "*")
	if len(names) != maxFiles {
		t.Fatalf("files = %v, want %d", names, maxFiles)
	}
	for i := range maxFiles {
		st, err := os.Stat(rotated(path, i))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxSize {
			t.Errorf("%s is %d bytes > %d", st.Name(), st.Size(), maxSize)
		}
		if st.Size() < maxSize/2 && i > 0 {
			t.Errorf("rotated %s is only %d bytes", st.Name(), st.Size())
		}
	}
	es := readAll(t, path, maxFiles)
	// Per stream, the kept entries are consecutive and end with the last line written.
	prev := map[string]int{}
	for _, e := range es {
		var s string
		var seq int
		if _, err := fmt.Sscanf(e.Log, "%s %d", &s, &seq); err != nil || s != e.Stream || len(e.Log) != 100 {
			t.Fatalf("bad entry %q", e.Log)
		}
		if p, ok := prev[s]; ok && seq != p+1 {
			t.Fatalf("%s: seq %d follows %d", s, seq, p)
		}
		prev[s] = seq
	}
	// The kept entries are the tail of the global write order, so every
	// stream that appears in them appears up to its last line.
	if len(prev) == 0 {
		t.Fatal("no entries kept")
	}
	for i, s := range streams {
		if p, ok := prev[s]; ok && p != lastSeq[i] {
			t.Errorf("%s: last kept seq %d, want %d", s, p, lastSeq[i])
		}
	}
	if e := es[len(es)-1]; !strings.Contains(e.Log, fmt.Sprintf(" %09d ", lastSeq[indexOf(streams, e.Stream)])) {
		t.Errorf("newest entry %q is not the last line of its stream", e.Log)
	}
	// ReadLast agrees with the files.
	last, err := ReadLast(path, maxFiles, 1000)
	if err != nil {
		t.Fatal(err)
	}
	tail := es[len(es)-1000:]
	for i := range last {
		if last[i].Log != tail[i].Log || last[i].Stream != tail[i].Stream || !last[i].Time.Equal(tail[i].Time) {
			t.Fatalf("ReadLast[%d] = %+v, want %+v", i, last[i], tail[i].Entry)
		}
	}
}

func indexOf(ss []string, s string) int {
	for i := range ss {
		if ss[i] == s {
			return i
		}
	}
	return -1
}

func TestMaxFilesOneTruncates(t *testing.T) {
	const maxSize = 4096
	w, path := newWriter(t, Options{MaxSize: maxSize, MaxFiles: 1})
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "line %04d\n", i)
	}
	if err := w.Copy("stdout", strings.NewReader(sb.String())); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(path + "*")
	if len(names) != 1 {
		t.Fatalf("files = %v, want only %s", names, path)
	}
	st, _ := os.Stat(path)
	if st.Size() > maxSize || st.Size() == 0 {
		t.Fatalf("size %d, want 1..%d", st.Size(), maxSize)
	}
	es := readFile(t, path)
	for i, e := range es {
		want := fmt.Sprintf("line %04d\n", 1000-len(es)+i)
		if e.Log != want {
			t.Fatalf("entry %d = %q, want %q", i, e.Log, want)
		}
	}
}

func TestReopenAppendsAndCountsSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	write := func(opts Options, lines ...string) {
		t.Helper()
		w, err := NewWriter(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Copy("stdout", strings.NewReader(strings.Join(lines, ""))); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(Options{}, "a\n", "b\n")
	write(Options{}, "c\n")
	if got := logs(readFile(t, path)); !equalStrings(got, []string{"a\n", "b\n", "c\n"}) {
		t.Fatalf("after reopen: %q", got)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&^0o640 != 0 {
		t.Errorf("mode %v, want at most 0640", st.Mode().Perm())
	}
	// Room for less than one more entry: the first write must rotate,
	// which it only does if the writer knows the existing size.
	write(Options{MaxSize: st.Size() + 10}, "d\n")
	if got := logs(readFile(t, path+".1")); !equalStrings(got, []string{"a\n", "b\n", "c\n"}) {
		t.Fatalf("%s.1: %q", path, got)
	}
	if got := logs(readFile(t, path)); !equalStrings(got, []string{"d\n"}) {
		t.Fatalf("%s: %q", path, got)
	}
}

func TestCopyErrors(t *testing.T) {
	t.Run("after close", func(t *testing.T) {
		w, _ := newWriter(t, Options{})
		w.Close()
		if err := w.Copy("stdout", strings.NewReader("x\n")); err == nil {
			t.Fatal("Copy after Close succeeded")
		}
		if err := w.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("read error flushes and is returned", func(t *testing.T) {
		w, path := newWriter(t, Options{})
		boom := errors.New("boom")
		r := io.MultiReader(strings.NewReader("a\nb"), &errReader{boom})
		if err := w.Copy("stdout", r); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if got := logs(readFile(t, path)); !equalStrings(got, []string{"a\n", "b"}) {
			t.Fatalf("logs = %q", got)
		}
	})
	t.Run("failed rotation is returned and loses nothing", func(t *testing.T) {
		w, path := newWriter(t, Options{MaxSize: 200, MaxFiles: 2})
		// path.1 is a non-empty directory: renaming path over it fails.
		if err := os.MkdirAll(filepath.Join(path+".1", "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		err := w.Copy("stdout", strings.NewReader(strings.Repeat("0123456789\n", 20)))
		if err == nil || !strings.Contains(err.Error(), "rotate") {
			t.Fatalf("err = %v, want a rotation error", err)
		}
		before := logs(readFile(t, path))
		if len(before) == 0 {
			t.Fatal("nothing written before the rotation")
		}
		// Once the obstacle is gone the same writer rotates and goes on.
		os.RemoveAll(path + ".1")
		if err := w.Copy("stdout", strings.NewReader("next\n")); err != nil {
			t.Fatal(err)
		}
		if got := logs(readFile(t, path+".1")); !equalStrings(got, before) {
			t.Fatalf("rotated file = %q, want %q", got, before)
		}
		if got := logs(readFile(t, path)); !equalStrings(got, []string{"next\n"}) {
			t.Fatalf("new file = %q", got)
		}
	})
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadLast(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	line := func(i int) string {
		return fmt.Sprintf(`{"log":"l%d\n","stream":"stdout","time":"2024-01-01T00:00:%02dZ"}`+"\n", i, i)
	}
	files := map[string]string{
		path + ".2": line(0) + line(1),
		path + ".1": line(2) + line(3) + line(4),
		path:        line(5) + `{"log":"torn`, // torn final write is ignored
	}
	for name, data := range files {
		os.WriteFile(name, []byte(data), 0o640)
	}
	want := func(from, to int) []string {
		var s []string
		for i := from; i < to; i++ {
			s = append(s, fmt.Sprintf("l%d\n", i))
		}
		return s
	}
	cases := []struct {
		maxFiles, n int
		want        []string
	}{
		{3, 1, want(5, 6)},
		{3, 2, want(4, 6)},
		{3, 4, want(2, 6)},
		{3, 5, want(1, 6)},
		{3, 100, want(0, 6)},
		{3, 0, want(0, 6)},
		{0, 0, want(0, 6)}, // default 3
		{2, 0, want(2, 6)},
		{1, 10, want(5, 6)},
	}
	for _, tc := range cases {
		es, err := ReadLast(path, tc.maxFiles, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, e := range es {
			got = append(got, e.Log)
			if e.Stream != "stdout" || e.Time.Second() != int(e.Log[1]-'0') || (i > 0 && !es[i-1].Time.Before(e.Time)) {
				t.Errorf("entry %+v", e)
			}
		}
		if !equalStrings(got, tc.want) {
			t.Errorf("ReadLast(maxFiles=%d, n=%d) = %q, want %q", tc.maxFiles, tc.n, got, tc.want)
		}
	}

	// A missing middle file is skipped.
	os.Remove(path + ".1")
	if es, err := ReadLast(path, 3, 0); err != nil || len(es) != 3 {
		t.Errorf("without .1: %d entries, %v", len(es), err)
	}
	// A corrupt complete line is an error.
	os.WriteFile(path, []byte("not json\n"+line(5)), 0o640)
	if _, err := ReadLast(path, 3, 0); err == nil {
		t.Error("corrupt line: no error")
	}
	// No file at all.
	if _, err := ReadLast(filepath.Join(dir, "none"), 3, 1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing log: err = %v", err)
	}
}

// A stream writing a huge single line never grows the Copy's memory.
func TestCopyMemoryBound(t *testing.T) {
	total := 200 << 20
	if testing.Short() {
		total = 20 << 20
	}
	const limit = 4 << 20
	w, path := newWriter(t, Options{})
	pr, pw := io.Pipe()
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	done := make(chan uint64)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() {
		var ms runtime.MemStats
		var peak uint64
		for written := 0; written < total; written += len(chunk) {
			if _, err := pw.Write(chunk); err != nil {
				break
			}
			if written%(8<<20) == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
		pw.Close()
		done <- peak
	}()
	if err := w.Copy("stdout", pr); err != nil {
		t.Fatal(err)
	}
	peak := <-done
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	peak = max(peak, after.HeapAlloc)
	if peak > before.HeapAlloc && peak-before.HeapAlloc > limit {
		t.Errorf("HeapAlloc grew by %d bytes (limit %d)", peak-before.HeapAlloc, limit)
	}
	// Cumulative allocation: no per-read or per-entry garbage either.
	if a := after.TotalAlloc - before.TotalAlloc; a > limit {
		t.Errorf("Copy of %d MB allocated %d bytes in total (limit %d)", total>>20, a, limit)
	}
	t.Logf("HeapAlloc growth %d B, TotalAlloc %d B for %d MB", int64(peak)-int64(before.HeapAlloc), after.TotalAlloc-before.TotalAlloc, total>>20)

	last, err := ReadLast(path, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 1 || last[0].Log != strings.Repeat("x", MaxLine) {
		t.Fatalf("last entry is not a full %d-byte part", MaxLine)
	}
}

// Copy allocates a fixed amount whatever the number of lines.
func TestCopyAllocsPerLine(t *testing.T) {
	w, _ := newWriter(t, Options{MaxSize: -1})
	data := bytes.Repeat([]byte("some log line <with> \"escapes\"\n"), 1000)
	r := bytes.NewReader(nil)
	allocs := testing.AllocsPerRun(20, func() {
		r.Reset(data)
		if err := w.Copy("stdout", r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 5 {
		t.Errorf("Copy of 1000 lines: %.0f allocations, want a constant ≤ 5", allocs)
	}
}

func TestNewWriterError(t *testing.T) {
	if _, err := NewWriter(filepath.Join(t.TempDir(), "no", "such", "dir", "log"), Options{}); err == nil {
		t.Fatal("NewWriter in a missing directory succeeded")
	}
}

func BenchmarkCopy(b *testing.B) {
	line := strings.Repeat("b", 99) + "\n" // 100-byte lines
	data := []byte(strings.Repeat(line, 10000))
	w, _ := newWriter(b, Options{})
	r := bytes.NewReader(nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(data)
		if err := w.Copy("stdout", r); err != nil {
			b.Fatal(err)
		}
	}
}
