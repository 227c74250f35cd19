package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// consoleWait bounds how long the shim waits for the master of a
// pseudo-terminal once the runtime command that sends it has returned (runc
// and crun send it before they return: it is normally there already), and
// how long a connected runtime may take to send it.
var consoleWait = 5 * time.Second

// consoleSocket is the unix socket a runtime sends the master of a new
// pseudo-terminal to (--console-socket), with SCM_RIGHTS. The receiver
// runs while the runtime command does; wait collects its result.
type consoleSocket struct {
	path string
	l    *net.UnixListener
	res  chan consoleResult
}

type consoleResult struct {
	f   *os.File
	err error
}

// listenConsole binds a console socket at path (replacing a stale file a
// killed shim left) and starts receiving on it. Keep path short: sun_path
// holds 107 bytes.
func listenConsole(path string) (*consoleSocket, error) {
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("console socket %q is longer than %d bytes", path, len(unix.RawSockaddrUnix{}.Path)-1)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	old := unix.Umask(0o077)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	c := &consoleSocket{path: path, l: l, res: make(chan consoleResult, 1)}
	go func() { c.res <- c.receive() }()
	return c, nil
}

// receive accepts one connection and reads one file descriptor from it.
func (c *consoleSocket) receive() consoleResult {
	conn, err := c.l.AcceptUnix()
	if err != nil {
		return consoleResult{err: err}
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(consoleWait))
	f, err := recvFile(conn)
	return consoleResult{f: f, err: err}
}

// recvFile reads one message carrying exactly one file descriptor (runc
// and crun send the pty master with its name as the data). The received
// descriptor is close-on-exec (Go's ReadMsgUnix asks for it) and made
// non-blocking, so that closing the file interrupts a read.
func recvFile(conn *net.UnixConn) (*os.File, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("receive the terminal: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive the terminal: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		if r, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, r...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive the terminal: %d file descriptors, want 1", len(fds))
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive the terminal: %w", err)
	}
	name := string(buf[:n])
	if name == "" {
		name = "console"
	}
	return os.NewFile(uintptr(fds[0]), name), nil
}

// wait returns the received master once the runtime command has returned
// (ok: it succeeded). After a failure it only stops the receiver. Either
// way the socket is gone afterwards.
func (c *consoleSocket) wait(ok bool) (*os.File, error) {
	if ok {
		c.l.SetDeadline(time.Now().Add(consoleWait))
	} else {
		c.l.Close()
	}
	r := <-c.res
	c.close()
	if !ok {
		if r.f != nil {
			r.f.Close()
		}
		return nil, nil
	}
	if r.err != nil {
		return nil, fmt.Errorf("the runtime sent no terminal: %w", r.err)
	}
	return r.f, nil
}

func (c *consoleSocket) close() {
	c.l.Close()
	os.Remove(c.path)
}
