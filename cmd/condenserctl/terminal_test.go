package main

import (
	"crypto/md5"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/rest/api"
)

// Terminals, attach and exec end to end: the built condenserctl on a real
// pseudo-terminal (or plain pipes) against a real daemon.

// expectTimeout bounds every wait for a process's output or exit.
const expectTimeout = testutil.ExpectTimeout

// ptyRun is condenserctl on a pseudo-terminal (testutil.PTY).
type ptyRun struct{ *testutil.PTY }

// startPTY runs condenserctl args on a new terminal of rows×cols.
func (e *env) startPTY(rows, cols uint16, args ...string) *ptyRun {
	e.t.Helper()
	cmd := exec.Command(e.ctl, args...)
	cmd.Env = append(os.Environ(), "RAIND_HOST=unix://"+e.sock)
	return &ptyRun{testutil.StartPTY(e.t, cmd, rows, cols)}
}

// command types line and Enter and returns the output's first line after
// the echo of what was typed.
func (p *ptyRun) command(line, want string) {
	from := p.Mark()
	p.Send(line + "\r")
	p.Expect(`\r\n`+regexp.QuoteMeta(want)+`\r\n`, from)
}

// state is a container's state.
func (e *env) state(name string) string {
	e.t.Helper()
	var d api.ContainerDetail
	if err := json.Unmarshal([]byte(e.must("container", "inspect", name)), &d); err != nil {
		e.t.Fatalf("inspect %s: %v", name, err)
	}
	return d.State
}

func TestTerminals(t *testing.T) {
	e := startEnv(t)
	e.must("image", "pull", "busybox")

	t.Run("run -it", func(t *testing.T) {
		e := e.in(t)
		p := e.startPTY(30, 100, "container", "run", "-it", "--rm", "--name", "it", "busybox", "sh")
		p.WaitRaw()
		p.Expect(`# `, 0)
		p.command("echo $((6*7))", "42")
		// The terminal's size at the start, then after a change.
		p.command("stty size", "30 100")
		if err := pty.Setsize(p.File, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
			t.Fatal(err)
		}
		p.Cmd.Process.Signal(syscall.SIGWINCH)
		// The new size goes out when condenserctl sees the signal: ask
		// until it shows.
		deadline := time.Now().Add(expectTimeout)
		for {
			from := p.Mark()
			p.Send("stty size\r")
			_, m := p.Expect(`\r\n(\d+ \d+)\r\n`, from)
			if m[1] == "40 120" {
				break
			}
			if time.Now().After(deadline) {
				p.Fatalf("stty size still %q after a resize to 40 120", m[1])
			}
		}
		p.Send("exit 3\r")
		if code := p.Wait(); code != 3 {
			p.Fatalf("exit status %d, want 3", code)
		}
		if r := e.run("container", "inspect", "it"); r.code != 1 {
			t.Errorf("--rm: the container is still there: %+v", r)
		}
	})

	t.Run("run -t", func(t *testing.T) {
		// A terminal without input: the output, the window's size from
		// the process's start, the exit status.
		e := e.in(t)
		p := e.startPTY(33, 99, "container", "run", "-t", "--rm", "busybox", "sh", "-c", "stty size; tty; exit 2")
		// Not raw without input: the client's terminal adds its own \r.
		p.Expect(`^33 99\r+\n/dev/pts/\d+\r+\n$`, 0)
		if code := p.Wait(); code != 2 {
			p.Fatalf("exit status %d, want 2", code)
		}
	})

	t.Run("detach and attach", func(t *testing.T) {
		e := e.in(t)
		p := e.startPTY(24, 80, "container", "run", "-it", "--name", "det", "busybox", "sh")
		p.WaitRaw()
		p.Expect(`# `, 0)
		p.command("X=1; echo x=$X", "x=1")
		from := p.Mark()
		p.Send("\x10\x11") // ctrl-p ctrl-q
		if code := p.Wait(); code != 0 {
			p.Fatalf("detaching: exit status %d", code)
		}
		if rest := p.Transcript()[from:]; strings.Contains(rest, "condenserctl") {
			p.Fatalf("detaching printed %q", rest)
		}
		if s := e.state("det"); s != "running" {
			t.Fatalf("after a detach, the container is %s", s)
		}

		a := e.startPTY(24, 80, "container", "attach", "det")
		a.WaitRaw()
		a.command("echo again", "again")
		a.command("echo x=$X", "x=1") // the same shell
		a.Send("\x10\x11")
		if code := a.Wait(); code != 0 {
			a.Fatalf("detaching: exit status %d", code)
		}
		if s := e.state("det"); s != "running" {
			t.Fatalf("after a detach, the container is %s", s)
		}

		// exec -it: a shell of its own in the same container.
		x := e.startPTY(24, 80, "container", "exec", "-it", "det", "sh")
		x.WaitRaw()
		x.Expect(`# `, 0)
		x.command("echo $((6*7))", "42")
		x.command("echo x=${X:-unset}", "x=unset")
		x.command("stty size", "24 80")
		x.Send("exit 4\r")
		if code := x.Wait(); code != 4 {
			x.Fatalf("exit status %d, want 4", code)
		}

		// exec -t of a command that looks at its terminal at once: it
		// starts with the client's size.
		z := e.startPTY(33, 77, "container", "exec", "-t", "det", "sh", "-c", "stty size")
		z.Expect(`33 77`, 0)
		if code := z.Wait(); code != 0 {
			z.Fatalf("exit status %d, want 0", code)
		}

		// Attached again, the shell's exit is attach's.
		a = e.startPTY(24, 80, "container", "attach", "det")
		a.WaitRaw()
		a.command("echo x=$X", "x=1")
		a.Send("exit 5\r")
		if code := a.Wait(); code != 5 {
			a.Fatalf("exit status %d, want 5", code)
		}
		// The shim tells the exit status before the daemon records the
		// stop: attach returns once it has (a script's next command must
		// not find the container running).
		if st := e.state("det"); st != "stopped" {
			t.Fatalf("container det is %s when attach has returned, want stopped", st)
		}

		// start -ai: a stopped container's new shell on this terminal.
		s := e.startPTY(24, 80, "container", "start", "-ai", "det")
		s.WaitRaw()
		s.command("echo x=${X:-unset}", "x=unset")
		s.Send("exit 6\r")
		if code := s.Wait(); code != 6 {
			s.Fatalf("exit status %d, want 6", code)
		}
	})

	t.Run("exec without a terminal", func(t *testing.T) {
		e := e.in(t)
		e.must("container", "run", "-d", "--name", "box", "busybox", "sleep", "600")
		r := e.run("container", "exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3")
		if r.stdout != "out\n" || r.stderr != "err\n" || r.code != 3 {
			t.Errorf("exec sh -c: %+v", r)
		}
		if r := e.run("container", "exec", "box", "true"); r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("exec true: %+v", r)
		}
		if r := e.run("container", "exec", "box", "nosuchcommand"); r.code != 127 || !strings.Contains(r.stderr, "nosuchcommand") {
			t.Errorf("exec nosuchcommand: %+v", r)
		}
		if r := e.run("container", "exec", "box", "/etc/passwd"); r.code != 126 {
			t.Errorf("exec /etc/passwd: %+v", r)
		}
		r = e.runIn("in\n", "container", "exec", "-i", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "box", "sh", "-c", `cat; echo "$A $(pwd) $(id -un)"`)
		if r.stdout != "in\n1 /tmp nobody\n" || r.code != 0 {
			t.Errorf("exec -i -e -w -u: %+v", r)
		}
		if r := e.run("container", "exec", "-d", "box", "sh", "-c", "echo done > /tmp/d"); r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("exec -d: %+v", r)
		}
		for deadline := time.Now().Add(expectTimeout); ; time.Sleep(20 * time.Millisecond) {
			if r := e.run("container", "exec", "box", "cat", "/tmp/d"); r.stdout == "done\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("exec -d: the command did not run")
			}
		}
	})

	t.Run("run -i without a terminal", func(t *testing.T) {
		e := e.in(t)
		if r := e.runIn("hi\n", "container", "run", "-i", "--rm", "busybox", "cat"); r.stdout != "hi\n" || r.stderr != "" || r.code != 0 {
			t.Errorf("echo hi | run -i cat: %+v", r)
		}
		// Megabytes of every byte value, ctrl-p ctrl-q included: all of
		// it goes in (no detach keys off a terminal), in order.
		var big []byte
		for i := 0; len(big) < 3<<20; i++ {
			big = append(big, byte(i), byte(i*7), 0x10, 0x11)
		}
		if r := e.runIn(string(big), "container", "run", "-i", "--rm", "busybox", "cat"); r.stdout != string(big) || r.code != 0 {
			t.Errorf("3 MiB | run -i cat: exit %d, stderr %q, %d bytes out (md5 %x), want %d (md5 %x)",
				r.code, r.stderr, len(r.stdout), md5.Sum([]byte(r.stdout)), len(big), md5.Sum(big))
		}
		// Without -i the input is not the container's: cat reads nothing.
		if r := e.runIn("hi\n", "container", "run", "--rm", "busybox", "cat"); r.stdout != "" || r.code != 0 {
			t.Errorf("echo hi | run cat: %+v", r)
		}
		r := e.run("container", "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7")
		if r.stdout != "out\n" || r.stderr != "err\n" || r.code != 7 {
			t.Errorf("run: %+v", r)
		}
	})

	t.Run("-t without a terminal", func(t *testing.T) {
		e := e.in(t)
		for _, args := range [][]string{
			{"container", "run", "-t", "--name", "notty", "busybox", "true"},
			{"container", "run", "-it", "--name", "notty", "busybox", "true"},
			{"container", "exec", "-it", "box", "sh"},
		} {
			if r := e.run(args...); r.code != 1 || r.stderr != "condenserctl: the input device is not a TTY\n" || r.stdout != "" {
				t.Errorf("%q: %+v", args, r)
			}
		}
		if r := e.run("container", "inspect", "notty"); r.code != 1 {
			t.Errorf("run -t without a terminal created a container: %+v", r)
		}
	})
}

// TestAttachAcrossDaemonRestart: a client attached to a terminal loses its
// daemon (kill -9); the container's shell goes on, and a client attaches to
// it through the restarted daemon.
func TestAttachAcrossDaemonRestart(t *testing.T) {
	e := startEnv(t)
	e.must("image", "pull", "busybox")

	p := e.startPTY(24, 80, "container", "run", "-it", "--name", "keep", "busybox", "sh")
	p.WaitRaw()
	p.Expect(`# `, 0)
	p.command("X=kept; echo set-$((1+1))", "set-2")
	from := p.Mark()
	e.stopDaemon(syscall.SIGKILL)
	if code := p.Wait(); code == 0 {
		p.Fatalf("exit status 0 after the daemon was killed")
	}
	p.Expect(`condenserctl: lost the connection to Condenser`, from)

	e.startDaemon()
	if s := e.state("keep"); s != "running" {
		t.Fatalf("after the daemon's restart, the container is %s", s)
	}
	a := e.startPTY(24, 80, "container", "attach", "keep")
	a.WaitRaw()
	a.command("echo $X", "kept")
	a.Send("exit\r")
	if code := a.Wait(); code != 0 {
		a.Fatalf("exit status %d", code)
	}
}
