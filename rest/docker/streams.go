package docker

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/moby/moby/api/types"

	"github.com/raind/condenser/internal/detachkeys"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
)

// Streams is what the attach, exec, logs and resize handlers use of the
// supervisor.
type Streams interface {
	Get(ctx context.Context, ref string) (*supervisor.Container, error)
	// Attach attaches to the standard streams of a container's init or
	// of one of its exec processes: internal/frame both ways.
	Attach(ctx context.Context, ref string, o supervisor.AttachOptions) (supervisor.Stream, error)
	Resize(ctx context.Context, ref, exec string, rows, cols uint16) error
	Exec(ctx context.Context, ref string, r supervisor.ExecRequest) (string, error)
	ExecState(ctx context.Context, ref, exec string) (client.ExecProcess, *supervisor.Container, error)
	Logs(ctx context.Context, ref string, o supervisor.LogOptions, fn func(logging.Entry) error) error
}

var _ Streams = (*supervisor.Supervisor)(nil)

func (s *server) streamRoutes(m *http.ServeMux) {
	if s.Streams == nil {
		return // a handler for other parts' tests
	}
	m.HandleFunc("POST /containers/{id}/attach", s.wrap(s.attach))
	m.HandleFunc("POST /containers/{id}/resize", s.wrap(s.resizeContainer))
	m.HandleFunc("GET /containers/{id}/logs", s.wrap(s.logs))
	x := &execAPI{server: s, execs: newExecStore(maxExecs)}
	m.HandleFunc("POST /containers/{id}/exec", s.wrap(x.execCreate))
	m.HandleFunc("POST /exec/{id}/start", s.wrap(x.execStart))
	m.HandleFunc("POST /exec/{id}/resize", s.wrap(x.execResize))
	m.HandleFunc("GET /exec/{id}/json", s.wrap(x.execInspect))
}

// streamType is the Content-Type of an attach, exec start or logs
// response: raw bytes with a terminal; without one the body is framed
// (stdWriter) whatever the version, but only API 1.42 and later name it.
func streamType(r *http.Request, tty bool) string {
	if !tty && versionAtLeast(r, "1.42") {
		return types.MediaTypeMultiplexedStream
	}
	return types.MediaTypeRawStream
}

// stdHeaderSize is the size of the header of Docker's multiplexed stream:
// [stream 1|2, 0, 0, 0, length uint32 big-endian].
const stdHeaderSize = 8

// stdWriter writes a process's output as Docker sends it: raw with a
// terminal, else each chunk behind its 8-byte header, in one Write (a
// chunk is never split by another's).
type stdWriter struct {
	w   io.Writer
	tty bool
	buf []byte
}

// write sends p, from stream typ (frame.Stdout or frame.Stderr, which are
// Docker's 1 and 2).
func (sw *stdWriter) write(typ byte, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if sw.tty {
		_, err := sw.w.Write(p)
		return err
	}
	sw.buf = append(sw.buf[:0], typ, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(sw.buf[4:stdHeaderSize], uint32(len(p)))
	sw.buf = append(sw.buf, p...)
	_, err := sw.w.Write(sw.buf)
	return err
}

// relay says what a hijacked session relays.
type relay struct {
	tty            bool   // raw output; else framed
	stdout, stderr bool   // the output streams the client gets
	stdin          bool   // the client's input goes to the process
	keys           []byte // detach keys scanned in the input; nil: none
	// onExit, if set, learns the process's exit status (before the
	// connection closes: a client that asks next finds it).
	onExit func(code int)
}

// How a session ended (for the log).
const (
	endExited   = "process exited"
	endDetached = "detached"
	endClient   = "client gone"
	endLost     = "lost the process's stream"
	endShutdown = "daemon shutting down"
)

// session relays between a hijacked connection (in: what the client sent,
// buffered) and a process's stream until the process exits, the client
// goes or detaches, or ctx ends (Shutdown). It owns st and closes it (which
// detaches: the process goes on); the caller closes conn after.
//
// A client that half-closes its connection (CloseWrite: EOF on in) has no
// more input: the process's stdin is closed, and its output still flows
// until it exits — docker run -i and docker exec -i wait for that.
func session(ctx context.Context, conn net.Conn, in io.Reader, st io.ReadWriteCloser, rl relay) (string, error) {
	type end struct {
		why string
		err error
	}
	fromc := make(chan end, 1)
	toc := make(chan end, 1)
	go func() { why, err := fromClient(in, st, rl); fromc <- end{why, err} }()
	go func() { why, err := toClient(conn, st, rl); toc <- end{why, err} }()
	var e end
	pendingFrom, pendingTo := true, true
	for e.why == "" {
		select {
		case x := <-fromc:
			pendingFrom = false
			if x.why != "" {
				e = x
			}
			// "": the client half-closed: wait for the output's end.
		case x := <-toc:
			pendingTo = false
			e = x
		case <-ctx.Done():
			e = end{why: endShutdown}
		}
	}
	_ = st.Close()   // ends toClient's read
	_ = conn.Close() // ends fromClient's read
	if pendingFrom {
		<-fromc
	}
	if pendingTo {
		<-toc
	}
	return e.why, e.err
}

// fromClient relays the client's raw input to the process as Stdin frames
// (scanned for the detach keys), and its end as CloseStdin. It returns ""
// when the client half-closed (the session goes on), else why the session
// ends. Writes to the process that fail (its stream is ending: toClient
// tells) stop the input, not the session.
func fromClient(in io.Reader, st io.Writer, rl relay) (string, error) {
	scan := detachkeys.Scanner{Keys: rl.keys}
	buf := make([]byte, 32<<10)
	var out []byte
	var werr error
	send := func(typ byte, p []byte) {
		if werr == nil && rl.stdin {
			out = frame.Append(out[:0], typ, p)
			_, werr = st.Write(out)
		}
	}
	for {
		n, err := in.Read(buf)
		if n > 0 {
			p, detached := scan.Feed(buf[:n])
			if len(p) > 0 {
				send(frame.Stdin, p)
			}
			if detached {
				return endDetached, nil
			}
		}
		if errors.Is(err, io.EOF) {
			if held := scan.Flush(); len(held) > 0 {
				send(frame.Stdin, held)
			}
			send(frame.CloseStdin, nil)
			return "", werr
		}
		if err != nil {
			return endClient, err
		}
	}
}

// toClient relays the process's output to the client until its Exit
// frame.
func toClient(conn net.Conn, st io.Reader, rl relay) (string, error) {
	out := frame.NewReader(st)
	sw := &stdWriter{w: conn, tty: rl.tty}
	for {
		typ, p, err := out.Next()
		if err != nil {
			return endLost, err
		}
		switch {
		case typ == frame.Stdout && rl.stdout, typ == frame.Stderr && rl.stderr:
			if err := sw.write(typ, p); err != nil {
				return endClient, err
			}
		case typ == frame.Exit:
			if code, err := frame.ParseExit(p); err == nil && rl.onExit != nil {
				rl.onExit(code)
			}
			return endExited, nil
		}
	}
}

// opener opens the process's stream once the connection is hijacked; it
// may write to the client first (the past log of an attach). An error it
// returns ends the session (the client has had what it wrote), as does a
// nil stream without an error (open told the client why).
type opener func(ctx context.Context, conn io.Writer) (supervisor.Stream, error)

// runSession hijacks the request's connection, opens the process's stream
// and relays between them until the session ends; abandon, if set, is
// called when the hijack fails (to release what open would have used).
//
// The stream is opened after the response's head went out: a process that
// writes as soon as open starts it (an exec) writes after the head, in a
// read of its own. A client that reads the head through a buffer and then
// reads the raw socket under it — docker-py does — would otherwise lose
// the output that arrived with the head.
func (s *server) runSession(w http.ResponseWriter, r *http.Request, rl relay, open opener, abandon func()) error {
	conn, in, done, err := s.hijack(w, r, streamType(r, rl.tty))
	if err != nil {
		if abandon != nil {
			abandon()
		}
		return err
	}
	defer done()
	// Not the request's context: the server cancels it when the client
	// half-closes, and a session goes on after that.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	defer context.AfterFunc(s.stopping, cancel)()
	start := time.Now()
	st, err := open(ctx, conn)
	if err != nil || st == nil {
		return err // nil: open told the client why there is nothing to relay
	}
	why, err := session(ctx, conn, in, st, rl)
	s.log.Debug("Docker API session ended", "path", r.URL.Path, "why", why, "err", err, "duration", time.Since(start))
	return nil
}
