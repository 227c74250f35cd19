package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/shim/logging"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/oci"
)

// streamsFake is the supervisor as the stream handlers see it: one
// container, whose streams the test plays the shim of (shim).
type streamsFake struct {
	mu       sync.Mutex
	c        *supervisor.Container
	tty      bool
	shim     chan net.Conn // the shim's end of each Attach
	attached []supervisor.AttachOptions
	execs    []supervisor.ExecRequest
	execErr  error
	state    client.ExecProcess
	log      []logging.Entry
	resized  []string
}

func newStreamsFake(tty bool, state supervisor.State) *streamsFake {
	return &streamsFake{
		c: &supervisor.Container{ID: "c1id", Name: "c1", State: state,
			Request: supervisor.CreateRequest{OpenStdin: true, Config: oci.Config{Tty: tty}}},
		tty:  tty,
		shim: make(chan net.Conn, 4),
	}
}

func (f *streamsFake) Get(_ context.Context, ref string) (*supervisor.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.c == nil || (ref != f.c.ID && ref != f.c.Name) {
		return nil, fmt.Errorf("container %s: %w", ref, errdefs.ErrNotFound)
	}
	c := *f.c
	return &c, nil
}

func (f *streamsFake) Attach(ctx context.Context, ref string, o supervisor.AttachOptions) (supervisor.Stream, error) {
	if _, err := f.Get(ctx, ref); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.attached = append(f.attached, o)
	f.mu.Unlock()
	daemon, shim := net.Pipe()
	f.shim <- shim
	return &fakeStream{Conn: daemon, tty: f.tty}, nil
}

func (f *streamsFake) Resize(ctx context.Context, ref, exec string, rows, cols uint16) error {
	if _, err := f.Get(ctx, ref); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resized = append(f.resized, fmt.Sprintf("%s %dx%d", exec, rows, cols))
	return nil
}

func (f *streamsFake) Exec(ctx context.Context, ref string, r supervisor.ExecRequest) (string, error) {
	if _, err := f.Get(ctx, ref); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.execErr != nil {
		return "", f.execErr
	}
	f.execs = append(f.execs, r)
	return fmt.Sprintf("proc%d", len(f.execs)), nil
}

func (f *streamsFake) ExecState(ctx context.Context, ref, exec string) (client.ExecProcess, *supervisor.Container, error) {
	c, err := f.Get(ctx, ref)
	if err != nil {
		return client.ExecProcess{}, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, c, nil
}

func (f *streamsFake) Logs(ctx context.Context, ref string, o supervisor.LogOptions, fn func(logging.Entry) error) error {
	if _, err := f.Get(ctx, ref); err != nil {
		return err
	}
	f.mu.Lock()
	log := append([]logging.Entry(nil), f.log...)
	f.mu.Unlock()
	if o.Tail >= 0 && o.Tail < len(log) {
		log = log[len(log)-o.Tail:]
	}
	for _, e := range log {
		if e.Stream == "stdout" && !o.Stdout || e.Stream == "stderr" && !o.Stderr || e.Time.Before(o.Since) {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if o.Follow {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// fakeStream is the daemon's end of an attached stream.
type fakeStream struct {
	net.Conn
	tty bool
}

func (s *fakeStream) CloseWrite() error { return nil }
func (s *fakeStream) Terminal() bool    { return s.tty }

// streamsServer serves the Docker API over f.
func streamsServer(t *testing.T, f *streamsFake) *httptest.Server {
	t.Helper()
	h := NewHandler(Deps{Streams: f}, nil)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.RegisterOnShutdown(h.Shutdown)
	srv.Start()
	t.Cleanup(func() { h.Shutdown(); srv.Close() })
	return srv
}

// hijacked sends a request that upgrades and returns the connection, its
// response and a reader of what follows.
func hijacked(t *testing.T, srv *httptest.Server, method, path, body string) (*net.TCPConn, *http.Response, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n%s",
		method, path, len(body), body)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn), resp, br
}

// nextShim is the shim's end of the next Attach.
func (f *streamsFake) nextShim(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-f.shim:
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no attach")
		return nil
	}
}

func TestStdWriter(t *testing.T) {
	var b bytes.Buffer
	sw := &stdWriter{w: &b}
	sw.write(frame.Stdout, []byte("out\n"))
	sw.write(frame.Stderr, []byte("err\n"))
	sw.write(frame.Stdout, nil) // nothing: an empty frame would be noise
	want := []byte{1, 0, 0, 0, 0, 0, 0, 4, 'o', 'u', 't', '\n', 2, 0, 0, 0, 0, 0, 0, 4, 'e', 'r', 'r', '\n'}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("framed % x, want % x", b.Bytes(), want)
	}
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, bytes.NewReader(b.Bytes())); err != nil || out.String() != "out\n" || errb.String() != "err\n" {
		t.Fatalf("stdcopy: %q %q %v", out.String(), errb.String(), err)
	}
	big := bytes.Repeat([]byte("x"), 70000)
	b.Reset()
	sw.write(frame.Stderr, big)
	if n := binary.BigEndian.Uint32(b.Bytes()[4:8]); n != 70000 || b.Len() != 8+70000 {
		t.Fatalf("big frame: length %d, %d bytes", n, b.Len())
	}
	b.Reset()
	raw := &stdWriter{w: &b, tty: true}
	raw.write(frame.Stdout, []byte("a"))
	raw.write(frame.Stderr, []byte("b"))
	if b.String() != "ab" {
		t.Fatalf("raw: %q", b.String())
	}
}

// TestAttachHalfClose: the client's input reaches the process as Stdin,
// its CloseWrite as CloseStdin; the output still flows, framed, and the
// connection closes after the process's exit.
func TestAttachHalfClose(t *testing.T) {
	f := newStreamsFake(false, supervisor.StateCreated)
	srv := streamsServer(t, f)
	conn, resp, br := hijacked(t, srv, "POST", "/v1.50/containers/c1/attach?stream=1&stdin=1&stdout=1&stderr=1", "")
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Content-Type") != "application/vnd.docker.multiplexed-stream" {
		t.Fatalf("answer %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	shim := f.nextShim(t)
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	conn.CloseWrite()
	fr := frame.NewReader(shim)
	var stdin []byte
	for {
		typ, p, err := fr.Next()
		if err != nil {
			t.Fatalf("shim read: %v (stdin so far %q)", err, stdin)
		}
		if typ == frame.CloseStdin {
			break
		}
		if typ != frame.Stdin {
			t.Fatalf("frame type %d", typ)
		}
		stdin = append(stdin, p...)
	}
	if string(stdin) != "hello" {
		t.Fatalf("stdin %q", stdin)
	}
	// After the half-close, output still reaches the client.
	frame.Write(shim, frame.Stdout, []byte("out\n"))
	frame.Write(shim, frame.Stderr, []byte("err\n"))
	frame.Write(shim, frame.Exit, frame.ExitPayload(3))
	all, _ := io.ReadAll(br)
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, bytes.NewReader(all)); err != nil {
		t.Fatalf("stdcopy: %v", err)
	}
	if out.String() != "out\n" || errb.String() != "err\n" {
		t.Fatalf("out %q err %q", out.String(), errb.String())
	}
	if o := f.attached[0]; !o.Stdin || o.Exec != "" {
		t.Fatalf("attach options %+v", o)
	}
}

// TestAttachTTYDetach: a terminal's output is raw, and the detach keys
// end the session (the process goes on: the stream is closed, no
// CloseStdin is sent).
func TestAttachTTYDetach(t *testing.T) {
	f := newStreamsFake(true, supervisor.StateRunning)
	srv := streamsServer(t, f)
	conn, resp, br := hijacked(t, srv, "POST", "/containers/c1/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-x", "")
	if resp.Header.Get("Content-Type") != "application/vnd.docker.raw-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	shim := f.nextShim(t)
	frame.Write(shim, frame.Stdout, []byte("$ "))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "$ " {
		t.Fatalf("read %q %v", buf, err)
	}
	conn.Write([]byte("ls\x18more"))
	fr := frame.NewReader(shim)
	typ, p, err := fr.Next()
	if err != nil || typ != frame.Stdin || string(p) != "ls" {
		t.Fatalf("stdin frame %d %q %v", typ, p, err)
	}
	if _, _, err := fr.Next(); err == nil {
		t.Fatal("the stream stays open after the detach keys")
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after detach: %q %v", rest, err)
	}
}

// TestAttachLogs: logs=1 sends the past log first; stream=0 closes after.
func TestAttachLogs(t *testing.T) {
	f := newStreamsFake(false, supervisor.StateStopped)
	f.log = []logging.Entry{{Log: "one\n", Stream: "stdout"}, {Log: "two\n", Stream: "stderr"}}
	srv := streamsServer(t, f)
	_, resp, br := hijacked(t, srv, "POST", "/v1.41/containers/c1/attach?logs=1&stream=1&stdout=1&stderr=1", "")
	if resp.Header.Get("Content-Type") != "application/vnd.docker.raw-stream" {
		t.Fatalf("content type for 1.41: %q", resp.Header.Get("Content-Type"))
	}
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, br); err != nil || out.String() != "one\n" || errb.String() != "two\n" {
		t.Fatalf("%q %q %v", out.String(), errb.String(), err)
	}
	if len(f.attached) != 0 {
		t.Fatal("attached to a stopped container")
	}
}

func TestAttachErrors(t *testing.T) {
	f := newStreamsFake(false, supervisor.StateRunning)
	srv := streamsServer(t, f)
	for _, tc := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/containers/nope/attach?stream=1&stdout=1", 404, "No such container: nope"},
		{"/containers/c1/attach?stream=1&detachKeys=ctrl-1", 400, "Invalid detach keys (ctrl-1) provided"},
		{"/containers/c1/resize?h=x&w=80", 400, "invalid h"},
		{"/containers/nope/resize?h=1&w=80", 404, "No such container: nope"},
	} {
		resp, err := http.Post(srv.URL+tc.path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.msg) {
			t.Errorf("%s: %d %s, want %d %q", tc.path, resp.StatusCode, b, tc.status, tc.msg)
		}
	}
	resp, err := http.Post(srv.URL+"/containers/c1/resize?h=40&w=120", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(f.resized) != 1 || f.resized[0] != " 40x120" {
		t.Fatalf("resize: %d %q", resp.StatusCode, f.resized)
	}
}

// TestSessionShutdown: Shutdown ends a session at once.
func TestSessionShutdown(t *testing.T) {
	f := newStreamsFake(false, supervisor.StateRunning)
	h := NewHandler(Deps{Streams: f}, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	_, _, br := hijacked(t, srv, "POST", "/containers/c1/attach?stream=1&stdout=1", "")
	f.nextShim(t)
	h.Shutdown()
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("read after shutdown: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}
