package logging

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// writeLargeLog writes about size bytes of json-file lines (numbered
// "line %08d ..." entries) to a single unrotated file and returns its path
// and the number of entries.
func writeLargeLog(tb testing.TB, size int) (string, int) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "big.log")
	w, err := NewWriter(path, Options{MaxSize: -1})
	if err != nil {
		tb.Fatal(err)
	}
	defer w.Close()
	pr, pw := io.Pipe()
	n := size / 160 // an entry of a 100-byte line is about 160 bytes
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		for i := range n {
			bw.WriteString(bigLine(i))
		}
		bw.Flush()
		pw.Close()
	}()
	if err := w.Copy("stdout", pr); err != nil {
		tb.Fatal(err)
	}
	return path, n
}

func BenchmarkTailLargeLog(b *testing.B) {
	path, n := writeLargeLog(b, 30<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		es, err := ReadLast(path, 3, 5)
		if err != nil || len(es) != 5 || es[4].Log != bigLine(n-1) {
			b.Fatalf("ReadLast: %d entries, %v", len(es), err)
		}
	}
}

// bigLine is the i-th line of writeLargeLog.
func bigLine(i int) string { return fmt.Sprintf("line %08d %s\n", i, strings.Repeat("x", 85)) }
