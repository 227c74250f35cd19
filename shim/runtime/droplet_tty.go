package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
)

// ttyRelay bridges a terminal Droplet holds to one the shim can use.
//
// Droplet keeps the master of a container's (or exec process's) terminal
// in its own tty shim and serves it on a unix socket (tty.sock,
// exec_tty.sock): towards Droplet, frames [type u8][length u32 BE]
// [payload] of type 0 (input) and 1 (resize: rows, cols u16 BE), as
// internal/frame writes them; from Droplet, the terminal's raw output,
// sent only while a client is connected (one at a time: a new connection
// drops the previous one). The socket is closed when Droplet's process
// exits.
//
// The shim wants the master of a terminal: the relay makes a pseudo-
// terminal pair of its own, in raw mode so that it passes bytes unchanged
// (Droplet's terminal does the line discipline), hands out its master,
// and pumps between its slave and the socket: what the shim writes
// becomes input frames, Droplet's output is written to the slave for the
// shim to read. A window size set on the master reaches Droplet through
// resize (runtime.Process.Resize), there being no SIGWINCH on a slave
// that is nobody's controlling terminal.
//
// The relay owns its two pumps; they end when either side does: Droplet's
// process exits (the socket's end: the slave is closed, so the master
// reads what is left and then EIO, the end the shim expects of a
// terminal), or the shim closes the master (the socket is closed: Droplet
// detaches, its process keeps running).
type ttyRelay struct {
	conn  *net.UnixConn
	slave *os.File
	wmu   sync.Mutex // one frame at a time on conn
	once  sync.Once
	done  chan struct{} // closed when both pumps ended
}

// newTTYRelay starts relaying conn and returns the master the shim gets.
func newTTYRelay(conn *net.UnixConn) (*os.File, *ttyRelay, error) {
	master, slave, err := openPty()
	if err != nil {
		return nil, nil, fmt.Errorf("droplet: terminal relay: %w", err)
	}
	if err := makeRaw(slave); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, fmt.Errorf("droplet: terminal relay: %w", err)
	}
	r := &ttyRelay{conn: conn, slave: slave, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.input() }()
	go func() { defer wg.Done(); r.output() }()
	go func() { wg.Wait(); close(r.done) }()
	return master, r, nil
}

// openPty opens a pseudo-terminal pair, both ends non-blocking and
// close-on-exec: pollable, so that closing one unblocks its reader
// (pty.Open leaves them blocking, having asked for their Fd).
func openPty() (master, slave *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	if master, err = pollable(m); err == nil {
		if slave, err = pollable(s); err != nil {
			master.Close()
		}
	}
	return master, slave, err
}

// pollable returns a non-blocking duplicate of f, which it closes.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// makeRaw puts a terminal in raw mode (cfmakeraw).
func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var terr error
	err = rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			terr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		terr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	return errors.Join(err, terr)
}

// input sends what the shim writes to the master as input frames.
func (r *ttyRelay) input() {
	defer r.stop()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.slave.Read(buf)
		if n > 0 {
			r.wmu.Lock()
			werr := frame.Write(r.conn, frame.Stdin, buf[:n])
			r.wmu.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return // the master is closed (EIO), or the relay stopped
		}
	}
}

// output writes Droplet's output to the slave, for the shim to read on
// the master.
func (r *ttyRelay) output() {
	defer r.stop()
	io.Copy(r.slave, r.conn)
}

// stop ends both pumps: the socket and the slave are closed (the master,
// the shim's, reads what is left and then EIO).
func (r *ttyRelay) stop() {
	r.once.Do(func() {
		r.conn.Close()
		r.slave.Close()
	})
}

// resize sends the window size to Droplet's terminal.
func (r *ttyRelay) resize(rows, cols uint16) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if err := frame.Write(r.conn, frame.Resize, frame.ResizePayload(rows, cols)); err != nil {
		return fmt.Errorf("the process has exited: %w", errdefs.ErrConflict)
	}
	return nil
}

// socketWait bounds how long the driver waits for a socket of Droplet's
// to accept a connection.
var socketWait = 5 * time.Second

// dialTTY connects to Droplet's terminal socket at path, waiting a while
// for it to be there and listening.
func dialTTY(ctx context.Context, path string) (*net.UnixConn, error) {
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("droplet: terminal socket %q is longer than %d bytes: shorten the runtime root", path, len(unix.RawSockaddrUnix{}.Path)-1)
	}
	deadline := time.Now().Add(socketWait)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("droplet: terminal socket: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("droplet: no terminal on %s after %v: %w", path, socketWait, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}
