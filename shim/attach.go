package shim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/shim/api"
)

// attachHandshake bounds the wait for a client's AttachRequest and the
// write of the answer.
const attachHandshake = 10 * time.Second

// serveIO serves io.sock (api.IOFile) until l is closed: one goroutine per
// client, which ends with the client's session.
func (s *service) serveIO(l *net.UnixListener) {
	var delay time.Duration
	for {
		conn, err := l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or the like: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("io socket: accept", "error", err, "retry", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		go s.serveAttach(conn)
	}
}

// serveAttach is one client's session: the handshake, then its input
// until its session ends, then the Exit frame.
func (s *service) serveAttach(conn *net.UnixConn) {
	defer conn.Close()
	if err := sameUser(conn); err != nil {
		s.log.Warn("io socket: client refused", "error", err)
		return
	}
	conn.SetDeadline(time.Now().Add(attachHandshake))
	br := bufio.NewReader(conn)
	var req api.AttachRequest
	if err := api.ReadLine(br, &req); err != nil {
		// Refused (a client that is gone or too slow does not read it).
		api.WriteLine(conn, api.AttachRefused(fmt.Errorf("attach request: %w: %w", err, errdefs.ErrInvalidArgument)))
		return
	}
	st, err := s.attachTarget(req.Exec)
	if err != nil {
		api.WriteLine(conn, api.AttachRefused(err))
		return
	}
	// From here on the client's reads are woken (not timed) by the end of
	// the session; its writes have their own deadline.
	conn.SetReadDeadline(time.Time{})
	c := newAttachment(conn)
	c.wmu.Lock()
	if err := api.WriteLine(conn, api.AttachResponse{Terminal: st.terminal}); err != nil {
		c.wmu.Unlock()
		return
	}
	// No output reaches c before the hold: the pumps write under c.wmu.
	held, ended := st.attach(c)
	if len(held) > 0 {
		c.writeLocked(held)
	}
	c.wmu.Unlock()
	if !ended {
		err := readInput(st, br, req.Stdin)
		if errors.Is(err, io.EOF) && !peerClosed(conn) {
			// The client closed its writing half only: it still reads.
			select {
			case <-st.endc:
			case <-c.dropped:
			case <-st.gone:
			}
		}
		st.detach(c)
	}
	if code, ok := st.exitStatus(); ok {
		c.wmu.Lock()
		c.writeLocked(frame.Append(nil, frame.Exit, frame.ExitPayload(code)))
		c.dropLocked()
		c.wmu.Unlock()
	}
}

// attachTarget is the streams of the init (exec "") or of an exec process.
func (s *service) attachTarget(exec string) (*streams, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exec == "" {
		if s.init == nil {
			return nil, fmt.Errorf("container %s is not created: %w", s.cfg.ID, errdefs.ErrNotFound)
		}
		return s.init, nil
	}
	x, ok := s.execs[exec]
	if !ok || x.io == nil {
		return nil, fmt.Errorf("exec %s in container %s: %w", shortID(exec), s.cfg.ID, errdefs.ErrNotFound)
	}
	return x.io, nil
}

// readInput reads a client's frames until its connection ends or is woken
// (an error: the caller tells which): Stdin goes to the process when the
// client asked for it, Resize sets the terminal's size, CloseStdin closes
// the stdin pipe. Any other frame is a protocol error.
func readInput(st *streams, br *bufio.Reader, stdin bool) error {
	fr := frame.NewReader(br)
	for {
		typ, p, err := fr.Next()
		if err != nil {
			return err
		}
		switch typ {
		case frame.Stdin:
			if stdin {
				st.writeStdin(p)
			}
		case frame.Resize:
			rows, cols, err := frame.ParseResize(p)
			if err != nil {
				return err
			}
			if st.terminal {
				st.resize(rows, cols) // the process may be gone
			}
		case frame.CloseStdin:
			if stdin {
				st.closeStdin()
			}
		default:
			return fmt.Errorf("attach: unknown frame type %d", typ)
		}
	}
}

// peerClosed reports whether the client closed its connection altogether
// (detached), not only its writing half: a unix socket whose peer is
// closed polls as hung up.
func peerClosed(conn *net.UnixConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return true
	}
	closed := true
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if n, err := unix.Poll(fds, 0); err == nil {
			closed = n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return closed
}

// sameUser refuses a client of another user (the socket's mode should
// already keep them out).
func sameUser(conn *net.UnixConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("uid %d (pid %d) is not the shim's: %w", cred.Uid, cred.Pid, errdefs.ErrPermissionDenied)
	}
	return nil
}

// shortID shortens an id for a message (the request's, which may be long).
func shortID(id string) string {
	if len(id) > 64 {
		return id[:64] + "…"
	}
	return id
}
