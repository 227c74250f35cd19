package rest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/julienschmidt/httprouter"

	"github.com/raind/condenser/internal/detachkeys"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/rest/api"
)

// This file is the WebSocket side: a session relays between a client and
// an Attachment (a process's standard streams, in internal/frame frames).
// Everything that can fail does so before the upgrade, with an ordinary
// enveloped response: the handshake's headers and origin, the query, the
// backend's attach and, on the Raind endpoints, the terminal. After it, a
// session ends only with a WebSocket close.

// sessionReadLimit bounds one client message: a frame at its largest
// (frames may span messages, and a message may hold several).
const sessionReadLimit = frame.HeaderSize + frame.MaxPayload

// The reasons of the closes the server sends.
const (
	reasonExited   = "process exited"
	reasonDetached = "detached"
	reasonShutdown = "daemon shutting down"
	reasonLost     = "lost the process's stream"
)

// relay says how a session relays.
type relay struct {
	// framed: Condenser's endpoints, frames both ways, a text message is
	// an error. Otherwise the Raind contract's: frames from the client
	// (text messages ignored), the Stdout and Stderr payloads raw to it.
	framed bool
	stdin  bool   // the client's stdin goes on to the process (else it is dropped)
	keys   []byte // the detach keys; nil: none
}

// attachContainer is GET /v1/containers/:id/attach (the Raind contract):
// the terminal of a container created with tty.
func (s *server) attachContainer(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	if err := s.checkUpgrade(r); err != nil {
		return nil, err
	}
	ref := p.ByName("id")
	att, err := s.b.Attach(r.Context(), ref, AttachOptions{Stdin: true})
	if err != nil {
		return nil, err
	}
	if !att.Terminal() {
		_ = att.Close()
		return nil, invalidf("container %s has no terminal (it was created without tty): "+
			"its output is in its log (GET /v1/containers/%s/logs?follow=1), or attach to GET /v1/containers/%s/stdio", ref, ref, ref)
	}
	return s.session(w, r, att, relay{stdin: true})
}

// attachExec is GET /v1/containers/:id/exec/attach (the Raind contract):
// the terminal of the container's newest exec process that has one and
// runs — the one POST …/actions/exec with tty:true started last.
func (s *server) attachExec(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	if err := s.checkUpgrade(r); err != nil {
		return nil, err
	}
	ref := p.ByName("id")
	execs, err := s.b.ListExecs(r.Context(), ref)
	if err != nil {
		return nil, err
	}
	e := lastTerminal(execs)
	if e == nil {
		return nil, invalidf("container %s has no exec process with a terminal: "+
			"start one with POST /v1/containers/%s/actions/exec and {\"tty\":true}", ref, ref)
	}
	if e.ContainerID != "" {
		ref = e.ContainerID // the same container, even if its name is reused meanwhile
	}
	att, err := s.b.Attach(r.Context(), ref, AttachOptions{Exec: e.ID, Stdin: true})
	if err != nil {
		return nil, err
	}
	if !att.Terminal() {
		_ = att.Close()
		return nil, invalidf("exec process %s has no terminal", e.ID)
	}
	return s.session(w, r, att, relay{stdin: true})
}

// lastTerminal is the newest exec process with a terminal of a list,
// oldest first; nil when none. One that has already exited is still
// chosen: a short command (exec -t ls) may end before the Raind CLI
// attaches, and the shim keeps what it wrote for its first client, then
// tells its exit.
func lastTerminal(execs []api.ExecInfo) *api.ExecInfo {
	for i := len(execs) - 1; i >= 0; i-- {
		if execs[i].Tty {
			return &execs[i]
		}
	}
	return nil
}

// containerStdio is GET /v1/containers/:id/stdio (Condenser's): the
// init's standard streams, with or without a terminal.
func (s *server) containerStdio(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	return s.stdio(w, r, p.ByName("id"), "")
}

// execStdio is GET /v1/containers/:id/execs/:exec/stdio (Condenser's).
func (s *server) execStdio(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	return s.stdio(w, r, p.ByName("id"), p.ByName("exec"))
}

// stdio serves ?stdin=1&detachKeys=… on Condenser's endpoints.
func (s *server) stdio(w http.ResponseWriter, r *http.Request, ref, exec string) (*reply, error) {
	if err := s.checkUpgrade(r); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	stdin, err := queryBool(q, "stdin", false)
	if err != nil {
		return nil, err
	}
	spec := detachkeys.Default
	if vs, ok := q["detachKeys"]; ok && len(vs) > 0 {
		spec = vs[0]
	}
	keys, err := parseDetachKeys(spec)
	if err != nil {
		return nil, err
	}
	att, err := s.b.Attach(r.Context(), ref, AttachOptions{Exec: exec, Stdin: stdin})
	if err != nil {
		return nil, err
	}
	return s.session(w, r, att, relay{framed: true, stdin: stdin, keys: keys})
}

// checkUpgrade refuses, before anything is attached, what websocket.Accept
// would refuse after (in plain text): a request that is not a WebSocket
// handshake over HTTP/1.1, and one from a web page of another origin (the
// browser names it in Origin; same-origin and non-browser clients pass).
// Once Shutdown has begun, no session starts.
func (s *server) checkUpgrade(r *http.Request) error {
	if s.stopping.Err() != nil {
		return errShuttingDown
	}
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 || !hasToken(r.Header, "Connection", "upgrade") || !hasToken(r.Header, "Upgrade", "websocket") {
		return invalidf("%s is a WebSocket endpoint: connect with a WebSocket client (HTTP/1.1 GET with Connection: Upgrade and Upgrade: websocket)", r.URL.Path)
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		return invalidf("WebSocket version %q is not supported: want 13", v)
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return invalidf("a WebSocket handshake has one Sec-WebSocket-Key, not %d", len(keys))
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return invalidf("invalid Sec-WebSocket-Key %q: want 16 bytes in base64", keys[0])
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		if u, err := url.Parse(origin); err != nil || !strings.EqualFold(u.Host, r.Host) {
			return &kindError{kind: errdefs.ErrPermissionDenied,
				msg: fmt.Sprintf("WebSocket from origin %q refused: only clients of the same origin (or none) may attach", origin)}
		}
	}
	return nil
}

// hasToken reports whether a comma-separated header has token (any case).
func hasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// session upgrades the request and relays between the client and att
// until one side ends, the client detaches or Shutdown; it owns att, and
// closes it (which detaches: the process goes on).
func (s *server) session(w http.ResponseWriter, r *http.Request, att Attachment, rl relay) (*reply, error) {
	if !s.sessions.add() {
		_ = att.Close()
		return nil, errShuttingDown
	}
	defer s.sessions.done()
	// The hijacked connection may carry the server's deadlines: a session
	// lasts as long as it lasts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		// checkUpgrade lets through only what Accept takes: this is a
		// connection that cannot be hijacked. Accept has answered.
		_ = att.Close()
		s.log.Warn("websocket upgrade failed", "path", r.URL.Path, "err", err)
		return nil, nil
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	start := time.Now()
	e := runSession(ctx, conn, att, rl)
	level := slog.LevelDebug
	if e.code == websocket.StatusInternalError {
		level = slog.LevelWarn // the process's stream failed, not the client
	}
	s.log.Log(r.Context(), level, "session ended", "path", r.URL.Path, "code", int(e.code), "reason", e.reason,
		"byClient", e.byClient, "err", e.err, "duration", time.Since(start))
	return nil, nil
}

// ending is how a session ends: the close the server sends.
type ending struct {
	code   websocket.StatusCode
	reason string
	// byClient: the client closed (or went away); nothing is sent.
	byClient bool
	err      error // for the log
}

// runSession relays with one goroutine per direction and returns when
// both have stopped and the connection and att are closed. The first
// direction to end decides the close, or ctx (Shutdown) does.
func runSession(ctx context.Context, conn *websocket.Conn, att Attachment, rl relay) ending {
	conn.SetReadLimit(sessionReadLimit)
	ends := make(chan ending, 2)
	go func() { ends <- fromClient(conn, att, rl) }()
	go func() { ends <- toClient(conn, att, rl) }()
	pending := 2
	var e ending
	select {
	case e = <-ends:
		pending--
	case <-ctx.Done():
		e = ending{code: websocket.StatusGoingAway, reason: reasonShutdown}
	}
	if !e.byClient {
		// Waits (bounded) for the client's answer, which ends the reading
		// goroutine; a no-op when the connection is already gone.
		_ = conn.Close(e.code, e.reason)
	}
	_ = conn.CloseNow()
	_ = att.Close() // detaches; ends the goroutine reading it
	for ; pending > 0; pending-- {
		<-ends
	}
	return e
}

// errTextMessage is a text message on an endpoint that speaks frames.
var errTextMessage = errors.New("text message")

// fromClient relays the client's frames to the process: Stdin (scanned for
// the detach keys; dropped unless rl.stdin), Resize, CloseStdin. A
// malformed frame ends the session. Once a write to the process fails (its
// stream is ending: toClient says how), the client's input is read and
// dropped, so that its close is still answered.
func fromClient(conn *websocket.Conn, att Attachment, rl relay) ending {
	in := frame.NewReader(&messages{conn: conn, strict: rl.framed})
	scan := detachkeys.Scanner{Keys: rl.keys}
	var buf []byte
	var werr error
	send := func(typ byte, p []byte) {
		if werr == nil {
			buf = frame.Append(buf[:0], typ, p)
			_, werr = att.Write(buf)
		}
	}
	for {
		typ, p, err := in.Next()
		if err != nil {
			e := clientEnded(err)
			if e.err == nil {
				e.err = werr
			}
			return e
		}
		switch typ {
		case frame.Stdin:
			out, detached := scan.Feed(p)
			if rl.stdin && len(out) > 0 {
				send(frame.Stdin, out)
			}
			if detached {
				return ending{code: websocket.StatusNormalClosure, reason: reasonDetached, err: werr}
			}
		case frame.Resize:
			if _, _, err := frame.ParseResize(p); err != nil {
				return ending{code: websocket.StatusInvalidFramePayloadData, reason: "malformed resize frame", err: err}
			}
			send(frame.Resize, p)
		case frame.CloseStdin:
			if len(p) != 0 {
				return ending{code: websocket.StatusInvalidFramePayloadData, reason: "malformed close-stdin frame"}
			}
			if rl.stdin {
				if held := scan.Flush(); len(held) > 0 {
					send(frame.Stdin, held)
				}
				send(frame.CloseStdin, nil)
			}
		default:
			return ending{code: websocket.StatusUnsupportedData, reason: fmt.Sprintf("unknown frame type %d", typ)}
		}
	}
}

// clientEnded is the ending of a client's input that failed with err.
func clientEnded(err error) ending {
	switch {
	case websocket.CloseStatus(err) != -1:
		return ending{byClient: true, code: websocket.CloseStatus(err)}
	case errors.Is(err, errTextMessage):
		return ending{code: websocket.StatusUnsupportedData, reason: "frames travel in binary messages, not text"}
	case errors.Is(err, frame.ErrTooLarge):
		return ending{code: websocket.StatusInvalidFramePayloadData, reason: "frame too large", err: err}
	}
	// The connection failed (the library has closed it): the client is
	// gone.
	return ending{byClient: true, code: websocket.StatusAbnormalClosure, err: err}
}

// toClient relays the process's output to the client: the frames as they
// are (rl.framed) or the Stdout and Stderr payloads raw. After the Exit
// frame (relayed when framed) the session ends normally.
func toClient(conn *websocket.Conn, att Attachment, rl relay) ending {
	out := frame.NewReader(att)
	var buf []byte
	// Writes are not bounded by a context (an expired one would cut the
	// connection without a close): the session's end closes the
	// connection, which ends a write stuck on a client that does not read.
	ctx := context.Background()
	for {
		typ, p, err := out.Next()
		if err != nil {
			return ending{code: websocket.StatusInternalError, reason: reasonLost, err: err}
		}
		switch typ {
		case frame.Stdout, frame.Stderr, frame.Exit:
		default:
			continue // not the client's
		}
		msg := p
		if rl.framed {
			buf = frame.Append(buf[:0], typ, p)
			msg = buf
		}
		if (rl.framed || typ != frame.Exit) && len(msg) > 0 {
			if err := conn.Write(ctx, websocket.MessageBinary, msg); err != nil {
				return ending{byClient: true, code: websocket.StatusAbnormalClosure, err: err}
			}
		}
		if typ == frame.Exit {
			return ending{code: websocket.StatusNormalClosure, reason: reasonExited}
		}
	}
}

// messages reads a client's binary messages as one stream of bytes: the
// frames a client sends may span messages, and a message may hold several.
// Text messages are ignored, or an error (errTextMessage) when strict. It
// never returns io.EOF: the stream ends with the connection's error (a
// websocket.CloseError when the client closed).
type messages struct {
	conn   *websocket.Conn
	strict bool
	cur    io.Reader // the message being read
}

func (m *messages) Read(p []byte) (int, error) {
	for {
		if m.cur == nil {
			// Not bounded by a context, as the writes: the session's end
			// closes the connection.
			typ, r, err := m.conn.Reader(context.Background())
			if err != nil {
				return 0, err
			}
			if typ != websocket.MessageBinary {
				if m.strict {
					return 0, errTextMessage
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					return 0, err
				}
				continue
			}
			m.cur = r
		}
		n, err := m.cur.Read(p)
		if errors.Is(err, io.EOF) {
			m.cur, err = nil, nil
			if n == 0 {
				continue
			}
		}
		return n, err
	}
}

// parseDetachKeys reads a detach-key sequence in Docker's syntax
// (internal/detachkeys); "" is none: the keys do not detach.
func parseDetachKeys(spec string) ([]byte, error) {
	keys, err := detachkeys.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("detachKeys=%q (empty: no detach keys): %w", spec, err)
	}
	return keys, nil
}

// sessionSet counts the WebSocket sessions, whose connections are
// hijacked: http.Server.Shutdown does not wait for them (Handler.Wait
// does), and after Handler.Shutdown none starts.
type sessionSet struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // closed while n == 0
}

func newSessionSet() *sessionSet {
	idle := make(chan struct{})
	close(idle)
	return &sessionSet{idle: idle}
}

// add counts a session in, unless the set is closed.
func (s *sessionSet) add() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.n == 0 {
		s.idle = make(chan struct{})
	}
	s.n++
	return true
}

func (s *sessionSet) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n--
	if s.n == 0 {
		close(s.idle)
	}
}

// close refuses new sessions.
func (s *sessionSet) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// wait waits until no session is left, or ctx is done.
func (s *sessionSet) wait(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
