package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"reflect"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// An idle shim's resident set is mostly its own binary: every page of text
// and read-only data it ever ran or read — the flag parsing, the start of
// the runtime, the create and start of the container, with the kernel's
// fault-around mapping 64 KiB around each fault — stays mapped until the
// process ends. Those pages are page cache, shared by every shim, so they
// cost little memory, but they are most of each shim's RSS. Once the shim
// has done some work and gone quiet, trimWhenIdle unmaps them
// (MADV_DONTNEED); they stay in the page cache, and what the idle shim (or
// its next request) runs faults back in at the cost of a minor fault.
//
// The heap is left alone: a shim that never collected (the common case,
// its heap stays under the first GC's goal) would pay more for a forced
// GC's metadata and mark workers than it would free.

const (
	// trimFirst is the first (and, while the shim is busy, every) interval
	// between two looks at its CPU time and page faults; quiet, the
	// interval doubles up to trimMax, so an idle shim wakes rarely.
	trimFirst = 250 * time.Millisecond
	trimMax   = 30 * time.Second
	// quietCPU: less CPU time used in an interval, the shim is quiet.
	quietCPU = 2 * time.Millisecond
	// trimFaults: at least this many page faults since the last trim (each
	// maps up to 64 KiB), another is worth it. The idle shim's own faults
	// after a trim (its scheduler, timers and poller faulting back in) stay
	// below it, so it does not trim over and over.
	trimFaults = 64
)

// rusage is the process's CPU time and minor page faults so far.
func rusage() (cpu time.Duration, faults int64) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt
}

// trimWhenIdle unmaps the binary's read-only pages each time the shim goes
// quiet after some work, until ctx is done. It returns at once: each look
// runs in a timer's callback, so an idle shim keeps no goroutine for it.
func trimWhenIdle(ctx context.Context) {
	tr := &trimmer{ctx: ctx, buf: make([]byte, 0, 8<<10), wait: trimFirst}
	tr.last, _ = rusage()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.timer = time.AfterFunc(trimFirst, tr.look)
	context.AfterFunc(ctx, func() {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.timer.Stop()
	})
}

// trimmer is the state of trimWhenIdle between two looks.
type trimmer struct {
	ctx     context.Context
	mu      sync.Mutex
	timer   *time.Timer
	buf     []byte        // for /proc/self/maps: a shim that never collects garbage keeps every allocation
	trimmed int64         // faults at the last trim: all of the start-up is work
	last    time.Duration // CPU time at the last look
	wait    time.Duration // until the next look
}

// look trims if the shim has been quiet since the last look and has
// faulted enough pages in since the last trim, then sets the next look.
func (tr *trimmer) look() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.ctx.Err() != nil {
		return
	}
	cpu, faults := rusage()
	if cpu-tr.last >= quietCPU {
		tr.wait = trimFirst
	} else {
		if faults-tr.trimmed >= trimFaults {
			var err error
			if tr.buf, err = dropExecutablePages(tr.buf); err != nil {
				fmt.Fprintln(os.Stderr, "condenser-shim: trim:", err)
				return
			}
			cpu, tr.trimmed = rusage()
		}
		tr.wait = min(tr.wait*2, trimMax)
	}
	tr.last = cpu
	tr.timer.Reset(tr.wait)
}

// dropExecutablePages unmaps the resident pages of the executable's
// read-only mappings (text and read-only data): those of the file that
// holds this function's code. Its writable data is private and must stay.
// buf is a buffer to read /proc/self/maps into, returned for the next call.
func dropExecutablePages(buf []byte) ([]byte, error) {
	buf, err := readFull("/proc/self/maps", buf)
	if err != nil {
		return buf, err
	}
	var maps [4]mapping
	n, err := executableMappings(buf, uint64(reflect.ValueOf(dropExecutablePages).Pointer()), maps[:])
	if err != nil {
		return buf, err
	}
	for _, m := range maps[:n] {
		// The raw call: these addresses are no Go memory to make a slice of.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return buf, fmt.Errorf("madvise %#x-%#x: %w", m.start, m.end, errno)
		}
	}
	return buf, nil
}

// readFull reads the file at path into buf, grown as needed.
func readFull(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// mapping is an address range of /proc/self/maps.
type mapping struct {
	start, end uint64
}

// executableMappings finds the read-only mappings of the file mapped at pc
// in maps (/proc/PID/maps format: same device and inode, no 'w'
// permission), puts them in out and returns how many there are.
func executableMappings(maps []byte, pc uint64, out []mapping) (int, error) {
	// start-end perms offset dev inode [path]
	type entry struct {
		mapping
		perms, dev, inode []byte
	}
	parse := func(line []byte) (e entry, ok bool) {
		var f [5][]byte
		for i := range f {
			f[i], line, _ = bytes.Cut(line, []byte(" "))
		}
		lo, hi, ok1 := bytes.Cut(f[0], []byte("-"))
		start, ok2 := parseHex(lo)
		end, ok3 := parseHex(hi)
		if !ok1 || !ok2 || !ok3 || end <= start || len(f[4]) == 0 {
			return entry{}, false
		}
		return entry{mapping{start, end}, f[1], f[3], f[4]}, true
	}
	var file entry
	for line := range bytes.Lines(maps) {
		if e, ok := parse(bytes.TrimSuffix(line, []byte("\n"))); ok && e.start <= pc && pc < e.end {
			file = e
		}
	}
	if len(file.inode) == 0 || string(file.inode) == "0" {
		return 0, fmt.Errorf("no file mapping holds %#x", pc)
	}
	n := 0
	for line := range bytes.Lines(maps) {
		e, ok := parse(bytes.TrimSuffix(line, []byte("\n")))
		if !ok || !bytes.Equal(e.dev, file.dev) || !bytes.Equal(e.inode, file.inode) || bytes.IndexByte(e.perms, 'w') >= 0 {
			continue
		}
		if n == len(out) {
			return 0, fmt.Errorf("more than %d read-only mappings of the executable", len(out))
		}
		out[n] = e.mapping
		n++
	}
	return n, nil
}

// parseHex parses a non-empty lowercase or uppercase hexadecimal number.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}
