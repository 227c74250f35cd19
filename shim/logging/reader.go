package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"
)

// Entry is one json-file log line.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

const (
	// chunkSize is how much is read per read(2), forwards or backwards.
	chunkSize = 64 << 10
	// maxLineLen bounds a line held in memory while reading. The Writer's
	// lines are at most about 6×MaxLine+100 bytes; a longer one is an error.
	maxLineLen = 1 << 20
	// DefaultFollowInterval is how often Follow looks for new lines.
	DefaultFollowInterval = 100 * time.Millisecond
)

// errLineTooLong is returned for a line longer than maxLineLen.
var errLineTooLong = errors.New("logging: line too long")

// ReadOptions select the entries Read and Follow pass on.
type ReadOptions struct {
	// MaxFiles is how many files the writer keeps (path, path.1, …);
	// <= 0 means DefaultMaxFiles.
	MaxFiles int
	// Tail keeps only the last Tail selected entries of what is already
	// written when the read starts (Follow then goes on with every new
	// selected entry); < 0 means all of them, 0 none.
	Tail int
	// Since selects entries whose time is not before Since.
	Since time.Time
	// Filter, when not nil, selects entries too (e.g. by stream).
	Filter func(*Entry) bool
	// Interval is how often Follow polls for new lines; 0 means
	// DefaultFollowInterval.
	Interval time.Duration
}

func (o *ReadOptions) keep(e *Entry) bool {
	return !e.Time.Before(o.Since) && (o.Filter == nil || o.Filter(e))
}

func (o *ReadOptions) maxFiles() int {
	if o.MaxFiles <= 0 {
		return DefaultMaxFiles
	}
	return o.MaxFiles
}

// ReadLast returns the last n entries (all of them if n <= 0) across path,
// path.1 … path.(maxFiles-1), in chronological order. maxFiles <= 0 means
// DefaultMaxFiles. It is Read with Tail n, collected in a slice: memory is
// bounded by the n entries, whatever the size of the files.
func ReadLast(path string, maxFiles int, n int) ([]Entry, error) {
	if n <= 0 {
		n = -1
	}
	var out []Entry
	err := Read(path, ReadOptions{MaxFiles: maxFiles, Tail: n}, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Read calls fn with the selected entries already written to path and its
// rotated files (path.1 … path.(MaxFiles-1)), oldest first. If none of the
// files exists the error wraps fs.ErrNotExist.
//
// With Tail >= 0 the files are read backwards from their end, in chunks:
// memory is bounded by one chunk, the longest line and the Tail entries
// kept, whatever the size of the files and however many entries the
// options skip. A final line without its newline (a write in progress, or
// torn) is never passed on. A malformed complete line is an error. Missing
// rotated files are skipped.
func Read(path string, opts ReadOptions, fn func(Entry) error) error {
	r, err := open(path, &opts)
	if err != nil {
		return err
	}
	defer r.close()
	if r.cur() == nil {
		return fmt.Errorf("logging: %s: %w", path, fs.ErrNotExist)
	}
	if err := r.snapshot(fn); err != nil {
		return err
	}
	if opts.Tail >= 0 {
		return nil
	}
	for {
		if _, err := r.drain(context.Background(), fn); err != nil {
			return err
		}
		if len(r.queue) == 1 {
			return nil
		}
		r.next()
	}
}

// Follow is Read followed by every new selected entry as it is written,
// until ctx is done (it then returns nil) or fn fails. When running is not
// nil and returns false, Follow reads what was written up to then and
// returns nil once a poll finds nothing new: the last lines of a stopped
// container are never lost. A missing log is waited for.
//
// Follow keeps the file it reads open and follows it by identity: the
// snapshot of the last entries and the follow share that handle, so the
// hand-over is exact (no entry twice, none missed); when the writer
// rotates (path is renamed to path.1 and a new path is created), the old
// file is read to its end, then the files written after it, in order, found
// among path.N … path.1 and path by identity, each from its start. Like
// Docker's and containerd's followers, a reader falling behind by more than
// MaxFiles-1 rotations between two polls loses the files deleted before it
// opened them (the file being read is never lost: its handle is kept). A
// torn final line is sent once its end is written, never in part.
func Follow(ctx context.Context, path string, opts ReadOptions, running func() bool, fn func(Entry) error) error {
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultFollowInterval
	}
	r, err := open(path, &opts)
	if err != nil {
		return err
	}
	defer r.close()
	if r.cur() != nil {
		if err := r.snapshot(fn); err != nil {
			return err
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		alive := running == nil || running()
		progress, err := r.poll(ctx, fn)
		if err != nil {
			return err
		}
		if !alive && !progress {
			return nil // stopped, and everything it wrote was sent
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// reader reads a log and its rotated files in order.
type reader struct {
	path string
	opts *ReadOptions
	// queue holds the open files still to read, oldest first; queue[0] is
	// being read (at fw) and the last one is the newest file known.
	queue []*os.File
	ids   []os.FileInfo // Stat of queue[i] when opened (for os.SameFile)
	fw    forward
}

// open opens path and its rotated files. When none exists, the reader has
// no file (cur is nil) and poll waits for path to appear.
func open(path string, opts *ReadOptions) (*reader, error) {
	r := &reader{path: path, opts: opts}
	files, ids, err := openAll(path, opts.maxFiles())
	if err != nil {
		return nil, err
	}
	r.queue, r.ids = files, ids
	if len(files) > 0 {
		r.fw.reset(files[0])
	}
	return r, nil
}

func (r *reader) close() {
	for _, f := range r.queue {
		f.Close()
	}
	r.queue, r.ids = nil, nil
}

// cur is the newest file known, nil if none.
func (r *reader) cur() *os.File {
	if len(r.queue) == 0 {
		return nil
	}
	return r.queue[len(r.queue)-1]
}

// next closes queue[0] (read to its end) and starts reading queue[1]
// from its start.
func (r *reader) next() {
	r.queue[0].Close()
	r.queue, r.ids = r.queue[1:], r.ids[1:]
	r.fw.reset(r.queue[0])
}

// openAll opens path.(maxFiles-1) … path.1, path that exist and returns
// them oldest first, each file once. It retries (a few times) when path was
// rotated while it opened them, so that the set is one the writer had.
func openAll(path string, maxFiles int) ([]*os.File, []os.FileInfo, error) {
	for attempt := 0; ; attempt++ {
		var files []*os.File // newest first
		var ids []os.FileInfo
		closeAll := func() {
			for _, f := range files {
				f.Close()
			}
		}
		var curID os.FileInfo
		for i := range maxFiles {
			f, err := os.Open(rotated(path, i))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				closeAll()
				return nil, nil, err
			}
			if slices.ContainsFunc(ids, func(id os.FileInfo) bool { return os.SameFile(id, fi) }) {
				f.Close() // moved by a rotation while we opened the others
				continue
			}
			if i == 0 {
				curID = fi
			}
			files, ids = append(files, f), append(ids, fi)
		}
		fi, err := os.Stat(path)
		consistent := curID == nil && errors.Is(err, fs.ErrNotExist) ||
			curID != nil && err == nil && os.SameFile(fi, curID)
		if consistent || attempt >= 10 {
			slices.Reverse(files)
			slices.Reverse(ids)
			return files, ids, nil
		}
		closeAll()
	}
}

// snapshot passes on the selected entries already written. With Tail >= 0
// it reads them backwards and leaves the reader at the end of the last
// complete line of the newest file (the hand-over point), with only that
// file queued. With Tail < 0 it does nothing: the queue is read forwards
// from the start of the oldest file.
func (r *reader) snapshot(fn func(Entry) error) error {
	if r.opts.Tail < 0 {
		return nil
	}
	var kept []Entry // newest first
	bw := backward{buf: make([]byte, chunkSize)}
	var handover int64
	for i := len(r.queue) - 1; i >= 0; i-- {
		f := r.queue[i]
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		bw.reset(f, fi.Size())
		first := true
		for {
			line, off, err := bw.prev()
			if err != nil {
				return fmt.Errorf("logging: %s: %w", f.Name(), err)
			}
			if line == nil {
				break
			}
			if first {
				first = false
				end := fi.Size()
				if line[len(line)-1] != '\n' { // torn: wait for its end
					end = off
					line = nil
				}
				if i == len(r.queue)-1 {
					handover = end
				}
				if line == nil {
					continue
				}
			}
			if len(kept) >= r.opts.Tail {
				break
			}
			e, ok, err := decode(line)
			if err != nil {
				return fmt.Errorf("logging: %s: offset %d: %w", f.Name(), off, err)
			}
			if ok && r.opts.keep(&e) {
				kept = append(kept, e)
			}
		}
		if len(kept) >= r.opts.Tail {
			break
		}
	}
	for i := len(kept) - 1; i >= 0; i-- {
		if err := fn(kept[i]); err != nil {
			return err
		}
	}
	// Hand over: only the newest file, from the end of what was read.
	for len(r.queue) > 1 {
		r.next()
	}
	r.fw.reset(r.queue[0])
	r.fw.off = handover
	return nil
}

// drain passes on the selected complete lines of queue[0] up to its
// current end. It reports whether anything was read.
func (r *reader) drain(ctx context.Context, fn func(Entry) error) (bool, error) {
	start := r.fw.off
	for {
		line, err := r.fw.next()
		if err != nil {
			return r.fw.off != start, fmt.Errorf("logging: %s: %w", r.queue[0].Name(), err)
		}
		if line == nil {
			return r.fw.off != start, nil
		}
		e, ok, err := decode(line)
		if err != nil {
			return true, fmt.Errorf("logging: %s: offset %d: %w", r.queue[0].Name(), r.fw.pos()-int64(len(line)), err)
		}
		if ok && r.opts.keep(&e) {
			if err := ctx.Err(); err != nil {
				return true, nil
			}
			if err := fn(e); err != nil {
				return true, err
			}
		}
	}
}

// poll passes on everything written since the last poll, following
// rotations, and reports whether anything new was found.
func (r *reader) poll(ctx context.Context, fn func(Entry) error) (bool, error) {
	if r.cur() == nil { // no log yet
		f, err := os.Open(r.path)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return false, err
		}
		r.queue, r.ids = []*os.File{f}, []os.FileInfo{fi}
		r.fw.reset(f)
	}
	progress := false
	for ctx.Err() == nil {
		got, err := r.drain(ctx, fn)
		progress = progress || got
		if err != nil {
			return progress, err
		}
		if len(r.queue) > 1 { // a rotated file, read to its end
			r.next()
			progress = true
			continue
		}
		rotated, err := r.rotated()
		if err != nil || !rotated {
			return progress, err
		}
		// The writer no longer writes to the current file: read it to
		// its end, then go on with the file written after it.
		got, err = r.drain(ctx, fn)
		progress = progress || got
		if err != nil {
			return progress, err
		}
		f, id, err := r.successor()
		if err != nil || f == nil {
			return progress, err // not there yet: next poll
		}
		r.queue, r.ids = append(r.queue, f), append(r.ids, id)
	}
	return progress, nil
}

// rotated reports whether path no longer names the current file. A file
// truncated in place (a writer keeping one file) is read again from its
// start.
func (r *reader) rotated() (bool, error) {
	fi, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // between a rename and the new file, or removed
	}
	if err != nil {
		return false, err
	}
	if !os.SameFile(fi, r.ids[0]) {
		return true, nil
	}
	if fi.Size() < r.fw.off {
		r.fw.reset(r.queue[0])
	}
	return false, nil
}

// successor opens the file the writer created after the current one,
// which is now one of path.1 … path.(MaxFiles-1): it finds the current file
// among them by identity, at path.K, and opens path.(K-1) (path for K=1),
// checking that the current file was still path.K afterwards (rotations
// only move files to higher numbers, so path.(K-1) was its successor). It
// returns nil when the successor does not exist yet (mid-rotation). If the
// current file was deleted (the reader fell more than MaxFiles-1 rotations
// behind), the oldest file left is its successor and the files between are
// lost.
func (r *reader) successor() (*os.File, os.FileInfo, error) {
	cur := r.ids[0]
	maxFiles := r.opts.maxFiles()
	for range 100 {
		k := -1
		// Past MaxFiles-1 too while names exist, in case the writer keeps
		// more files than the reader was told.
		for i := 1; ; i++ {
			fi, err := os.Stat(rotated(r.path, i))
			if err != nil && i >= maxFiles-1 {
				break
			}
			if err == nil && os.SameFile(fi, cur) {
				k = i
				break
			}
		}
		if k < 0 {
			if !unlinked(r.queue[0]) {
				continue // moved while we looked: look again
			}
			for i := maxFiles - 1; i >= 0; i-- {
				f, fi, err := openFile(rotated(r.path, i))
				if err != nil || f == nil {
					if err != nil {
						return nil, nil, err
					}
					continue
				}
				if os.SameFile(fi, cur) {
					f.Close()
					continue
				}
				return f, fi, nil
			}
			return nil, nil, nil
		}
		f, fi, err := openFile(rotated(r.path, k-1))
		if err != nil {
			return nil, nil, err
		}
		if f == nil {
			time.Sleep(time.Millisecond) // mid-rotation
			continue
		}
		if again, err := os.Stat(rotated(r.path, k)); err == nil && os.SameFile(again, cur) && !os.SameFile(fi, cur) {
			return f, fi, nil
		}
		f.Close()
	}
	return nil, nil, nil
}

// openFile opens name and stats it; it returns a nil file if it does not
// exist.
func openFile(name string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// unlinked reports whether f's file has no name left.
func unlinked(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}

// decode parses one line (with or without its newline). An empty line
// is skipped (ok false).
func decode(line []byte) (e Entry, ok bool, err error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	if len(line) == 0 {
		return e, false, nil
	}
	if err := json.Unmarshal(line, &e); err != nil {
		return e, false, err
	}
	return e, true, nil
}

// forward reads complete lines from a file, from an offset onwards. A
// final line without its newline stays buffered until its end is written.
type forward struct {
	f    *os.File
	off  int64  // offset in f just after the buffered bytes
	buf  []byte // read buffer; unconsumed bytes are buf[r:w]
	r, w int
}

func (fw *forward) reset(f *os.File) {
	fw.f, fw.off, fw.r, fw.w = f, 0, 0, 0
}

// pos is the offset in f of the first unconsumed byte.
func (fw *forward) pos() int64 { return fw.off - int64(fw.w-fw.r) }

// next returns the next complete line, with its newline, or nil at the
// end of what is written. The line is valid until the next call.
func (fw *forward) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(fw.buf[fw.r:fw.w], '\n'); i >= 0 {
			line := fw.buf[fw.r : fw.r+i+1]
			fw.r += i + 1
			return line, nil
		}
		if fw.r > 0 {
			fw.w = copy(fw.buf, fw.buf[fw.r:fw.w])
			fw.r = 0
		}
		if fw.buf == nil {
			fw.buf = make([]byte, chunkSize) // not needed by a tail
		}
		if fw.w == len(fw.buf) {
			if len(fw.buf) >= maxLineLen {
				return nil, errLineTooLong
			}
			fw.buf = append(fw.buf, make([]byte, min(len(fw.buf), maxLineLen-len(fw.buf)))...)
		}
		n, err := fw.f.ReadAt(fw.buf[fw.w:], fw.off)
		fw.w += n
		fw.off += int64(n)
		if n == 0 {
			if err == nil || err == io.EOF {
				return nil, nil
			}
			return nil, err
		}
	}
}

// backward reads the lines of a file from a given end towards its start.
type backward struct {
	f   *os.File
	lo  int64  // offset in f of buf[s]
	buf []byte // the window buf[s:e] holds f[lo:lo+e-s], lines not yet returned
	s   int
	e   int
}

func (bw *backward) reset(f *os.File, end int64) {
	bw.f, bw.lo, bw.s, bw.e = f, end, len(bw.buf), len(bw.buf)
}

// prev returns the line before the previous one returned (the last line
// first, which may lack its newline) and its offset, or nil at the start
// of the file. The line is valid until the next call.
func (bw *backward) prev() ([]byte, int64, error) {
	for {
		win := bw.buf[bw.s:bw.e]
		if len(win) > 0 {
			if i := bytes.LastIndexByte(win[:len(win)-1], '\n'); i >= 0 {
				bw.e = bw.s + i + 1
				return win[i+1:], bw.lo + int64(i+1), nil
			}
			if bw.lo == 0 {
				bw.e = bw.s
				return win, 0, nil
			}
		} else if bw.lo == 0 {
			return nil, 0, nil
		}
		// Read the chunk before the window, moving the window to the end
		// of the buffer first (it is at most one partial line).
		n := len(win)
		if bw.e < len(bw.buf) {
			copy(bw.buf[len(bw.buf)-n:], win)
			bw.s, bw.e = len(bw.buf)-n, len(bw.buf)
		}
		if bw.s == 0 {
			if n >= maxLineLen {
				return nil, 0, errLineTooLong
			}
			nb := make([]byte, 2*len(bw.buf))
			copy(nb[len(nb)-n:], win)
			bw.buf, bw.s, bw.e = nb, len(nb)-n, len(nb)
		}
		k := min(int64(bw.s), bw.lo)
		if _, err := bw.f.ReadAt(bw.buf[int64(bw.s)-k:bw.s], bw.lo-k); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // truncated under us
			}
			return nil, 0, err
		}
		bw.s -= int(k)
		bw.lo -= k
	}
}
