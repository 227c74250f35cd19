package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/rest/api"
)

// Sessions on a process's standard streams against a fake daemon that
// speaks the contract's WebSocket: what condenserctl sends, what it prints
// and how it exits.

// clientFrame is a frame the client sent.
type clientFrame struct {
	typ     byte
	payload string
}

// readClient reads the client's frames until CloseStdin (included), the
// end of the session or n frames.
func readClient(t *testing.T, conn *websocket.Conn, n int) []clientFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := frame.NewReader(&messageReader{ctx: ctx, conn: conn})
	var got []clientFrame
	for len(got) < n {
		typ, p, err := r.Next()
		if err != nil {
			break
		}
		got = append(got, clientFrame{typ, string(p)})
		if typ == frame.CloseStdin {
			break
		}
	}
	return got
}

// send writes frames as one binary message.
func send(t *testing.T, conn *websocket.Conn, frames ...[]byte) {
	t.Helper()
	if err := conn.Write(context.Background(), websocket.MessageBinary, slices.Concat(frames...)); err != nil {
		t.Errorf("server write: %v", err)
	}
}

func fr(typ byte, p string) []byte { return frame.Append(nil, typ, []byte(p)) }

func exitFrame(code int) []byte { return frame.Append(nil, frame.Exit, frame.ExitPayload(code)) }

const created = `{"status":"success","message":"created","data":{"id":"abc"}}`

// sequence is the part of the requests that matter here.
func sequence(f *fakeDaemon) string {
	return strings.Join(f.requests(), "\n")
}

func TestRunRelay(t *testing.T) {
	f := startFake(t)
	f.respond("POST /v1/containers", 200, created)
	var got []clientFrame
	f.upgrade["GET /v1/containers/abc/stdio"] = func(conn *websocket.Conn) {
		got = readClient(t, conn, 10)
		// Frames span messages either way: two in one message, one cut
		// in two; a text message is skipped.
		send(t, conn, fr(frame.Stdout, "out\n"), fr(frame.Stderr, "err\n"))
		whole := fr(frame.Stdout, "split\n")
		send(t, conn, whole[:3])
		conn.Write(context.Background(), websocket.MessageText, []byte("ignored"))
		send(t, conn, whole[3:])
		send(t, conn, exitFrame(3))
		conn.Close(websocket.StatusNormalClosure, "")
	}
	r := ctlIn(t, f, strings.NewReader("hi\n"), "container", "run", "-i", "--rm", "busybox", "cat")
	if r.code != 3 || r.stdout != "out\nsplit\n" || r.stderr != "err\n" {
		t.Errorf("run -i: %+v", r)
	}
	if want := []clientFrame{{frame.Stdin, "hi\n"}, {frame.CloseStdin, ""}}; !slices.Equal(got, want) {
		t.Errorf("the client sent %q, want %q", got, want)
	}
	// Attached before the start, so that no output is lost; the exit's
	// record looked for (settle); removed after.
	want := "POST /v1/containers?\nGET /v1/containers/abc/stdio?detachKeys=&stdin=1\n" +
		"POST /v1/containers/abc/actions/start?\nGET /v1/containers/abc?\nDELETE /v1/containers/abc/actions/delete?force=true"
	if s := sequence(f); s != want {
		t.Errorf("requests:\n%s\nwant:\n%s", s, want)
	}
	var req api.CreateContainerRequest
	if err := json.Unmarshal(f.body["POST /v1/containers"], &req); err != nil || !req.OpenStdin || req.Tty || req.AutoRemove {
		t.Errorf("create request: %v %+v", err, req)
	}
}

func TestRunWithoutInput(t *testing.T) {
	f := startFake(t)
	f.respond("POST /v1/containers", 200, created)
	f.upgrade["GET /v1/containers/abc/stdio"] = func(conn *websocket.Conn) {
		send(t, conn, fr(frame.Stdout, "hello\n"), exitFrame(0))
		conn.Close(websocket.StatusNormalClosure, "")
	}
	in := &unread{}
	r := ctlIn(t, f, in, "container", "run", "--detach-keys", "ctrl-a,x", "busybox", "echo", "hello")
	if r.code != 0 || r.stdout != "hello\n" || r.stderr != "" || in.read.Load() {
		t.Errorf("run: %+v, input read: %v", r, in.read.Load())
	}
	if s := sequence(f); !strings.Contains(s, "GET /v1/containers/abc/stdio?detachKeys=ctrl-a%2Cx&stdin=0\n") || strings.Contains(s, "DELETE") {
		t.Errorf("requests:\n%s", s)
	}
}

func TestDetachKeysDefault(t *testing.T) {
	// Not on a terminal, no detach keys unless told: piped bytes may
	// spell ctrl-p ctrl-q.
	for _, tc := range []struct {
		flags []string
		query string
	}{
		{nil, "detachKeys=&stdin=1"},
		{[]string{"--detach-keys", "ctrl-p,ctrl-q"}, "detachKeys=ctrl-p%2Cctrl-q&stdin=1"},
		{[]string{"--detach-keys="}, "detachKeys=&stdin=1"},
		{[]string{"--detach-keys", "x"}, "detachKeys=x&stdin=1"},
	} {
		f := startFake(t)
		f.respond("POST /v1/containers", 200, created)
		f.upgrade["GET /v1/containers/abc/stdio"] = func(conn *websocket.Conn) { send(t, conn, exitFrame(0)) }
		args := append(append([]string{"container", "run", "-i"}, tc.flags...), "busybox", "cat")
		if r := ctlIn(t, f, strings.NewReader("\x10\x11"), args...); r.code != 0 {
			t.Errorf("%q: %+v", args, r)
		}
		if s := sequence(f); !strings.Contains(s, "GET /v1/containers/abc/stdio?"+tc.query+"\n") {
			t.Errorf("%q: requests:\n%s\nwant %s", args, s, tc.query)
		}
	}
}

func TestRunSessionEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(*websocket.Conn)
		code   int
		stderr string
	}{
		{"detached", func(c *websocket.Conn) { c.Close(websocket.StatusNormalClosure, "detached") }, 0, ""},
		{"daemon shutting down", func(c *websocket.Conn) { c.Close(websocket.StatusGoingAway, "daemon shutting down") }, 1,
			"condenserctl: lost the connection to Condenser: daemon shutting down; container abc may still be running (condenserctl container attach abc)\n"},
		{"connection cut", func(c *websocket.Conn) { c.CloseNow() }, 1,
			"condenserctl: lost the connection to Condenser: the connection was cut; container abc may still be running (condenserctl container attach abc)\n"},
		{"closed without an exit", func(c *websocket.Conn) { c.Close(websocket.StatusNormalClosure, "") }, 1,
			"condenserctl: lost the connection to Condenser: closed (1000) without an exit status; container abc may still be running (condenserctl container attach abc)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t)
			f.respond("POST /v1/containers", 200, created)
			f.upgrade["GET /v1/containers/abc/stdio"] = func(conn *websocket.Conn) {
				send(t, conn, fr(frame.Stdout, "x"))
				tc.end(conn)
			}
			r := ctl(t, f, "container", "run", "--rm", "-i", "busybox", "sh")
			if r.code != tc.code || r.stdout != "x" || r.stderr != tc.stderr {
				t.Errorf("got %+v, want exit %d, stderr %q", r, tc.code, tc.stderr)
			}
			// The container goes on: --rm does not remove it.
			if s := sequence(f); strings.Contains(s, "DELETE") {
				t.Errorf("requests:\n%s", s)
			}
		})
	}
}

func TestRunAttachRefused(t *testing.T) {
	f := startFake(t)
	f.respond("POST /v1/containers", 200, created)
	f.respond("GET /v1/containers/abc/stdio", 409, `{"status":"fail","message":"container abc is stopped"}`)
	r := ctl(t, f, "container", "run", "--rm", "busybox", "true")
	if r.code != 1 || r.stderr != "condenserctl: container abc is stopped\n" {
		t.Errorf("run: %+v", r)
	}
	if s := sequence(f); strings.Contains(s, "actions/start") || !strings.HasSuffix(s, "DELETE /v1/containers/abc/actions/delete?force=true") {
		t.Errorf("requests:\n%s", s)
	}
}

func TestTerminalFlags(t *testing.T) {
	// -t needs a terminal: refused before anything is created.
	for _, args := range [][]string{
		{"container", "run", "-it", "busybox", "sh"},
		{"container", "run", "-t", "busybox", "sh"},
		{"container", "run", "--tty", "--interactive", "busybox", "sh"},
		{"container", "exec", "-it", "web", "sh"},
		{"container", "exec", "-t", "web", "sh"},
	} {
		f := startFake(t)
		r := ctl(t, f, args...)
		if r.code != 1 || r.stderr != "condenserctl: the input device is not a TTY\n" || r.stdout != "" || len(f.requests()) != 0 {
			t.Errorf("%q: %+v, requests %q", args, r, f.requests())
		}
	}

	// Detached, -it needs no terminal; the flags reach the request.
	for _, tc := range []struct {
		args           []string
		tty, openStdin bool
	}{
		{[]string{"container", "run", "-dit", "busybox", "sh"}, true, true},
		{[]string{"container", "run", "-d", "-i", "busybox", "sh"}, false, true},
		{[]string{"container", "run", "-d", "-t", "busybox", "sh"}, true, false},
		{[]string{"container", "create", "-it", "busybox", "sh"}, true, true},
		{[]string{"container", "create", "-i", "busybox", "sh"}, false, true},
		{[]string{"container", "create", "busybox", "sh", "-it"}, false, false},
	} {
		f := startFake(t)
		f.respond("POST /v1/containers", 200, created)
		r := ctl(t, f, tc.args...)
		var req api.CreateContainerRequest
		if err := json.Unmarshal(f.body["POST /v1/containers"], &req); err != nil || r.code != 0 || r.stdout != "abc\n" ||
			req.Tty != tc.tty || req.OpenStdin != tc.openStdin {
			t.Errorf("%q: %+v; request %+v (%v)", tc.args, r, req, err)
		}
		if s := sequence(f); strings.Contains(s, "stdio") {
			t.Errorf("%q attached:\n%s", tc.args, s)
		}
	}
}

func TestDetachKeys(t *testing.T) {
	for _, s := range []string{"ctrl-p,ctrl-q", "", "a", "ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", "ctrl-z,x"} {
		if err := checkDetachKeys(s); err != nil {
			t.Errorf("checkDetachKeys(%q): %v", s, err)
		}
	}
	for _, s := range []string{"ctrl-P", "ctrl-1", "ctrl-", "ab", "ctrl-p,", ",", "alt-x", "DEL"} {
		if err := checkDetachKeys(s); err == nil {
			t.Errorf("checkDetachKeys(%q): no error", s)
		}
	}
}

// execFake answers an exec's creation and runs session on its stdio.
func execFake(t *testing.T, session func(*websocket.Conn)) *fakeDaemon {
	f := startFake(t)
	f.respond("POST /v1/containers/web/execs", 200, `{"status":"success","message":"","data":{"id":"e1"}}`)
	f.upgrade["GET /v1/containers/web/execs/e1/stdio"] = session
	return f
}

func TestExec(t *testing.T) {
	t.Run("output and status", func(t *testing.T) {
		var got []clientFrame
		f := execFake(t, func(conn *websocket.Conn) {
			got = readClient(t, conn, 10)
			send(t, conn, fr(frame.Stdout, "out\n"))
			send(t, conn, fr(frame.Stderr, "err\n"), exitFrame(3))
			conn.Close(websocket.StatusNormalClosure, "")
		})
		r := ctlIn(t, f, strings.NewReader("input"), "container", "exec", "-i", "-e", "A=1", "--env", "B=2", "-u", "nobody", "-w", "/tmp",
			"web", "sh", "-c", "cat; exit 3", "-i")
		if r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
			t.Errorf("exec: %+v", r)
		}
		if want := []clientFrame{{frame.Stdin, "input"}, {frame.CloseStdin, ""}}; !slices.Equal(got, want) {
			t.Errorf("the client sent %q, want %q", got, want)
		}
		var req api.ExecRequest
		if err := json.Unmarshal(f.body["POST /v1/containers/web/execs"], &req); err != nil ||
			strings.Join(req.Command, "|") != "sh|-c|cat; exit 3|-i" || req.Tty || !req.Stdin || req.Detach != nil ||
			strings.Join(req.Env, " ") != "A=1 B=2" || req.User != "nobody" || req.Workdir != "/tmp" {
			t.Errorf("exec request: %v %+v", err, req)
		}
		if s := sequence(f); !strings.HasSuffix(s, "GET /v1/containers/web/execs/e1/stdio?detachKeys=&stdin=1") {
			t.Errorf("requests:\n%s", s)
		}
	})

	t.Run("without input", func(t *testing.T) {
		f := execFake(t, func(conn *websocket.Conn) { send(t, conn, exitFrame(0)) })
		in := &unread{}
		if r := ctlIn(t, f, in, "container", "exec", "web", "true"); r.code != 0 || r.stdout != "" || r.stderr != "" || in.read.Load() {
			t.Errorf("exec: %+v, input read: %v", r, in.read.Load())
		}
		if s := sequence(f); !strings.HasSuffix(s, "stdio?detachKeys=&stdin=0") {
			t.Errorf("requests:\n%s", s)
		}
	})

	t.Run("detached", func(t *testing.T) {
		f := execFake(t, func(conn *websocket.Conn) { t.Error("exec -d attached") })
		if r := ctl(t, f, "container", "exec", "-d", "web", "sleep", "9"); r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("exec -d: %+v", r)
		}
		var req api.ExecRequest
		if err := json.Unmarshal(f.body["POST /v1/containers/web/execs"], &req); err != nil || req.Detach == nil || !*req.Detach {
			t.Errorf("exec request: %v %+v", err, req)
		}
	})

	t.Run("detach keys", func(t *testing.T) {
		f := execFake(t, func(conn *websocket.Conn) { conn.Close(websocket.StatusNormalClosure, "detached") })
		if r := ctl(t, f, "container", "exec", "-i", "web", "sh"); r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("exec: %+v", r)
		}
	})

	for _, tc := range []struct {
		status int
		msg    string
		code   int
	}{
		{400, `runc exec failed: unable to start container process: exec: "nosuch": executable file not found in $PATH`, 127},
		{400, `exec: "/etc/passwd": permission denied`, 126},
		{409, "container web is not running", 1},
		{404, "no such container: web", 1},
	} {
		f := execFake(t, nil)
		b, _ := json.Marshal(api.Envelope{Status: api.StatusFail, Message: tc.msg})
		f.respond("POST /v1/containers/web/execs", tc.status, string(b))
		if r := ctl(t, f, "container", "exec", "web", "nosuch"); r.code != tc.code || r.stderr != "condenserctl: "+tc.msg+"\n" {
			t.Errorf("%d %q: %+v, want exit %d", tc.status, tc.msg, r, tc.code)
		}
	}
}

func TestAttach(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	detailIn := func(state string, tty, openStdin bool) string {
		var d api.ContainerDetail
		d.ContainerID, d.Name, d.State = id, "web", state
		d.Config.Tty, d.Config.OpenStdin = tty, openStdin
		b, _ := json.Marshal(api.Envelope{Status: api.StatusSuccess, Data: d})
		return string(b)
	}
	detail := func(tty, openStdin bool) string { return detailIn("running", tty, openStdin) }
	stdioKey := "GET /v1/containers/" + id + "/stdio"
	start := "POST /v1/containers/" + id + "/actions/start?"
	for _, tc := range []struct {
		name           string
		args           []string
		state          string // "": running
		tty, openStdin bool
		query          string // "" for no session
		code           int
		stderr         string
	}{
		{"input", []string{"attach", "web"}, "", false, true, "detachKeys=&stdin=1", 5, ""},
		{"no input", []string{"attach", "--no-stdin", "--detach-keys", "ctrl-a", "web"}, "", false, true, "detachKeys=ctrl-a&stdin=0", 5, ""},
		{"created without -i", []string{"attach", "web"}, "", false, false, "detachKeys=&stdin=0", 5, ""},
		{"terminal", []string{"attach", "web"}, "", true, true, "", 1, "condenserctl: the input device is not a TTY\n"},
		{"terminal without input", []string{"attach", "--no-stdin", "web"}, "", true, true, "detachKeys=&stdin=0", 5, ""},
		{"start -a", []string{"start", "-a", "web"}, "created", false, true, "detachKeys=&stdin=0", 5, ""},
		{"start -i", []string{"start", "-i", "web"}, "created", false, true, "detachKeys=&stdin=1", 5, ""},
		{"start -a running", []string{"start", "-a", "web"}, "running", false, true, "detachKeys=&stdin=0", 5, ""},
		{"start -a stopped", []string{"start", "-a", "web"}, "stopped", false, true, "detachKeys=&stdin=0", 5, ""},
		{"start -ai terminal", []string{"start", "-ai", "web"}, "created", true, true, "", 1, "condenserctl: the input device is not a TTY\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t)
			state := tc.state
			if state == "" {
				state = "running"
			}
			f.respond("GET /v1/containers/web", 200, detailIn(state, tc.tty, tc.openStdin))
			f.upgrade[stdioKey] = func(conn *websocket.Conn) {
				send(t, conn, fr(frame.Stdout, "out"), exitFrame(5))
				conn.Close(websocket.StatusNormalClosure, "")
			}
			r := ctlIn(t, f, strings.NewReader("in"), append([]string{"container"}, tc.args...)...)
			wantOut := "out"
			if tc.query == "" {
				wantOut = ""
			}
			if r.code != tc.code || r.stdout != wantOut || r.stderr != tc.stderr {
				t.Errorf("got %+v, want exit %d, stderr %q", r, tc.code, tc.stderr)
			}
			reqs := f.requests()
			// Attached before the start, but to a running container only
			// (as docker), and to a stopped one after (it has no process
			// before).
			want := []string{"GET /v1/containers/web?"}
			switch {
			case tc.query == "":
			case tc.args[0] == "start" && state == "created":
				want = append(want, stdioKey+"?"+tc.query, start)
			case tc.args[0] == "start" && state == "stopped":
				want = append(want, start, stdioKey+"?"+tc.query)
			default:
				want = append(want, stdioKey+"?"+tc.query)
			}
			if tc.query != "" {
				want = append(want, "GET /v1/containers/"+id+"?") // settle: the exit recorded?
			}
			if !slices.Equal(reqs, want) {
				t.Errorf("requests %q, want %q", reqs, want)
			}
		})
	}

	// A refusal before the upgrade is the daemon's message.
	f := startFake(t)
	f.respond("GET /v1/containers/web", 200, detail(false, false))
	f.respond(stdioKey, 409, `{"status":"fail","message":"container web is stopped"}`)
	if r := ctl(t, f, "container", "attach", "web"); r.code != 1 || r.stderr != "condenserctl: container web is stopped\n" {
		t.Errorf("attach to a stopped container: %+v", r)
	}

	// A stopped container that has stopped again by the time it is
	// attached to: its exit status, and where its output is.
	f = startFake(t)
	f.respond("GET /v1/containers/web", 200, detailIn("stopped", false, false))
	f.respond(stdioKey, 409, `{"status":"fail","message":"container web is stopped"}`)
	f.respond("POST /v1/containers/"+id+"/actions/wait", 200, `{"status":"success","message":"","data":{"exitCode":6}}`)
	if r := ctl(t, f, "container", "start", "-a", "web"); r.code != 6 || r.stdout != "" ||
		r.stderr != "condenserctl: container 0123456789ab stopped before it could be attached to; its output is in its log (condenserctl container logs 0123456789ab)\n" {
		t.Errorf("start -a of a container that stops at once: %+v", r)
	}

	// start without -a is what it was.
	f = startFake(t)
	if r := ctl(t, f, "container", "start", "a", "b"); r.code != 0 || r.stdout != "a\nb\n" {
		t.Errorf("start: %+v", r)
	}
}

// unread is an input that records whether it was read.
type unread struct{ read atomic.Bool }

func (u *unread) Read([]byte) (int, error) {
	u.read.Store(true)
	return 0, io.EOF
}

// TestTerminalSession runs `run -it` in-process on a pseudo-terminal: the
// window's size goes out at once and at every SIGWINCH, the terminal is raw
// while attached and restored after.
func TestTerminalSession(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	lflag := func() uint32 {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Errorf("termios: %v", err)
			return 0
		}
		return tio.Lflag
	}
	cooked := lflag()
	if cooked&(unix.ECHO|unix.ICANON) != unix.ECHO|unix.ICANON {
		t.Fatalf("a new terminal is not cooked: lflag %#x", cooked)
	}

	f := startFake(t)
	f.respond("POST /v1/containers", 200, created)
	f.upgrade["GET /v1/containers/abc/stdio"] = func(conn *websocket.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r := frame.NewReader(&messageReader{ctx: ctx, conn: conn})
		next := func(want byte) []byte {
			typ, p, err := r.Next()
			if err != nil || typ != want {
				t.Errorf("from the client: frame %d %q, %v; want type %d", typ, p, err, want)
				return nil
			}
			return p
		}
		if rows, cols, err := frame.ParseResize(next(frame.Resize)); err != nil || rows != 30 || cols != 100 {
			t.Errorf("first resize: %d×%d, %v; want 30×100", rows, cols, err)
		}
		// Once started, the session makes the terminal raw (and listens
		// to SIGWINCH).
		for deadline := time.Now().Add(10 * time.Second); lflag()&(unix.ECHO|unix.ICANON|unix.ISIG) != 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("attached, the terminal is not raw: lflag %#x", lflag())
				return
			}
		}
		pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120})
		syscall.Kill(os.Getpid(), syscall.SIGWINCH)
		if rows, cols, err := frame.ParseResize(next(frame.Resize)); err != nil || rows != 40 || cols != 120 {
			t.Errorf("resize after SIGWINCH: %d×%d, %v; want 40×120", rows, cols, err)
		}
		// Typed bytes go out as they are: no line discipline, ctrl-c
		// is a byte.
		ptmx.Write([]byte("ls\r\x03"))
		var typed []byte
		for len(typed) < 4 {
			p := next(frame.Stdin)
			if p == nil {
				break
			}
			typed = append(typed, p...)
		}
		if string(typed) != "ls\r\x03" {
			t.Errorf("typed %q, want %q", typed, "ls\r\x03")
		}
		send(t, conn, fr(frame.Stdout, "hello\r\n"), exitFrame(0))
		conn.Close(websocket.StatusNormalClosure, "")
	}
	var out, errOut bytes.Buffer
	code := run([]string{"--host", "unix://" + f.sock, "container", "run", "-it", "busybox", "sh"}, tty, &out, &errOut)
	if code != 0 || out.String() != "hello\r\n" || errOut.String() != "" {
		t.Errorf("run -it: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if l := lflag(); l != cooked {
		t.Errorf("the terminal is not restored: lflag %#x, was %#x", l, cooked)
	}
	var req api.CreateContainerRequest
	if err := json.Unmarshal(f.body["POST /v1/containers"], &req); err != nil || !req.Tty || !req.OpenStdin {
		t.Errorf("create request: %v %+v", err, req)
	}
	// On a terminal, the detach keys are Docker's unless told; the size
	// is set before the start, so that the process's first instruction
	// sees it.
	want := "POST /v1/containers?\nGET /v1/containers/abc/stdio?detachKeys=ctrl-p%2Cctrl-q&stdin=1\n" +
		"POST /v1/containers/abc/actions/resize?h=30&w=100\nPOST /v1/containers/abc/actions/start?\nGET /v1/containers/abc?"
	if s := sequence(f); s != want {
		t.Errorf("requests:\n%s\nwant:\n%s", s, want)
	}
}
