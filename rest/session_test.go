package rest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/rest/api"
)

// ---- a process on in-memory pipes ----

// pipeAttachment is an Attachment over in-memory pipes: the test plays the
// process, emitting its frames (emit) and taking those the session relays
// to it (want). Close detaches: the process's emits fail and its input
// ends (wantEnd).
type pipeAttachment struct {
	terminal   bool
	outR       *io.PipeReader // the session reads the process's frames here
	outW       *io.PipeWriter
	inW        *io.PipeWriter // the session writes the client's frames here
	in         chan gotFrame  // the frames the process got; closed once detached
	closed     chan struct{}
	closeOnce  sync.Once
	readerDone chan struct{}
}

type gotFrame struct {
	typ     byte
	payload string
}

func newPipeAttachment(terminal bool) *pipeAttachment {
	a := &pipeAttachment{terminal: terminal, in: make(chan gotFrame, 1000), closed: make(chan struct{}), readerDone: make(chan struct{})}
	a.outR, a.outW = io.Pipe()
	inR, inW := io.Pipe()
	a.inW = inW
	// The attachment owns this reader: Close ends its input, and it.
	go func() {
		defer close(a.in)
		fr := frame.NewReader(inR)
		for {
			typ, p, err := fr.Next()
			if err != nil {
				return
			}
			a.in <- gotFrame{typ, string(p)}
		}
	}()
	return a
}

func (a *pipeAttachment) Read(p []byte) (int, error)  { return a.outR.Read(p) }
func (a *pipeAttachment) Write(p []byte) (int, error) { return a.inW.Write(p) }
func (a *pipeAttachment) Terminal() bool              { return a.terminal }

func (a *pipeAttachment) Close() error {
	a.closeOnce.Do(func() {
		a.outR.Close()
		a.inW.Close()
		close(a.closed)
	})
	return nil
}

func (a *pipeAttachment) isClosed() bool {
	select {
	case <-a.closed:
		return true
	default:
		return false
	}
}

// emit sends one frame from the process; it returns once the session has
// read it.
func (a *pipeAttachment) emit(t *testing.T, typ byte, payload []byte) {
	t.Helper()
	if err := frame.Write(a.outW, typ, payload); err != nil {
		t.Fatalf("the process's frame %d %q: %v", typ, payload, err)
	}
}

// want takes the next frame the process got.
func (a *pipeAttachment) want(t *testing.T, typ byte, payload string) {
	t.Helper()
	select {
	case f, ok := <-a.in:
		if !ok {
			t.Fatalf("the process's input ended; want frame %d %q", typ, payload)
		}
		if f.typ != typ || f.payload != payload {
			t.Fatalf("the process got frame %d %q, want %d %q", f.typ, f.payload, typ, payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no frame for the process; want %d %q", typ, payload)
	}
}

// wantEnd checks that the process gets no other frame and that the session
// has detached.
func (a *pipeAttachment) wantEnd(t *testing.T) {
	t.Helper()
	select {
	case f, ok := <-a.in:
		if ok {
			t.Fatalf("the process got frame %d %q, want the end of its input (detached)", f.typ, f.payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not detach")
	}
}

// ---- a client ----

// sessionServer serves f over a real HTTP server (a WebSocket needs a
// connection to hijack) and checks, once the test is over, that no
// goroutine is left.
func sessionServer(t *testing.T, f *fake) (*httptest.Server, *Handler) {
	t.Helper()
	baseline := runtime.NumGoroutine()
	h, logs := newTestHandler(f)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		waitGoroutines(t, baseline)
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	})
	return srv, h.(*Handler)
}

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

// dial opens a session.
func dial(t *testing.T, srv *httptest.Server, path string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(srv, path), nil)
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		t.Fatalf("dial %s: %v %s", path, err, body)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// refusal dials path, which must be refused before the upgrade, and returns
// the status and the envelope.
func refusal(t *testing.T, srv *httptest.Server, path string, header http.Header) (int, envelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(srv, path), &websocket.DialOptions{HTTPHeader: header})
	if err == nil {
		c.CloseNow()
		t.Fatalf("%s: upgraded, want a refusal", path)
	}
	if resp == nil {
		t.Fatalf("%s: %v", path, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: refusal's Content-Type %q, want the envelope's", path, ct)
	}
	b, _ := io.ReadAll(resp.Body)
	env := decodeEnvelope(t, b)
	if env.Status != api.StatusFail {
		t.Errorf("%s: envelope %+v", path, env)
	}
	return resp.StatusCode, env
}

func send(t *testing.T, c *websocket.Conn, typ websocket.MessageType, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, b); err != nil {
		t.Fatalf("client write: %v", err)
	}
}

// frames concatenates frames: type, payload, type, payload…
func frames(parts ...any) []byte {
	var b []byte
	for i := 0; i+1 < len(parts); i += 2 {
		var p []byte
		switch v := parts[i+1].(type) {
		case string:
			p = []byte(v)
		case []byte:
			p = v
		}
		b = frame.Append(b, parts[i].(byte), p)
	}
	return b
}

// readMsg reads the next message, which must be a binary one.
func readMsg(t *testing.T, c *websocket.Conn) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	if typ != websocket.MessageBinary {
		t.Fatalf("a %v message %q, want binary", typ, b)
	}
	return b
}

func wantMsg(t *testing.T, c *websocket.Conn, want []byte) {
	t.Helper()
	if got := readMsg(t, c); !bytes.Equal(got, want) {
		t.Fatalf("client got %q, want %q", got, want)
	}
}

// wantClose reads the server's close, with no message before it.
func wantClose(t *testing.T, c *websocket.Conn, code websocket.StatusCode, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err == nil {
		t.Fatalf("client got %q, want the close %d %q", b, code, reason)
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("client read %v, want the close %d %q", err, code, reason)
	}
	if ce.Code != code || ce.Reason != reason {
		t.Fatalf("close %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
	}
}

// attachTo makes f's Attach answer att.
func attachTo(att ...*pipeAttachment) func(context.Context, string, AttachOptions) (Attachment, error) {
	var mu sync.Mutex
	return func(context.Context, string, AttachOptions) (Attachment, error) {
		mu.Lock()
		defer mu.Unlock()
		a := att[0]
		att = att[1:]
		return a, nil
	}
}

// ---- the Raind contract ----

// Raind's attach: frames from the client, whatever the messages that
// carry them (text ignored); the terminal's bytes raw to it; close 1000
// when the process exits.
func TestRaindAttachRelaysRawBytes(t *testing.T) {
	att := newPipeAttachment(true)
	f := &fake{attach: attachTo(att)}
	srv, _ := sessionServer(t, f)
	c := dial(t, srv, "/v1/containers/web/attach")

	// Two frames in one message; one frame over two messages, with a text
	// message between them.
	send(t, c, websocket.MessageBinary, frames(frame.Stdin, "ls\n", frame.Resize, frame.ResizePayload(24, 80)))
	att.want(t, frame.Stdin, "ls\n")
	att.want(t, frame.Resize, string(frame.ResizePayload(24, 80)))
	split := frames(frame.Stdin, "hello")
	send(t, c, websocket.MessageBinary, split[:3])
	send(t, c, websocket.MessageText, []byte(`{"ignored":true}`))
	send(t, c, websocket.MessageBinary, split[3:])
	att.want(t, frame.Stdin, "hello")

	att.emit(t, frame.Stdout, []byte("$ "))
	wantMsg(t, c, []byte("$ "))
	att.emit(t, frame.Stderr, []byte("\x1b[31moops"))
	wantMsg(t, c, []byte("\x1b[31moops"))
	att.emit(t, frame.Exit, frame.ExitPayload(0))
	wantClose(t, c, websocket.StatusNormalClosure, reasonExited)
	att.wantEnd(t)
	if calls := f.called(); !slices.Equal(calls, []string{"Attach web exec= stdin=true"}) {
		t.Errorf("calls %q", calls)
	}
}

// The Raind CLI detaches by closing (1001 "detached"): the session closes
// its stream, sending no close-stdin; the container goes on.
func TestRaindClientDetaches(t *testing.T) {
	att := newPipeAttachment(true)
	srv, _ := sessionServer(t, &fake{attach: attachTo(att)})
	c := dial(t, srv, "/v1/containers/web/attach")
	send(t, c, websocket.MessageBinary, frames(frame.Stdin, "x"))
	att.want(t, frame.Stdin, "x")
	if err := c.Close(websocket.StatusGoingAway, "detached"); err != nil {
		t.Fatalf("client close: %v", err)
	}
	att.wantEnd(t)
}

// Raind's exec attach takes the newest exec process that has a terminal,
// in the container the list names — also one that has exited already (a
// short command ends before the Raind CLI attaches: the shim kept its
// output for the first client).
func TestRaindExecAttach(t *testing.T) {
	att := newPipeAttachment(true)
	f := &fake{attach: attachTo(att), execs: []api.ExecInfo{
		{ID: "e1", ContainerID: testID, Tty: true, Running: true},
		{ID: "e2", ContainerID: testID, Tty: true, Running: false},
		{ID: "e3", ContainerID: testID, Tty: false, Running: true},
	}}
	srv, _ := sessionServer(t, f)
	c := dial(t, srv, "/v1/containers/web/exec/attach")
	att.emit(t, frame.Stdout, []byte("# "))
	wantMsg(t, c, []byte("# "))
	att.emit(t, frame.Exit, frame.ExitPayload(130))
	wantClose(t, c, websocket.StatusNormalClosure, reasonExited)
	att.wantEnd(t)
	if calls := f.called(); !slices.Equal(calls, []string{"ListExecs web", "Attach " + testID + " exec=e2 stdin=true"}) {
		t.Errorf("calls %q", calls)
	}
}

// Whatever can fail does before the upgrade, with a status and an
// envelope.
func TestSessionRefusedBeforeUpgrade(t *testing.T) {
	noTerminal := newPipeAttachment(false)
	for _, tc := range []struct {
		name    string
		f       *fake
		path    string
		header  http.Header
		status  int
		message string
		calls   []string
	}{
		{"attach: no terminal", &fake{attach: attachTo(noTerminal)}, "/v1/containers/web/attach", nil,
			400, "container web has no terminal", []string{"Attach web exec= stdin=true"}},
		{"attach: no such container", &fake{err: fmt.Errorf("no such container: nope: %w", errdefs.ErrNotFound)}, "/v1/containers/nope/attach", nil,
			404, "no such container: nope: not found", []string{"Attach nope exec= stdin=true"}},
		{"attach: stopped", &fake{err: fmt.Errorf("cannot attach to container web: it is stopped: %w", errdefs.ErrConflict)}, "/v1/containers/web/attach", nil,
			409, "it is stopped", []string{"Attach web exec= stdin=true"}},
		{"exec attach: none with a terminal", &fake{execs: []api.ExecInfo{{ID: "e1", Tty: false, Running: true}, {ID: "e2", Tty: false}}},
			"/v1/containers/web/exec/attach", nil, 400, "no exec process with a terminal", []string{"ListExecs web"}},
		{"exec attach: no exec at all", &fake{execs: []api.ExecInfo{}}, "/v1/containers/web/exec/attach", nil,
			400, "no exec process with a terminal", []string{"ListExecs web"}},
		{"stdio: stopped", &fake{err: fmt.Errorf("it is stopped: %w", errdefs.ErrConflict)}, "/v1/containers/web/stdio", nil,
			409, "it is stopped", []string{"Attach web exec= stdin=false"}},
		{"stdio: unknown exec", &fake{err: fmt.Errorf("no exec process x: %w", errdefs.ErrNotFound)}, "/v1/containers/web/execs/x/stdio?stdin=1", nil,
			404, "no exec process x", []string{"Attach web exec=x stdin=true"}},
		{"stdio: bad detach keys", &fake{}, "/v1/containers/web/stdio?detachKeys=ctrl-1", nil, 400, `"ctrl-1" is not a key`, nil},
		{"stdio: bad stdin", &fake{}, "/v1/containers/web/stdio?stdin=perhaps", nil, 400, "stdin", nil},
		{"another origin", &fake{}, "/v1/containers/web/attach", http.Header{"Origin": {"https://evil.example"}}, 403, "origin", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := sessionServer(t, tc.f)
			status, env := refusal(t, srv, tc.path, tc.header)
			if status != tc.status || !strings.Contains(env.Message, tc.message) {
				t.Errorf("%d %q, want %d with %q", status, env.Message, tc.status, tc.message)
			}
			if calls := tc.f.called(); !slices.Equal(calls, tc.calls) {
				t.Errorf("calls %q, want %q", calls, tc.calls)
			}
		})
	}
	if !noTerminal.isClosed() {
		t.Error("the attachment refused for want of a terminal was not closed")
	}
}

// ---- Condenser's stdio ----

// Frames both ways: stdin, close-stdin and resize to the process; stdout,
// stderr and the exit frame to the client, then close 1000.
func TestStdioRelaysFrames(t *testing.T) {
	att := newPipeAttachment(false)
	f := &fake{attach: attachTo(att)}
	srv, _ := sessionServer(t, f)
	c := dial(t, srv, "/v1/containers/web/stdio?stdin=1")

	send(t, c, websocket.MessageBinary, frames(frame.Stdin, "abc", frame.Resize, frame.ResizePayload(50, 132), frame.CloseStdin, ""))
	att.want(t, frame.Stdin, "abc")
	att.want(t, frame.Resize, string(frame.ResizePayload(50, 132)))
	att.want(t, frame.CloseStdin, "")

	att.emit(t, frame.Stdout, []byte("out\n"))
	wantMsg(t, c, frames(frame.Stdout, "out\n"))
	att.emit(t, frame.Stderr, []byte("err\n"))
	wantMsg(t, c, frames(frame.Stderr, "err\n"))
	att.emit(t, frame.Stdout, nil)
	wantMsg(t, c, frames(frame.Stdout, ""))
	att.emit(t, frame.Exit, frame.ExitPayload(3))
	wantMsg(t, c, frames(frame.Exit, frame.ExitPayload(3)))
	wantClose(t, c, websocket.StatusNormalClosure, reasonExited)
	att.wantEnd(t)
	if calls := f.called(); !slices.Equal(calls, []string{"Attach web exec= stdin=true"}) {
		t.Errorf("calls %q", calls)
	}
}

// Without stdin=1 the client's input is dropped (resizes still go on); a
// client that just closes detaches, sending no close-stdin.
func TestStdioWithoutStdin(t *testing.T) {
	att := newPipeAttachment(true)
	f := &fake{attach: attachTo(att)}
	srv, _ := sessionServer(t, f)
	c := dial(t, srv, "/v1/containers/web/execs/"+testExecID+"/stdio")
	send(t, c, websocket.MessageBinary, frames(frame.Stdin, "dropped", frame.CloseStdin, "", frame.Resize, frame.ResizePayload(1, 2)))
	att.want(t, frame.Resize, string(frame.ResizePayload(1, 2)))
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("client close: %v", err)
	}
	att.wantEnd(t)
	if calls := f.called(); !slices.Equal(calls, []string{"Attach web exec=" + testExecID + " stdin=false"}) {
		t.Errorf("calls %q", calls)
	}
}

// The detach keys end the session with 1000 "detached": the bytes before
// them are delivered, those after are not, and a partial match goes on
// when the next byte does not complete it.
func TestStdioDetachKeys(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		att := newPipeAttachment(true)
		srv, _ := sessionServer(t, &fake{attach: attachTo(att)})
		c := dial(t, srv, "/v1/containers/web/stdio?stdin=1")
		send(t, c, websocket.MessageBinary, frames(frame.Stdin, "hi\x10"))
		att.want(t, frame.Stdin, "hi") // ctrl-p held back
		send(t, c, websocket.MessageBinary, frames(frame.Stdin, "x"))
		att.want(t, frame.Stdin, "\x10x") // not ctrl-q: it goes on
		send(t, c, websocket.MessageBinary, frames(frame.Stdin, "\x10", frame.CloseStdin, ""))
		att.want(t, frame.Stdin, "\x10") // the input ends: what was held goes first
		att.want(t, frame.CloseStdin, "")
		send(t, c, websocket.MessageBinary, frames(frame.Stdin, "bye\x10"))
		att.want(t, frame.Stdin, "bye")
		send(t, c, websocket.MessageBinary, frames(frame.Stdin, "\x11after"))
		wantClose(t, c, websocket.StatusNormalClosure, reasonDetached)
		att.wantEnd(t)
	})
	t.Run("custom", func(t *testing.T) {
		att := newPipeAttachment(false)
		srv, _ := sessionServer(t, &fake{attach: attachTo(att)})
		c := dial(t, srv, "/v1/containers/web/stdio?stdin=1&detachKeys=ctrl-a,d")
		send(t, c, websocket.MessageBinary, frames(frame.Stdin, "\x10\x11\x01x"))
		att.want(t, frame.Stdin, "\x10\x11\x01x")
		send(t, c, websocket.MessageBinary, frames(frame.Stdin, "ok\x01d"))
		att.want(t, frame.Stdin, "ok")
		wantClose(t, c, websocket.StatusNormalClosure, reasonDetached)
		att.wantEnd(t)
	})
	t.Run("disabled", func(t *testing.T) {
		att := newPipeAttachment(true)
		srv, _ := sessionServer(t, &fake{attach: attachTo(att)})
		c := dial(t, srv, "/v1/containers/web/stdio?stdin=1&detachKeys=")
		send(t, c, websocket.MessageBinary, frames(frame.Stdin, "\x10\x11"))
		att.want(t, frame.Stdin, "\x10\x11")
		att.emit(t, frame.Exit, frame.ExitPayload(0))
		wantMsg(t, c, frames(frame.Exit, frame.ExitPayload(0)))
		wantClose(t, c, websocket.StatusNormalClosure, reasonExited)
	})
	t.Run("without stdin", func(t *testing.T) {
		// The keys detach even when the input is not the process's.
		att := newPipeAttachment(true)
		srv, _ := sessionServer(t, &fake{attach: attachTo(att)})
		c := dial(t, srv, "/v1/containers/web/stdio")
		send(t, c, websocket.MessageBinary, frames(frame.Stdin, "\x10\x11"))
		wantClose(t, c, websocket.StatusNormalClosure, reasonDetached)
		att.wantEnd(t)
	})
}

// A client that does not speak the protocol ends its session: an unknown
// frame type or a text message (on Condenser's endpoints) with 1003, a
// malformed or oversized frame with 1007. Nothing of it reaches the
// process.
func TestMalformedClientFrames(t *testing.T) {
	tooLarge := []byte{frame.Stdin, 0xff, 0xff, 0xff, 0xff}
	for _, tc := range []struct {
		name string
		path string
		typ  websocket.MessageType
		msg  []byte
		code websocket.StatusCode
	}{
		{"unknown frame type", "/v1/containers/web/stdio?stdin=1", websocket.MessageBinary, frames(byte(9), "x"), websocket.StatusUnsupportedData},
		{"unknown frame type (Raind)", "/v1/containers/web/attach", websocket.MessageBinary, frames(byte(3), ""), websocket.StatusUnsupportedData},
		{"text message", "/v1/containers/web/stdio?stdin=1", websocket.MessageText, []byte("ls\n"), websocket.StatusUnsupportedData},
		{"short resize", "/v1/containers/web/stdio", websocket.MessageBinary, frames(frame.Resize, "\x00\x18\x00"), websocket.StatusInvalidFramePayloadData},
		{"long resize (Raind)", "/v1/containers/web/attach", websocket.MessageBinary, frames(frame.Resize, "\x00\x18\x00\x50\x00"), websocket.StatusInvalidFramePayloadData},
		{"close-stdin with a payload", "/v1/containers/web/stdio?stdin=1", websocket.MessageBinary, frames(frame.CloseStdin, "x"), websocket.StatusInvalidFramePayloadData},
		{"frame too large", "/v1/containers/web/stdio?stdin=1", websocket.MessageBinary, tooLarge, websocket.StatusInvalidFramePayloadData},
		{"frame too large (Raind)", "/v1/containers/web/attach", websocket.MessageBinary, tooLarge, websocket.StatusInvalidFramePayloadData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			att := newPipeAttachment(true)
			srv, _ := sessionServer(t, &fake{attach: attachTo(att)})
			c := dial(t, srv, tc.path)
			send(t, c, tc.typ, tc.msg)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, b, err := c.Read(ctx)
			if got := websocket.CloseStatus(err); got != tc.code {
				t.Fatalf("read %q, %v; want the close %d", b, err, tc.code)
			}
			att.wantEnd(t)
		})
	}
}

// A process's stream that ends without its exit status is an error of the
// server's (1011).
func TestSessionStreamLost(t *testing.T) {
	att := newPipeAttachment(false)
	srv, _ := sessionServer(t, &fake{attach: attachTo(att)})
	c := dial(t, srv, "/v1/containers/web/stdio")
	att.emit(t, frame.Stdout, []byte("partial"))
	wantMsg(t, c, frames(frame.Stdout, "partial"))
	att.outW.Close()
	wantClose(t, c, websocket.StatusInternalError, reasonLost)
	att.wantEnd(t)
}

// A frame as large as the protocol allows passes, both ways, over the
// client's messages and the server's (above the library's default read
// limit of 32 KiB).
func TestSessionLargeFrames(t *testing.T) {
	att := newPipeAttachment(false)
	srv, _ := sessionServer(t, &fake{attach: attachTo(att)})
	c := dial(t, srv, "/v1/containers/web/stdio?stdin=1&detachKeys=")
	big := bytes.Repeat([]byte("0123456789abcdef"), frame.MaxPayload/16)
	send(t, c, websocket.MessageBinary, frames(frame.Stdin, big))
	att.want(t, frame.Stdin, string(big))
	att.emit(t, frame.Stdout, big)
	wantMsg(t, c, frames(frame.Stdout, big))
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	att.wantEnd(t)
}

// Shutdown closes every session with 1001 and lets no new one start;
// Handler.Wait returns once they are gone. The processes go on: their
// streams are closed, not their stdin.
func TestShutdownClosesSessions(t *testing.T) {
	baseline := runtime.NumGoroutine()
	raind, stdio := newPipeAttachment(true), newPipeAttachment(false)
	f := &fake{attach: attachTo(raind, stdio)}
	h := NewHandler(f, nil)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.RegisterOnShutdown(h.Shutdown)
	srv.Start()
	defer func() {
		srv.Close()
		waitGoroutines(t, baseline)
	}()
	c1 := dial(t, srv, "/v1/containers/web/attach")
	c2 := dial(t, srv, "/v1/containers/web/stdio?stdin=1")
	send(t, c2, websocket.MessageBinary, frames(frame.Stdin, "x"))
	stdio.want(t, frame.Stdin, "x") // both sessions are relaying

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("server shutdown: %v", err)
	}
	wantClose(t, c1, websocket.StatusGoingAway, reasonShutdown)
	wantClose(t, c2, websocket.StatusGoingAway, reasonShutdown)
	if err := h.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	raind.wantEnd(t)
	stdio.wantEnd(t)

	// A handler that is shutting down starts no session: 503 before any
	// attach (on a server of its own, the first one being closed).
	srv2 := httptest.NewServer(h)
	defer srv2.Close()
	status, env := refusal(t, srv2, "/v1/containers/web/stdio", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(env.Message, "shutting down") {
		t.Errorf("a session after Shutdown: %d %+v", status, env)
	}
	if calls := f.called(); len(calls) != 2 {
		t.Errorf("calls %q: a session after Shutdown reached the backend", calls)
	}
}

// ---- detach keys ----

func TestParseDetachKeys(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []byte
		err  bool
	}{
		{"ctrl-p,ctrl-q", []byte{16, 17}, false},
		{"", nil, false},
		{"a", []byte{'a'}, false},
		{"ctrl-a,d", []byte{1, 'd'}, false},
		{"ctrl-z", []byte{26}, false},
		{`ctrl-@,ctrl-[,ctrl-\,ctrl-],ctrl-^,ctrl-_`, []byte{0, 27, 28, 29, 30, 31}, false},
		{"CTRL-P,Ctrl-q", []byte{16, 17}, false},
		{"x,y,z", []byte{'x', 'y', 'z'}, false},
		{" ", []byte{' '}, false},
		{"\xff", []byte{0xff}, false},
		{",", nil, true},
		{"ctrl-p,", nil, true},
		{",ctrl-p", nil, true},
		{"ctrl-p,,ctrl-q", nil, true},
		{"ctrl-", nil, true},
		{"ctrl-1", nil, true},
		{"ctrl-pp", nil, true},
		{"ctrl-{", nil, true},
		{"ctrl-`", nil, true},
		{"ctrl+p", nil, true},
		{"ab", nil, true},
		{"é", nil, true},
		{"ctrl-p ,ctrl-q", nil, true},
	} {
		got, err := parseDetachKeys(tc.spec)
		if (err != nil) != tc.err || !bytes.Equal(got, tc.want) {
			t.Errorf("parseDetachKeys(%q) = %v, %v; want %v (error: %v)", tc.spec, got, err, tc.want, tc.err)
		}
		if err != nil && statusOf(err) != http.StatusBadRequest {
			t.Errorf("parseDetachKeys(%q): %v is not a 400", tc.spec, err)
		}
	}
}
