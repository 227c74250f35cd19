package shim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/shim/logging"
)

// Bounds of the standard streams the shim serves on io.sock.
const (
	// maxHold bounds the output held for the first client (frames, headers
	// included).
	maxHold = 64 << 10
	// pumpChunk is the most a pump reads at once (the log's line size).
	pumpChunk = logging.MaxLine
)

// clientWriteWait bounds one write to an attached client; a client that
// misses it is let go, so that it cannot stall the process's output. (A
// variable for the tests.)
var clientWriteWait = 5 * time.Second

// holdMode says what becomes of a process's output before its first
// client attaches.
type holdMode uint8

const (
	// holdNone: it goes nowhere else than the log (the init without a
	// terminal, a detached exec process).
	holdNone holdMode = iota
	// holdDropOldest: it is held, the oldest bytes dropped past maxHold
	// (the init's terminal: its log has them all).
	holdDropOldest
	// holdBlock: it is held, and once maxHold is reached the pump waits
	// for the first client, so the process waits on its full pipe or
	// terminal (an exec process: it has no log, nothing is lost).
	holdBlock
)

// streams are the standard streams of one of the container's processes —
// its init or an exec process — as the shim holds them: the terminal's
// master or the stdin pipe's write end, the output pumped from the
// process, and the clients attached on io.sock.
//
// Output reaches the attached clients as frames, written by the goroutine
// that read it (a pump, or the init's log copier through tee), with a
// deadline per write. The session ends once the process has exited and
// its output is drained (bounded by logDrainWait): every attached client
// then gets an Exit frame from its own goroutine and is closed; a client
// attaching later gets the hold, if nobody took it, and the Exit frame.
type streams struct {
	terminal bool
	console  *os.File // the terminal's master, when terminal
	// onResize passes a new window size on to a terminal the console
	// only relays (runtime.Process.Resize); nil for a real one.
	onResize func(rows, cols uint16) error
	hold     holdMode
	// ownsFiles: the session's end closes files (an exec process's pipes
	// and terminal); the init's belong to its log copiers.
	ownsFiles bool

	mu       sync.Mutex
	stdin    *os.File   // the stdin pipe's write end; nil without one, or once closed
	files    []*os.File // what the pumps read, closed at the end (ownsFiles) or on release
	clients  []*attachment
	attached bool   // a client has attached: the hold is given away
	held     []byte // frames written before the first attach
	// firstAttach is closed on the first attach (holdBlock), waking the
	// pumps that wait for it.
	firstAttach chan struct{}
	blocked     int  // pumps waiting for the first attach
	stalled     bool // the drain ran out while pumps waited for the first attach
	pumps       int  // pumps still reading
	exited      bool
	code        int
	drainGen    int
	drain       *time.Timer
	ended       bool
	endc        chan struct{} // closed when the session ends
	released    bool
	gone        chan struct{} // closed by release
}

// newStreams returns the streams of a process; for an exec process
// (ownsFiles), files are closed when the session ends.
func newStreams(terminal bool, console, stdin *os.File, hold holdMode, ownsFiles bool) *streams {
	st := &streams{terminal: terminal, console: console, stdin: stdin, hold: hold, ownsFiles: ownsFiles,
		endc: make(chan struct{}), gone: make(chan struct{})}
	if hold == holdBlock {
		st.firstAttach = make(chan struct{})
	}
	return st
}

// startPumps starts one pump per reader (the streams' types in typs). Call
// it before the process's exit can be told (exit), and only once.
func (st *streams) startPumps(typs []byte, rs []*os.File) {
	st.mu.Lock()
	st.pumps = len(rs)
	st.files = append(st.files, rs...)
	st.mu.Unlock()
	for i, r := range rs {
		go st.pump(typs[i], r)
	}
}

// pump reads r and emits its output until r ends (end of file, or the
// terminal's EIO once its last slave is closed) or is closed.
func (st *streams) pump(typ byte, r *os.File) {
	defer st.pumpDone()
	defer r.Close()
	buf := make([]byte, frame.HeaderSize+pumpChunk)
	var scratch []*attachment
	for {
		n, err := r.Read(buf[frame.HeaderSize:])
		if n > 0 && !st.emit(typ, buf[:frame.HeaderSize+n], &scratch) {
			return
		}
		if err != nil {
			return
		}
	}
}

func (st *streams) pumpDone() {
	st.mu.Lock()
	st.pumps--
	var files []*os.File
	if st.exited && st.pumps == 0 {
		files = st.endLocked()
	}
	st.mu.Unlock()
	closeFiles(files)
}

// tee returns the writer the init's log copier tees the output of stream
// typ into: it never fails and never blocks for long (the log comes
// first), and costs nothing while nobody listens.
func (st *streams) tee(typ byte) io.Writer { return &teeWriter{st: st, typ: typ} }

type teeWriter struct {
	st      *streams
	typ     byte
	buf     []byte // a frame: header, then a copy of the output
	scratch []*attachment
}

func (w *teeWriter) Write(b []byte) (int, error) {
	if !w.st.listening() {
		w.buf = nil // an idle container keeps no buffer
		return len(b), nil
	}
	w.buf = append(append(w.buf[:0], make([]byte, frame.HeaderSize)...), b...)
	w.st.emit(w.typ, w.buf, &w.scratch)
	return len(b), nil
}

// listening reports whether output would go anywhere: to a client, or to
// the hold.
func (st *streams) listening() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return !st.released && (len(st.clients) > 0 || !st.attached && st.hold != holdNone)
}

// emit hands the frame f (header room, then the output; the header is
// filled here) to the attached clients or, before the first attach, to the
// hold. A holdBlock hold that is full makes it wait for the first attach.
// It returns false once the streams are released. scratch is the caller's
// reusable list of clients.
func (st *streams) emit(typ byte, f []byte, scratch *[]*attachment) bool {
	f[0] = typ
	binary.BigEndian.PutUint32(f[1:frame.HeaderSize], uint32(len(f)-frame.HeaderSize))
	st.mu.Lock()
	for st.hold == holdBlock && !st.attached && !st.ended && !st.released && len(st.held) > 0 && len(st.held)+len(f) > maxHold {
		wait := st.firstAttach
		st.blocked++
		st.mu.Unlock()
		select {
		case <-wait:
		case <-st.gone:
		}
		st.mu.Lock()
		st.blocked--
	}
	if st.released {
		st.mu.Unlock()
		return false
	}
	if !st.attached && st.hold != holdNone {
		st.held = holdAppend(st.held, f, st.hold == holdDropOldest)
		st.mu.Unlock()
		return true
	}
	cs := append((*scratch)[:0], st.clients...)
	st.mu.Unlock()
	for _, c := range cs {
		c.write(f)
	}
	clear(cs)
	*scratch = cs[:0]
	return true
}

// holdAppend appends the frame f to the held frames, within maxHold: the
// oldest output is dropped when dropOldest, else f (a holdBlock hold is
// full only once its session has ended). The hold grows as needed, up to
// maxHold.
func holdAppend(held, f []byte, dropOldest bool) []byte {
	if len(held)+len(f) > maxHold {
		if !dropOldest || len(f) > maxHold {
			return held
		}
		held = trimFrames(held, len(held)+len(f)-maxHold)
	}
	if need := len(held) + len(f); cap(held) < need {
		grown := make([]byte, len(held), min(max(2*cap(held), need, 4<<10), maxHold))
		copy(grown, held)
		held = grown
	}
	return append(held, f...)
}

// trimFrames drops the first n bytes of the frames in b, cutting into a
// frame's payload where that is enough (its header moves forward), and
// returns the rest, moved to the start of b.
func trimFrames(b []byte, n int) []byte {
	off := 0
	for off < len(b) && n > 0 {
		size := int(binary.BigEndian.Uint32(b[off+1 : off+frame.HeaderSize]))
		if n >= size {
			off += frame.HeaderSize + size
			n -= frame.HeaderSize + size
			continue
		}
		// Drop the first n bytes of the payload: the header moves n bytes
		// on, over bytes that are dropped.
		typ := b[off]
		off += n
		b[off] = typ
		binary.BigEndian.PutUint32(b[off+1:off+frame.HeaderSize], uint32(size-n))
		n = 0
	}
	return append(b[:0], b[off:]...)
}

// attach adds c to the clients and gives it the hold when it is the first
// client. ended reports that the session is over (or the streams
// released): c is then not added.
func (st *streams) attach(c *attachment) (held []byte, ended bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.attached {
		st.attached = true
		held, st.held = st.held, nil
		if st.firstAttach != nil {
			close(st.firstAttach)
		}
		if st.stalled {
			// The pumps go on: give them the time to drain afresh.
			st.stalled = false
			st.armDrainLocked()
		}
	}
	if st.ended || st.released {
		return held, true
	}
	st.clients = append(st.clients, c)
	return held, false
}

func (st *streams) detach(c *attachment) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, x := range st.clients {
		if x == c {
			last := len(st.clients) - 1
			st.clients[i], st.clients[last] = st.clients[last], nil
			st.clients = st.clients[:last]
			return
		}
	}
}

// exit tells the process's exit status. The session ends once the pumps
// have drained the output, or logDrainWait later (a process that left the
// container may hold the pipes open); that wait does not run while pumps
// wait for the first client to take a full hold.
func (st *streams) exit(code int) {
	st.mu.Lock()
	st.exited, st.code = true, code
	var files []*os.File
	if st.pumps == 0 {
		files = st.endLocked()
	} else if !st.ended {
		st.armDrainLocked()
	}
	st.mu.Unlock()
	closeFiles(files)
}

func (st *streams) armDrainLocked() {
	if st.drain != nil {
		st.drain.Stop()
	}
	st.drainGen++
	gen := st.drainGen
	st.drain = time.AfterFunc(logDrainWait, func() { st.drainExpired(gen) })
}

func (st *streams) drainExpired(gen int) {
	st.mu.Lock()
	var files []*os.File
	if gen == st.drainGen && !st.ended {
		st.drain = nil
		if st.blocked > 0 && !st.attached {
			st.stalled = true
		} else {
			files = st.endLocked()
		}
	}
	st.mu.Unlock()
	closeFiles(files)
}

// endLocked ends the session: the clients are woken to send their Exit
// frame, stdin is closed, and the files to close (ownsFiles) returned.
func (st *streams) endLocked() []*os.File {
	if st.ended {
		return nil
	}
	st.ended = true
	if st.drain != nil {
		st.drain.Stop()
		st.drain = nil
	}
	close(st.endc)
	for _, c := range st.clients {
		c.wake()
	}
	return st.takeFilesLocked(st.ownsFiles)
}

// takeFilesLocked returns the stdin pipe, and the pumps' files when all,
// for closing.
func (st *streams) takeFilesLocked(all bool) []*os.File {
	var files []*os.File
	if st.stdin != nil {
		files = append(files, st.stdin)
		st.stdin = nil
	}
	if all {
		files = append(files, st.files...)
		st.files = nil
	}
	return files
}

// release lets go of everything: pumps waiting for an attach return,
// clients are woken and close without an Exit frame, the files are
// closed. For a dropped exec process and the shim's shutdown.
func (st *streams) release() {
	st.mu.Lock()
	if st.released {
		st.mu.Unlock()
		return
	}
	st.released = true
	close(st.gone)
	if st.drain != nil {
		st.drain.Stop()
		st.drain = nil
	}
	for _, c := range st.clients {
		c.wake()
	}
	st.held = nil
	files := st.takeFilesLocked(true)
	st.mu.Unlock()
	closeFiles(files)
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// exitStatus is the status for the Exit frame, once the session has ended
// with the process's exit.
func (st *streams) exitStatus() (int, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.code, st.ended && st.exited && !st.released
}

// writeStdin writes a client's input to the terminal or the stdin pipe
// (dropped when there is neither). It may block while the process does not
// read; closing the file (CloseStdin, the session's end) unblocks it.
func (st *streams) writeStdin(b []byte) {
	st.mu.Lock()
	w := st.stdin
	if st.terminal {
		w = st.console
	}
	st.mu.Unlock()
	if w != nil {
		w.Write(b) // an error: the process closed its stdin or is gone
	}
}

// closeStdin closes the stdin pipe (the process reads end-of-file), once;
// a terminal stays.
func (st *streams) closeStdin() {
	st.mu.Lock()
	f := st.stdin
	st.stdin = nil
	st.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// resize sets the terminal's window size.
func (st *streams) resize(rows, cols uint16) error {
	if !st.terminal {
		return fmt.Errorf("the process has no terminal: %w", errdefs.ErrConflict)
	}
	gone := fmt.Errorf("the process has exited: %w", errdefs.ErrConflict)
	st.mu.Lock()
	ended := st.ended || st.released
	st.mu.Unlock()
	if ended {
		return gone
	}
	var ierr error
	rc, err := st.console.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
		})
	}
	if err != nil {
		return gone // its pump closed the terminal: the process has exited
	}
	if ierr == nil && st.onResize != nil {
		ierr = st.onResize(rows, cols)
	}
	return ierr
}

// pipes are the standard streams of a process without a terminal: the
// shim reads outR and errR and writes inW (nil without stdin); the process
// gets in (nil: /dev/null), out and err.
type pipes struct {
	outR, errR, inW *os.File
	in, out, err    *os.File
}

// newPipes makes the pipes, with a stdin pipe when stdin.
func newPipes(stdin bool) (*pipes, error) {
	p := &pipes{}
	var err error
	if p.outR, p.out, err = os.Pipe(); err == nil {
		if p.errR, p.err, err = os.Pipe(); err == nil && stdin {
			p.in, p.inW, err = os.Pipe()
		}
	}
	if err != nil {
		p.closeShim()
		p.closeProcess()
		return nil, err
	}
	return p, nil
}

// closeProcess closes the process's ends (once the runtime has handed them
// over).
func (p *pipes) closeProcess() { closeFiles(nonNil(p.in, p.out, p.err)) }

// closeShim closes the shim's ends (when the process could not start).
func (p *pipes) closeShim() { closeFiles(nonNil(p.outR, p.errR, p.inW)) }

func nonNil(fs ...*os.File) []*os.File {
	var out []*os.File
	for _, f := range fs {
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}

// ptyReader reads a terminal's master: the EIO that follows the close of
// its last slave is its end of file.
type ptyReader struct{ f *os.File }

func (r ptyReader) Read(b []byte) (int, error) {
	n, err := r.f.Read(b)
	if errors.Is(err, syscall.EIO) {
		err = io.EOF
	}
	return n, err
}

// attachment is one client attached on io.sock. Its own goroutine reads
// its input (serveAttach); the pumps write the output to it.
type attachment struct {
	conn    *net.UnixConn
	wmu     sync.Mutex // one writer at a time; held from the response to the hold's end
	dead    bool       // let go: a write failed, or it had its Exit frame
	dropped chan struct{}
}

func newAttachment(conn *net.UnixConn) *attachment {
	return &attachment{conn: conn, dropped: make(chan struct{})}
}

// write writes the frames f, within clientWriteWait; a client that fails
// is let go.
func (c *attachment) write(f []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writeLocked(f)
}

func (c *attachment) writeLocked(f []byte) {
	if c.dead {
		return
	}
	c.conn.SetWriteDeadline(time.Now().Add(clientWriteWait))
	if _, err := c.conn.Write(f); err != nil {
		c.dropLocked()
	}
}

// dropLocked lets the client go: nothing more is written to it, and its
// goroutine is woken to close it.
func (c *attachment) dropLocked() {
	if !c.dead {
		c.dead = true
		close(c.dropped)
		c.wake()
	}
}

// wake interrupts the read of the client's goroutine.
func (c *attachment) wake() { c.conn.SetReadDeadline(time.Unix(1, 0)) }
