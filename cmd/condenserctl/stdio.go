package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/rest/api"
)

// A process's standard streams over Condenser's WebSocket endpoints
// (GET /v1/containers/{id}/stdio and …/execs/{exec}/stdio): binary messages
// whose bytes are internal/frame frames, stdin/resize/close-stdin towards
// the process, stdout/stderr/exit from it. One goroutine per direction: the
// caller's reads the output, another copies the client's input; two small
// ones turn window changes and interrupts into messages.

// defaultDetachKeys are Docker's.
const defaultDetachKeys = "ctrl-p,ctrl-q"

// errNotTTY is Docker's refusal of -t when the input is not a terminal.
var errNotTTY = errors.New("the input device is not a TTY")

// stdio says how a session attaches to a process's standard streams.
type stdio struct {
	stdin      bool   // the client's input goes to the process
	tty        bool   // the process has a terminal: raw mode, window sizes
	detachKeys string // Docker's syntax; "" disables detaching by keys
}

// query is the session's query string.
func (o stdio) query() string {
	q := url.Values{"stdin": {"0"}, "detachKeys": {o.detachKeys}}
	if o.stdin {
		q.Set("stdin", "1")
	}
	return q.Encode()
}

// checkDetachKeys checks Docker's syntax of --detach-keys: comma-separated
// ctrl-<a-z, @, [, \, ], ^ or _> or single characters; "" disables
// detaching by keys.
func checkDetachKeys(s string) error {
	if s == "" {
		return nil
	}
	for _, k := range strings.Split(s, ",") {
		if len(k) == 1 {
			continue
		}
		if c, ok := strings.CutPrefix(k, "ctrl-"); ok && len(c) == 1 && (c[0] >= 'a' && c[0] <= 'z' || strings.Contains(`@[\]^_`, c)) {
			continue
		}
		return fmt.Errorf("%q is not a key: want comma-separated ctrl-<a-z@[\\]^_> or single characters (%s)", k, defaultDetachKeys)
	}
	return nil
}

// detachKeys is the --detach-keys flag. Unless given, it is Docker's
// default on a terminal and none otherwise: bytes piped in (run -i) must
// not end the session when they happen to spell ctrl-p ctrl-q.
type detachKeys struct {
	keys string
	set  bool
}

func (k *detachKeys) String() string {
	if k.set {
		return k.keys
	}
	return defaultDetachKeys
}

func (k *detachKeys) Type() string { return "keys" }

func (k *detachKeys) Set(s string) error {
	if err := checkDetachKeys(s); err != nil {
		return err
	}
	k.keys, k.set = s, true
	return nil
}

// value is the keys for a session of c.
func (k *detachKeys) value(c *cli) string {
	if k.set {
		return k.keys
	}
	if _, ok := c.stdinTerminal(); ok {
		return defaultDetachKeys
	}
	return ""
}

// detachKeysFlag adds --detach-keys.
func detachKeysFlag(fs *pflag.FlagSet, k *detachKeys) {
	fs.Var(k, "detach-keys", "the keys that detach from the process, leaving it running ('' for none; none when the input is not a terminal)")
}

// stdinTerminal is the descriptor of the client's input when it is a
// terminal.
func (c *cli) stdinTerminal() (int, bool) {
	if f, ok := c.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return int(f.Fd()), true
	}
	return -1, false
}

// sizeTerminal is the terminal whose size the process's follows: the
// client's input, else its output.
func (c *cli) sizeTerminal() (int, bool) {
	if fd, ok := c.stdinTerminal(); ok {
		return fd, true
	}
	if f, ok := c.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return int(f.Fd()), true
	}
	return -1, false
}

// requireTerminal refuses a terminal session when the input is not a
// terminal, as docker does.
func (c *cli) requireTerminal() error {
	if _, ok := c.stdinTerminal(); !ok {
		return errNotTTY
	}
	return nil
}

// openStdio connects the WebSocket at path (…/stdio). A refusal before the
// upgrade is the daemon's message, as for any request.
func (c *cli) openStdio(path string, o stdio) (*websocket.Conn, error) {
	if err := c.connect(); err != nil {
		return nil, err
	}
	conn, resp, err := websocket.Dial(c.ctx, c.base+path+"?"+o.query(), &websocket.DialOptions{HTTPClient: c.http})
	if err != nil {
		if resp != nil && resp.StatusCode >= 300 {
			return nil, responseError("GET", path, resp)
		}
		return nil, c.transportError(err)
	}
	conn.SetReadLimit(frame.HeaderSize + frame.MaxPayload)
	return conn, nil
}

// windowSize is the client's terminal's size, if it has one.
func (c *cli) windowSize() (rows, cols int, ok bool) {
	fd, ok := c.sizeTerminal()
	if !ok {
		return 0, 0, false
	}
	cols, rows, err := term.GetSize(fd)
	if err != nil || rows <= 0 || cols <= 0 || rows > 0xffff || cols > 0xffff {
		return 0, 0, false
	}
	return rows, cols, true
}

// sendSize sends the client's terminal's size as a Resize frame.
func (c *cli) sendSize(ctx context.Context, conn *websocket.Conn) error {
	rows, cols, ok := c.windowSize()
	if !ok {
		return nil
	}
	return conn.Write(ctx, websocket.MessageBinary, frame.Append(nil, frame.Resize, frame.ResizePayload(uint16(rows), uint16(cols))))
}

// presize gives container id's terminal the client's size before the
// container starts (POST …/actions/resize answers once it is set): a
// Resize frame could reach it after the process's first instructions. A
// failure is for the session's own Resize frame to make up.
func (c *cli) presize(id string) {
	if rows, cols, ok := c.windowSize(); ok {
		c.call("POST", fmt.Sprintf("/v1/containers/%s/actions/resize?h=%d&w=%d", esc(id), rows, cols), nil, nil)
	}
}

// lostError is a session that ended without the process's exit status or
// a detach: the daemon went away or closed it.
type lostError struct{ reason string }

func (e lostError) Error() string { return "lost the connection to Condenser: " + e.reason }

// errInterrupted is a session the client ended on a signal.
var errInterrupted = errors.New("interrupted")

// relay copies the client's input to the process and the process's output
// to the client until the process exits (its status), the client detaches
// with the detach keys (detached) or the session ends otherwise (a
// lostError, errInterrupted). With a terminal and input, the client's
// terminal is raw meanwhile, restored on every way out. It closes conn.
func (c *cli) relay(conn *websocket.Conn, o stdio) (code int, detached bool, err error) {
	defer conn.CloseNow()
	// The session's own context: a cancelled one closes the connection at
	// once, which only the end of relay should do.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	send := func(typ byte, p []byte) error {
		return conn.Write(ctx, websocket.MessageBinary, frame.Append(make([]byte, 0, frame.HeaderSize+len(p)), typ, p))
	}

	// The window's size at once and at every change.
	if _, ok := c.sizeTerminal(); ok && o.tty {
		c.sendSize(ctx, conn)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-winch:
					c.sendSize(ctx, conn)
				}
			}
		}()
	}
	if fd, ok := c.stdinTerminal(); ok && o.tty && o.stdin {
		state, err := term.MakeRaw(fd)
		if err != nil {
			return 0, false, fmt.Errorf("terminal: %v", err)
		}
		defer term.Restore(fd, state)
	}
	// Interrupts (SIGINT, SIGTERM: c.ctx; SIGHUP) end the session as a
	// client that goes away: the process goes on.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var interrupted atomic.Bool
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-c.ctx.Done():
		case <-hup:
		}
		interrupted.Store(true)
		conn.Close(websocket.StatusGoingAway, "client interrupted")
	}()
	if o.stdin {
		go c.copyStdin(send)
	}

	r := frame.NewReader(&messageReader{ctx: ctx, conn: conn})
	for {
		typ, p, err := r.Next()
		if err != nil {
			if interrupted.Load() || c.ctx.Err() != nil {
				return 0, false, errInterrupted
			}
			return 0, closeReason(err) == "detached", sessionError(err)
		}
		switch typ {
		case frame.Stdout:
			c.out.Write(p)
		case frame.Stderr:
			c.errOut.Write(p)
		case frame.Exit:
			code, err := frame.ParseExit(p)
			if err != nil {
				return 0, false, err
			}
			// The daemon closes after the Exit frame; read its close,
			// but not for long.
			t := time.AfterFunc(5*time.Second, func() { conn.CloseNow() })
			defer t.Stop()
			for err == nil {
				_, _, err = r.Next()
			}
			return code, false, nil
		}
	}
}

// copyStdin sends the client's input as Stdin frames, then CloseStdin at
// its end. A read that outlives the session is the program's last.
func (c *cli) copyStdin(send func(byte, []byte) error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.in.Read(buf)
		if n > 0 {
			if send(frame.Stdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			send(frame.CloseStdin, nil)
			return
		}
	}
}

// closeReason is the reason of the daemon's normal close, "" for any other
// end.
func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) && ce.Code == websocket.StatusNormalClosure {
		return ce.Reason
	}
	return ""
}

// sessionError says how a session ended without an exit status; nil for a
// detach.
func sessionError(err error) error {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.StatusNormalClosure && ce.Reason == "detached":
		return nil
	case errors.As(err, &ce) && ce.Reason != "":
		return lostError{ce.Reason}
	case errors.As(err, &ce):
		return lostError{fmt.Sprintf("closed (%d) without an exit status", ce.Code)}
	case errors.Is(err, frame.ErrTooLarge):
		return lostError{err.Error()}
	}
	return lostError{"the connection was cut"}
}

// messageReader reads the binary messages of conn as one stream; other
// messages are skipped.
type messageReader struct {
	ctx  context.Context
	conn *websocket.Conn
	r    io.Reader
}

func (m *messageReader) Read(p []byte) (int, error) {
	for {
		if m.r == nil {
			typ, r, err := m.conn.Reader(m.ctx)
			if err != nil {
				return 0, err
			}
			if typ != websocket.MessageBinary {
				if _, err := io.Copy(io.Discard, r); err != nil {
					return 0, err
				}
				continue
			}
			m.r = r
		}
		n, err := m.r.Read(p)
		if err == io.EOF {
			m.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// session runs one attached session of container id's process and turns
// its end into the command's: the process's exit status (as an
// exitError), nil when detached, or why it ended with how to get back.
func (c *cli) session(conn *websocket.Conn, o stdio, id string) (ended bool, err error) {
	code, detached, err := c.relay(conn, o)
	switch {
	case detached:
		return false, nil
	case errors.Is(err, errInterrupted):
		return false, fmt.Errorf("interrupted; container %s goes on (%s container attach %s)", short(id), prog, short(id))
	case err != nil:
		var le lostError
		if errors.As(err, &le) {
			return false, fmt.Errorf("%w; container %s may still be running (%s container attach %s)", err, short(id), prog, short(id))
		}
		return false, err
	}
	c.settle(id)
	if code != 0 {
		return true, exitError{code: code}
	}
	return true, nil
}

// settle waits until the daemon has recorded the exit the session ended
// with: the shim tells its clients first, so a script's next command (a
// start, an rm) could otherwise still find the container running. A
// container with a restart policy is left alone: its next run may have
// begun, and waiting would wait for that one.
func (c *cli) settle(id string) {
	var d api.ContainerDetail
	if c.call("GET", "/v1/containers/"+esc(id), nil, &d) != nil {
		return // removed (--rm, autoRemove) or unreachable: nothing to wait for
	}
	if p := d.Config.RestartPolicy; d.State == "running" && (p == "" || p == "no") {
		c.call("POST", "/v1/containers/"+esc(id)+"/actions/wait", nil, nil)
	}
}
