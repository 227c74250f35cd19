package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/frame"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/shim/logging"
)

// sessionWait bounds every wait for a session's output or exit.
const sessionWait = 30 * time.Second

// withDevpts mounts a devpts of the container's own, for terminals.
func withDevpts() specOpt {
	return func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
			Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}})
	}
}

// withTerminal gives the init a terminal.
func withTerminal() specOpt {
	return func(s *specs.Spec) {
		s.Process.Terminal = true
		withDevpts()(s)
	}
}

// newContainerIO is newContainer with the init's streams as io says
// (Terminal, Stdin).
func newContainerIO(t *testing.T, rt runtimeCase, args []string, io client.CreateOptions, opts ...specOpt) *container {
	t.Helper()
	c := newBundle(t, rt, args, opts...)
	ctx := context.Background()
	addr, err := client.Launch(ctx, c.opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.client, err = client.Dial(ctx, addr); err != nil {
		t.Fatal(err)
	}
	io.Rootfs, io.LogMaxSize, io.LogMaxFiles = c.rootfs(), 1<<20, 3
	if _, err := c.client.Create(ctx, io); err != nil {
		t.Fatalf("create: %v\nshim log:\n%s", err, c.shimLog())
	}
	return c
}

// session is a client attached to a process: a goroutine reads its frames
// into stdout, stderr and exit until the shim closes the stream.
type session struct {
	s       *client.Stream
	changed chan struct{} // poked on every frame
	done    chan struct{} // closed when the stream has ended

	mu             sync.Mutex
	stdout, stderr strings.Builder
	exit           *int
	err            error // why the stream ended (io.EOF: the shim closed it), or a protocol fault
}

// attach attaches to the init (exec "") or an exec process of c.
func (c *container) attach(exec string, stdin bool) *session {
	c.t.Helper()
	s, err := c.tryAttach(exec, stdin)
	if err != nil {
		c.t.Fatalf("attach: %v", err)
	}
	return s
}

func (c *container) tryAttach(exec string, stdin bool) (*session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sessionWait)
	defer cancel()
	st, err := client.Attach(ctx, c.bundle, api.AttachRequest{Exec: exec, Stdin: stdin})
	if err != nil {
		return nil, err
	}
	s := &session{s: st, changed: make(chan struct{}, 1), done: make(chan struct{})}
	go s.read()
	c.t.Cleanup(func() { s.s.Close(); <-s.done })
	return s, nil
}

func (s *session) read() {
	defer close(s.done)
	defer s.poke()
	fr := frame.NewReader(s.s)
	for {
		typ, p, err := fr.Next()
		s.mu.Lock()
		switch {
		case err != nil:
			s.err = err
		case s.exit != nil:
			s.err = fmt.Errorf("frame %d after the Exit frame", typ)
		case typ == frame.Stdout:
			s.stdout.Write(p)
		case typ == frame.Stderr:
			s.stderr.Write(p)
		case typ == frame.Exit:
			code, perr := frame.ParseExit(p)
			s.exit, s.err = &code, perr
		default:
			s.err = fmt.Errorf("unknown frame type %d", typ)
		}
		stop := s.err != nil
		s.mu.Unlock()
		if stop {
			return
		}
		s.poke()
	}
}

func (s *session) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds of the session's output so far.
func (s *session) waitFor(what string, cond func(stdout, stderr string) bool) error {
	deadline := time.NewTimer(sessionWait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		stdout, stderr, err := s.stdout.String(), s.stderr.String(), s.err
		s.mu.Unlock()
		if cond(stdout, stderr) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("waiting for %s: the stream ended (%v); stdout %q, stderr %q", what, err, stdout, stderr)
		}
		select {
		case <-s.changed:
		case <-deadline.C:
			return fmt.Errorf("waiting for %s: timed out; stdout %q, stderr %q", what, stdout, stderr)
		}
	}
}

// waitOutput waits until stdout holds want.
func (s *session) waitOutput(t *testing.T, want string) {
	t.Helper()
	if err := s.waitFor(fmt.Sprintf("%q", want), func(out, _ string) bool { return strings.Contains(out, want) }); err != nil {
		t.Fatal(err)
	}
}

// waitExit waits for the Exit frame and the end of the stream, and
// returns the exit status.
func (s *session) waitExit() (int, error) {
	select {
	case <-s.done:
	case <-time.After(sessionWait):
		return 0, errors.New("no Exit frame: timed out")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exit == nil {
		return 0, fmt.Errorf("no Exit frame; the stream ended: %v", s.err)
	}
	if s.err != nil && !errors.Is(s.err, io.EOF) {
		return 0, fmt.Errorf("after the Exit frame: %v", s.err)
	}
	return *s.exit, nil
}

func (s *session) mustExit(t *testing.T, want int) {
	t.Helper()
	got, err := s.waitExit()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Fatalf("exit %d, want %d; stdout %q, stderr %q", got, want, s.stdout.String(), s.stderr.String())
	}
}

func (s *session) output() (stdout, stderr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stdout.String(), s.stderr.String()
}

func (s *session) send(t *testing.T, typ byte, payload []byte) {
	t.Helper()
	if err := frame.Write(s.s, typ, payload); err != nil {
		t.Fatal(err)
	}
}

func (s *session) input(t *testing.T, text string) { t.Helper(); s.send(t, frame.Stdin, []byte(text)) }

// execSpec is the process of an exec request running args.
func execSpec(args []string, terminal bool) []byte {
	p := specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin", "TERM=xterm"}, Terminal: terminal, NoNewPrivileges: true}
	b, _ := json.Marshal(p)
	return b
}

// exec starts args in c and returns the exec's id.
func (c *container) exec(o client.ExecOptions, args ...string) string {
	c.t.Helper()
	o.ID = names.NewID()
	o.Process = execSpec(args, o.Terminal)
	if _, err := c.client.Exec(context.Background(), o); err != nil {
		c.t.Fatalf("exec %q: %v\nshim log:\n%s", args, err, c.shimLog())
	}
	return o.ID
}

// fds counts the open descriptors of process pid, but for pidfds: Go's
// os.Process holds one per command started until it is garbage
// collected.
func fds(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); l != "anon_inode:[pidfd]" {
			n++
		}
	}
	return n
}

// fdBaseline counts the shim's descriptors once its container's cgroup
// is watched (Stats waits for that).
func (c *container) fdBaseline() int {
	c.t.Helper()
	if _, err := c.client.Stats(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	return fds(c.t, c.shimPid())
}

// goroutines asks the shim for a stack dump and returns how many
// goroutines it has.
func (c *container) goroutines() int {
	c.t.Helper()
	n, _ := c.stackDump()
	return n
}

// stackDump has the shim dump its goroutines' stacks (the Stacks call)
// and returns the dump with its goroutine count.
func (c *container) stackDump() (int, string) {
	c.t.Helper()
	dump, err := c.client.Stacks(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(dump, StackDumpHeader, &n); err != nil || !strings.Contains(dump, "\ngoroutine ") {
		c.t.Fatalf("bad stack dump (%v): %.200q", err, dump)
	}
	return n, dump
}

// waitGoroutines waits until the shim has want goroutines (those of the
// sessions end just after their streams do).
func (c *container) waitGoroutines(want int) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, dump := c.stackDump()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the shim has %d goroutines, want %d:%s", n, want, dump)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFds waits until the shim has want descriptors open (clients and
// pipes are closed by the shim's goroutines, just after the stream ends).
func waitFds(t testing.TB, pid, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := fds(t, pid)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			var links []string
			for _, e := range ents {
				l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
				links = append(links, e.Name()+"→"+l)
			}
			t.Fatalf("the shim has %d descriptors open, want %d: %v", n, want, links)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLog waits until the container's log holds want.
func (c *container) waitLog(want string) {
	c.t.Helper()
	deadline := time.Now().Add(sessionWait)
	for {
		entries, _ := logging.ReadLast(filepath.Join(c.bundle, c.id+"-json.log"), 100, 1000)
		var all strings.Builder
		for _, e := range entries {
			all.WriteString(e.Log)
		}
		if strings.Contains(all.String(), want) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the log never held %q: %q", want, all.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTerminalInit drives a shell on the init's terminal: input, output,
// window size by RPC and by frame, the log, the exit.
func TestTerminalInit(t *testing.T) {
	for _, rt := range runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			c := newContainerIO(t, rt, []string{"sh"}, client.CreateOptions{Terminal: true}, withTerminal())
			ctx := context.Background()
			s := c.attach("", true)
			if !s.s.Terminal() {
				t.Error("the attach response says no terminal")
			}
			c.start()
			s.input(t, "echo $((6*7))\r")
			s.waitOutput(t, "42")

			if err := c.client.Resize(ctx, "", 40, 100); err != nil {
				t.Fatal(err)
			}
			s.input(t, "busybox stty size\r")
			s.waitOutput(t, "40 100")
			s.send(t, frame.Resize, frame.ResizePayload(50, 120))
			s.input(t, "busybox stty size\r")
			s.waitOutput(t, "50 120")

			s.input(t, "exit 3\r")
			s.mustExit(t, 3)
			if e := c.wait(); e.ExitCode != 3 {
				t.Errorf("container exit %d, want 3", e.ExitCode)
			}
			if err := c.client.Resize(ctx, "", 10, 10); !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("resize after the exit: %v, want ErrConflict", err)
			}
			c.deleteAndShutdown()
			entries, err := logging.ReadLast(filepath.Join(c.bundle, c.id+"-json.log"), 100, 1000)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			for _, e := range entries {
				if e.Stream != "stdout" {
					t.Errorf("a terminal's output logged as %q", e.Stream)
				}
				out.WriteString(e.Log)
			}
			if !strings.Contains(out.String(), "42") || !strings.Contains(out.String(), "50 120") {
				t.Errorf("log %q", out.String())
			}
		})
	}
}

// TestTerminalClients: what the terminal wrote before anyone attached goes
// to the first client; several clients see the same output and their
// input is merged; a client that detaches leaves the process running and
// takes nothing of the shim with it.
func TestTerminalClients(t *testing.T) {
	rt := runtimes(t)[0]
	c := newContainerIO(t, rt, []string{"sh", "-c", "echo before-attach; exec sh"}, client.CreateOptions{Terminal: true}, withTerminal())
	c.start()
	shim := c.shimPid()
	baseline := c.fdBaseline()
	c.waitLog("before-attach")

	first := c.attach("", true)
	first.waitOutput(t, "before-attach")
	second := c.attach("", false)
	first.input(t, "echo $((6*7))\r")
	first.waitOutput(t, "42")
	second.waitOutput(t, "42")
	if out, _ := second.output(); strings.Contains(out, "before-attach") {
		t.Errorf("the second client got the hold: %q", out)
	}
	// Input from a client that did not ask for stdin is dropped.
	second.input(t, "echo $((7*7))\r")

	first.s.Close()
	third := c.attach("", true)
	third.input(t, "echo $((100+23))\r")
	third.waitOutput(t, "123")
	second.waitOutput(t, "123")
	if out, _ := third.output(); strings.Contains(out, "49") {
		t.Errorf("input of a client without stdin reached the terminal: %q", out)
	}
	if st, err := c.client.State(context.Background()); err != nil || st.Status != client.StatusRunning {
		t.Fatalf("state after a detach: %+v %v", st, err)
	}
	second.s.Close()
	third.s.Close()
	// Detached clients are let go at once.
	waitFds(t, shim, baseline)

	last := c.attach("", true)
	last.input(t, "exit 0\r")
	last.mustExit(t, 0)
	c.wait()
	// A client attaching after the exit gets the Exit frame.
	late := c.attach("", false)
	late.mustExit(t, 0)
	if out, _ := late.output(); out != "" {
		t.Errorf("a late client got output %q", out)
	}
	c.deleteAndShutdown()
}

// TestStdinPipe: the init's stdin is a pipe written by the attached
// client's Stdin frames and closed by CloseStdin.
func TestStdinPipe(t *testing.T) {
	for _, rt := range runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			c := newContainerIO(t, rt, []string{"cat"}, client.CreateOptions{Stdin: true})
			s := c.attach("", true)
			if s.s.Terminal() {
				t.Error("the attach response says terminal")
			}
			c.start()
			s.input(t, "hello\n")
			s.waitOutput(t, "hello\n")
			s.input(t, "world\n")
			s.waitOutput(t, "world\n")
			s.send(t, frame.CloseStdin, nil)
			s.mustExit(t, 0)
			if out, errs := s.output(); out != "hello\nworld\n" || errs != "" {
				t.Errorf("stdout %q, stderr %q", out, errs)
			}
			if e := c.wait(); e.ExitCode != 0 {
				t.Errorf("container exit %d", e.ExitCode)
			}
			c.deleteAndShutdown()
		})
	}
}

// TestHalfClosedClient: a client that closes its writing half still gets
// the output and the Exit frame.
func TestHalfClosedClient(t *testing.T) {
	rt := runtimes(t)[0]
	c := newContainerIO(t, rt, []string{"sh", "-c", "read line; echo got $line; exit 2"}, client.CreateOptions{Stdin: true})
	s := c.attach("", true)
	c.start()
	s.input(t, "it\n")
	if err := s.s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	s.waitOutput(t, "got it\n")
	s.mustExit(t, 2)
	c.wait()
	c.deleteAndShutdown()
}

func TestAttachRefused(t *testing.T) {
	rt := runtimes(t)[0]
	c := newBundle(t, rt, []string{"sleep", "100"})
	ctx := context.Background()
	addr, err := client.Launch(ctx, c.opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.client, err = client.Dial(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if _, err := c.tryAttach("", false); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("attach before create: %v, want ErrNotFound", err)
	}
	if err := c.client.Resize(ctx, "", 10, 10); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("resize before create: %v, want ErrNotFound", err)
	}
	if _, err := c.client.Create(ctx, client.CreateOptions{Rootfs: c.rootfs()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.tryAttach(names.NewID(), false); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("attach to an unknown exec: %v, want ErrNotFound", err)
	}
	if err := c.client.Resize(ctx, "", 10, 10); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("resize without a terminal: %v, want ErrConflict", err)
	}
	// A request that is not one is refused, not ignored.
	conn, err := net.Dial("unix", filepath.Join(c.bundle, api.IOFile))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "{\"exec\":\"\",\"tty\":true}\n")
	var resp api.AttachResponse
	if err := api.ReadLine(bufio.NewReader(conn), &resp); err != nil || !errors.Is(resp.Err(), errdefs.ErrInvalidArgument) {
		t.Errorf("a malformed request: %+v %v, want a refusal (invalid argument)", resp, err)
	}
	// A client that does not speak the protocol is let go; the process
	// goes on.
	c.start()
	for name, bad := range map[string][]byte{
		"unknown frame":   frame.Append(nil, 9, []byte("x")),
		"oversized frame": {frame.Stdin, 0xff, 0xff, 0xff, 0xff},
		"bad resize":      frame.Append(nil, frame.Resize, []byte{1}),
	} {
		s := c.attach("", true)
		if _, err := s.s.Write(bad); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.done:
		case <-time.After(sessionWait):
			t.Fatalf("%s: the client was not let go", name)
		}
		if s.exit != nil || !errors.Is(s.err, io.EOF) {
			t.Errorf("%s: exit %v, end %v; want the stream closed", name, s.exit, s.err)
		}
	}
	if st, err := c.client.State(ctx); err != nil || st.Status != client.StatusRunning {
		t.Errorf("state %+v %v", st, err)
	}
	if err := c.client.Kill(ctx, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	c.wait()
	c.deleteAndShutdown()
	if _, err := os.Stat(filepath.Join(c.bundle, api.IOFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("io socket left: %v", err)
	}
}

// TestExec runs exec processes with pipes, a terminal, stdin and none at
// all, and checks their exits, states and errors.
func TestExec(t *testing.T) {
	for _, rt := range runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			c := newContainer(t, rt, []string{"sleep", "1000"}, withDevpts())
			ctx := context.Background()
			if _, err := c.client.Exec(ctx, client.ExecOptions{ID: names.NewID(), Process: execSpec([]string{"true"}, false)}); !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("exec in a created container: %v, want ErrConflict", err)
			}
			c.start()

			t.Run("exit codes", func(t *testing.T) {
				for _, code := range []int{0, 3} {
					id := c.exec(client.ExecOptions{}, "sh", "-c", fmt.Sprintf("echo out; echo err >&2; exit %d", code))
					s := c.attach(id, false)
					s.mustExit(t, code)
					if out, errs := s.output(); out != "out\n" || errs != "err\n" {
						t.Errorf("stdout %q, stderr %q", out, errs)
					}
					x, err := c.client.ExecState(ctx, id)
					if err != nil || x.ID != id || x.Status != client.StatusStopped || x.ExitCode != code || x.ExitedAt.IsZero() || x.Pid <= 0 || x.Terminal {
						t.Errorf("exec state %+v %v", x, err)
					}
				}
			})
			t.Run("missing executable", func(t *testing.T) {
				_, err := c.client.Exec(ctx, client.ExecOptions{ID: names.NewID(), Process: execSpec([]string{"nosuch"}, false)})
				t.Logf("exec of a missing executable: %v", err)
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "nosuch") {
					t.Errorf("exec of a missing executable: %v, want ErrInvalidArgument with the runtime's message", err)
				}
			})
			t.Run("output before attach", func(t *testing.T) {
				id := c.exec(client.ExecOptions{}, "sh", "-c", "echo early; echo early-err >&2; exit 4")
				waitExecStopped(t, c, id)
				s := c.attach(id, false)
				s.mustExit(t, 4)
				if out, errs := s.output(); out != "early\n" || errs != "early-err\n" {
					t.Errorf("stdout %q, stderr %q", out, errs)
				}
			})
			t.Run("held output is not lost", func(t *testing.T) {
				// Far more than the hold and a pipe: the process waits for
				// the client.
				id := c.exec(client.ExecOptions{}, "sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo; echo end")
				s := c.attach(id, false)
				s.mustExit(t, 0)
				if out, _ := s.output(); len(out) != 300005 || strings.Count(out, "x") != 300000 || !strings.HasSuffix(out, "\nend\n") {
					t.Errorf("got %d bytes, want 300005", len(out))
				}
			})
			t.Run("stdin", func(t *testing.T) {
				id := c.exec(client.ExecOptions{Stdin: true}, "cat")
				s := c.attach(id, true)
				s.input(t, "ping\n")
				s.waitOutput(t, "ping\n")
				s.send(t, frame.CloseStdin, nil)
				s.mustExit(t, 0)
			})
			t.Run("terminal", func(t *testing.T) {
				id := c.exec(client.ExecOptions{Terminal: true}, "sh")
				s := c.attach(id, true)
				if !s.s.Terminal() {
					t.Error("the attach response says no terminal")
				}
				s.input(t, "echo $((6*7))\r")
				s.waitOutput(t, "42")
				if err := c.client.Resize(ctx, id, 33, 77); err != nil {
					t.Fatal(err)
				}
				s.input(t, "busybox stty size\r")
				s.waitOutput(t, "33 77")
				s.input(t, "exit 5\r")
				s.mustExit(t, 5)
				if x, err := c.client.ExecState(ctx, id); err != nil || !x.Terminal || x.ExitCode != 5 {
					t.Errorf("exec state %+v %v", x, err)
				}
			})
			t.Run("detached", func(t *testing.T) {
				id := c.exec(client.ExecOptions{Detach: true}, "sh", "-c", "echo hidden; echo hidden >&2; exit 7")
				s := c.attach(id, true)
				s.mustExit(t, 7)
				if out, errs := s.output(); out != "" || errs != "" {
					t.Errorf("a detached process's output reached a client: %q %q", out, errs)
				}
			})
			t.Run("detached terminal", func(t *testing.T) {
				// Its terminal stays (no hangup); its output reaches only
				// the clients attached at the time.
				id := c.exec(client.ExecOptions{Terminal: true, Detach: true}, "sh", "-c", "read x; echo got $x; exit 6")
				s := c.attach(id, true)
				if !s.s.Terminal() {
					t.Error("the attach response says no terminal")
				}
				s.input(t, "it\r")
				s.waitOutput(t, "got it")
				s.mustExit(t, 6)
			})
			t.Run("bad requests", func(t *testing.T) {
				id := c.exec(client.ExecOptions{}, "sleep", "1000")
				for name, tc := range map[string]struct {
					o    client.ExecOptions
					want error
				}{
					"duplicate":        {client.ExecOptions{ID: id, Process: execSpec([]string{"true"}, false)}, errdefs.ErrAlreadyExists},
					"bad id":           {client.ExecOptions{ID: "x", Process: execSpec([]string{"true"}, false)}, errdefs.ErrInvalidArgument},
					"uppercase id":     {client.ExecOptions{ID: strings.ToUpper(names.NewID()), Process: execSpec([]string{"true"}, false)}, errdefs.ErrInvalidArgument},
					"no args":          {client.ExecOptions{ID: names.NewID(), Process: execSpec(nil, false)}, errdefs.ErrInvalidArgument},
					"not json":         {client.ExecOptions{ID: names.NewID(), Process: []byte("{")}, errdefs.ErrInvalidArgument},
					"terminal differs": {client.ExecOptions{ID: names.NewID(), Process: execSpec([]string{"true"}, false), Terminal: true}, errdefs.ErrInvalidArgument},
				} {
					if _, err := c.client.Exec(ctx, tc.o); !errors.Is(err, tc.want) {
						t.Errorf("%s: %v, want %v", name, err, tc.want)
					}
				}
				if _, err := c.client.ExecState(ctx, names.NewID()); !errors.Is(err, errdefs.ErrNotFound) {
					t.Errorf("state of an unknown exec: %v, want ErrNotFound", err)
				}
				if err := c.client.Resize(ctx, names.NewID(), 10, 10); !errors.Is(err, errdefs.ErrNotFound) {
					t.Errorf("resize of an unknown exec: %v, want ErrNotFound", err)
				}
				if err := c.client.Resize(ctx, id, 10, 10); !errors.Is(err, errdefs.ErrConflict) {
					t.Errorf("resize without a terminal: %v, want ErrConflict", err)
				}
				if x, err := c.client.ExecState(ctx, id); err != nil || x.Status != client.StatusRunning || x.Pid <= 0 {
					t.Errorf("state of a running exec: %+v %v", x, err)
				}
			})

			list, err := c.client.ListExecs(ctx)
			if err != nil || len(list) != 9 {
				t.Errorf("list: %d execs, want 9: %v", len(list), err)
			}
			for i := 1; i < len(list); i++ {
				if list[i].Pid == list[i-1].Pid {
					t.Errorf("list %+v", list)
				}
			}
			// The init's exit ends what still runs, and their sessions.
			running := c.exec(client.ExecOptions{}, "sleep", "1000")
			s := c.attach(running, false)
			if err := c.client.Kill(ctx, syscall.SIGKILL, false); err != nil {
				t.Fatal(err)
			}
			c.wait()
			s.mustExit(t, 137)
			if _, err := c.client.Exec(ctx, client.ExecOptions{ID: names.NewID(), Process: execSpec([]string{"true"}, false)}); !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("exec in a stopped container: %v, want ErrConflict", err)
			}
			c.deleteAndShutdown()
		})
	}
}

// waitExecStopped waits until ExecState says the exec process stopped.
func waitExecStopped(t *testing.T, c *container, id string) {
	t.Helper()
	deadline := time.Now().Add(sessionWait)
	for {
		x, err := c.client.ExecState(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if x.Status == client.StatusStopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec %s still %s", id, x.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrentExecs runs 50 exec sessions at once in one container:
// every exit status is right, and afterwards nothing is left — no process,
// no zombie, no descriptor — and io.sock still serves.
func TestConcurrentExecs(t *testing.T) {
	for _, rt := range runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			c := newContainer(t, rt, []string{"sleep", "1000"})
			c.start()
			ctx := context.Background()
			shim := c.shimPid()
			baseline := c.fdBaseline()
			goroutines := c.goroutines()

			const n = 50
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- func() error {
						id := names.NewID()
						o := client.ExecOptions{ID: id, Process: execSpec([]string{"sh", "-c", fmt.Sprintf("echo %d; exit %d", i, i)}, false), Stdin: i%2 == 0}
						if _, err := c.client.Exec(ctx, o); err != nil {
							return fmt.Errorf("exec %d: %w", i, err)
						}
						s, err := c.tryAttach(id, o.Stdin)
						if err != nil {
							return fmt.Errorf("attach %d: %w", i, err)
						}
						code, err := s.waitExit()
						if err != nil {
							return fmt.Errorf("exec %d: %w", i, err)
						}
						if out, _ := s.output(); code != i || out != fmt.Sprintf("%d\n", i) {
							return fmt.Errorf("exec %d: exit %d, output %q", i, code, out)
						}
						x, err := c.client.ExecState(ctx, id)
						if err != nil || x.Status != client.StatusStopped || x.ExitCode != i {
							return fmt.Errorf("exec %d: state %+v %v", i, x, err)
						}
						return nil
					}()
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			if list, err := c.client.ListExecs(ctx); err != nil || len(list) != n {
				t.Errorf("list: %d execs, %v", len(list), err)
			}
			init, err := c.client.Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if pids, err := c.client.Pids(ctx); err != nil || len(pids) != 1 || pids[0] != init.TaskPid {
				t.Errorf("processes left in the container: %v %v", pids, err)
			}
			if z := zombies(t, shim); len(z) > 0 {
				t.Errorf("zombies: %v", z)
			}
			waitFds(t, shim, baseline)
			c.waitGoroutines(goroutines)
			if left, _ := filepath.Glob(filepath.Join(c.bundle, "x*")); len(left) > 0 {
				t.Errorf("exec files left in the bundle: %v", left)
			}
			// io.sock still serves.
			id := c.exec(client.ExecOptions{}, "sh", "-c", "echo still; exit 9")
			s := c.attach(id, false)
			s.mustExit(t, 9)
			c.client.Kill(ctx, syscall.SIGKILL, false)
			c.wait()
			c.deleteAndShutdown()
		})
	}
}
