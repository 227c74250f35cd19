// Package logging writes a container's stdout and stderr in Docker's
// json-file log format, with size-based rotation, and reads them back.
//
// Each entry is one line:
//
//	{"log":"hello\n","stream":"stdout","time":"2024-05-01T12:00:00.123456789Z"}
//
// Lines longer than MaxLine bytes are split into MaxLine-sized entries whose
// "log" has no trailing newline ("partial" messages, like Docker); readers
// reassemble a line by concatenating entries until one ends in "\n".
package logging

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unicode/utf8"
)

const (
	// MaxLine is the largest "log" payload of one entry, in input bytes;
	// longer lines are split (Docker's copier uses the same 16 KiB).
	MaxLine = 16 * 1024
	// DefaultMaxSize is the size a file may reach before rotation.
	DefaultMaxSize = 10 << 20
	// DefaultMaxFiles is how many files are kept (path, path.1, path.2).
	DefaultMaxFiles = 3
	// filePerm is the mode of created log files (before umask).
	filePerm = 0o640
)

// Options configure rotation. Zero values take the defaults.
type Options struct {
	MaxSize  int64 // bytes per file before rotation; default 10 MiB; <0 disables rotation
	MaxFiles int   // files kept including the current one; default 3 (path, path.1, path.2)
}

// Writer writes Docker json-file lines to a file, rotating it by size.
// It is safe for concurrent use by the stdout and stderr copiers: every
// entry is written with one write(2) under a mutex, so lines never
// interleave.
type Writer struct {
	path     string
	maxSize  int64 // <0: no rotation
	maxFiles int

	mu   sync.Mutex
	f    *os.File // nil once closed
	size int64    // current size of f
}

// errClosed is returned by Copy after Close.
var errClosed = errors.New("logging: writer closed")

// NewWriter opens path for append (mode 0640), creating it, and keeps
// its current size so that rotation accounts for what is already there.
func NewWriter(path string, opts Options) (*Writer, error) {
	if opts.MaxSize == 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, filePerm)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Writer{path: path, maxSize: opts.MaxSize, maxFiles: opts.MaxFiles, f: f, size: st.Size()}, nil
}

// Close closes the current file. Copy calls still running fail on their
// next write.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// Copy reads r until EOF (or a read error) and writes one entry per line,
// tagged with stream ("stdout" or "stderr"). Lines are kept byte for byte
// including "\r\n"; a line longer than MaxLine is split into parts of
// MaxLine bytes (a part ends before an incomplete UTF-8 sequence, which
// starts the next part instead, so that valid UTF-8 survives the split);
// the final part of a stream without a trailing newline is written as is.
//
// Memory is bounded: one MaxLine read buffer and one output buffer sized
// by the largest encoded entry (about MaxLine for text, at most 6×MaxLine
// for control bytes), whatever the stream's length.
//
// It returns nil at EOF, the read error otherwise (after writing what was
// buffered), or the first write or rotation error. After an error the
// caller should drain r (io.Copy(io.Discard, r)) so the container does not
// block on a full pipe.
func (w *Writer) Copy(stream string, r io.Reader) error {
	buf := make([]byte, MaxLine)
	e := encoder{out: make([]byte, 0, MaxLine+256)}
	// ,"stream":"stdout","time":"  — the same for every entry of this stream.
	e.mid = appendString([]byte(`,"stream":`), stream)
	e.mid = append(e.mid, `,"time":"`...)

	start, end := 0, 0 // unlogged data is buf[start:end]
	for {
		n, rerr := r.Read(buf[end:])
		end += n
		for {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			if err := w.write(e.encode(buf[start : start+i+1])); err != nil {
				return err
			}
			start += i + 1
		}
		if end-start == len(buf) { // full, no newline: partial entry
			k := splitPoint(buf)
			if err := w.write(e.encode(buf[:k])); err != nil {
				return err
			}
			start = k
		}
		if rerr != nil {
			if start < end {
				if err := w.write(e.encode(buf[start:end])); err != nil {
					return err
				}
			}
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
		if start > 0 {
			end = copy(buf, buf[start:end])
			start = 0
		}
	}
}

// splitPoint returns how many bytes of the full buffer b to emit as a
// partial entry: all of it, unless it ends inside a UTF-8 sequence that is
// still valid so far, which is then kept for the next part.
func splitPoint(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			if b[i] >= utf8.RuneSelf && !utf8.FullRune(b[i:]) && i > 0 {
				return i
			}
			break
		}
	}
	return len(b)
}

// encoder builds entries in a reused buffer.
type encoder struct {
	out []byte
	mid []byte
}

// encode returns the json-file line for msg. The result aliases e.out and
// is valid until the next call.
func (e *encoder) encode(msg []byte) []byte {
	b := append(e.out[:0], `{"log":`...)
	b = appendString(b, msg)
	b = append(b, e.mid...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"', '}', '\n')
	e.out = b
	return b
}

// write writes one entry with a single write, rotating first if it would
// not fit in the current file.
func (w *Writer) write(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return errClosed
	}
	if w.maxSize >= 0 && w.size > 0 && w.size+int64(len(p)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return err
}

// rotate shifts path.(N-2)→path.(N-1) … path→path.1 and opens a new path
// (with MaxFiles == 1 it truncates path instead). On error the current file
// stays open and in use where possible, and the error is returned.
func (w *Writer) rotate() error {
	if w.maxFiles <= 1 {
		if err := w.f.Truncate(0); err != nil {
			return fmt.Errorf("logging: rotate: %w", err)
		}
		w.size = 0
		return nil
	}
	for i := w.maxFiles - 2; i >= 1; i-- {
		err := os.Rename(rotated(w.path, i), rotated(w.path, i+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("logging: rotate: %w", err)
		}
	}
	// The open descriptor follows the rename, so a failure below leaves
	// the writer usable (it keeps appending to the old file).
	if err := os.Rename(w.path, rotated(w.path, 1)); err != nil {
		return fmt.Errorf("logging: rotate: %w", err)
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		os.Rename(rotated(w.path, 1), w.path) // best effort: put it back
		return fmt.Errorf("logging: rotate: %w", err)
	}
	old := w.f
	w.f, w.size = f, 0
	if err := old.Close(); err != nil {
		return fmt.Errorf("logging: rotate: close: %w", err)
	}
	return nil
}

// rotated is the name of the i-th older file (path for i == 0).
func rotated(path string, i int) string {
	if i == 0 {
		return path
	}
	return fmt.Sprintf("%s.%d", path, i)
}

// hex and htmlSafe follow encoding/json's string encoder with HTML
// escaping (its default), which Docker uses for the json-file driver.
const hex = "0123456789abcdef"

// htmlSafe[b] is true for ASCII bytes that are written without escaping.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// appendString appends src as a JSON string exactly as encoding/json does
// with HTML escaping: <, >, & become \u003c etc., invalid UTF-8 becomes
// \ufffd, and U+2028/U+2029 are escaped.
func appendString[S []byte | string](dst []byte, src S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(src); {
		if b := src[i]; b < utf8.RuneSelf {
			if htmlSafe[b] {
				i++
				continue
			}
			dst = append(dst, src[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		n := min(len(src)-i, utf8.UTFMax)
		c, size := utf8.DecodeRuneInString(string(src[i : i+n]))
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, src[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, src[start:]...)
	return append(dst, '"')
}
