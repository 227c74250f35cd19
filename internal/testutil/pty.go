package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ExpectTimeout bounds every wait of a PTY for output or an exit.
const ExpectTimeout = 20 * time.Second

// PTY is a command on a pseudo-terminal: what the test types goes to its
// input, what it prints is the transcript.
type PTY struct {
	t    testing.TB
	Cmd  *exec.Cmd
	File *os.File // the terminal's master

	mu   sync.Mutex
	out  []byte
	eof  bool
	more chan struct{} // a token after every read

	exited chan struct{}
	code   int
}

// StartPTY starts cmd on a new terminal of rows×cols; the test's cleanup
// kills it if it still runs.
func StartPTY(t testing.TB, cmd *exec.Cmd, rows, cols uint16) *PTY {
	t.Helper()
	p := &PTY{t: t, Cmd: cmd, more: make(chan struct{}, 1), exited: make(chan struct{})}
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatalf("%q on a terminal: %v", cmd.Args, err)
	}
	p.File = f
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			p.mu.Lock()
			p.out = append(p.out, buf[:n]...)
			p.eof = err != nil
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		f.Close()
	})
	return p
}

// Transcript is everything printed so far.
func (p *PTY) Transcript() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.out)
}

// Fatalf fails the test with the transcript.
func (p *PTY) Fatalf(format string, a ...any) {
	p.t.Helper()
	p.t.Fatalf("%q: %s\ntranscript: %q", p.Cmd.Args, fmt.Sprintf(format, a...), p.Transcript())
}

// Mark is where the transcript is now: expect from there.
func (p *PTY) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.out)
}

// Expect waits until the transcript from from on matches re; it returns
// where the match ends and its submatches.
func (p *PTY) Expect(re string, from int) (int, []string) {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.NewTimer(ExpectTimeout)
	defer timeout.Stop()
	for {
		p.mu.Lock()
		out, eof := string(p.out[from:]), p.eof
		p.mu.Unlock()
		if m := rx.FindStringSubmatchIndex(out); m != nil {
			subs := make([]string, len(m)/2)
			for i := range subs {
				if m[2*i] >= 0 {
					subs[i] = out[m[2*i]:m[2*i+1]]
				}
			}
			return from + m[1], subs
		}
		if eof {
			p.Fatalf("the output ended before %q", re)
		}
		select {
		case <-p.more:
		case <-timeout.C:
			p.Fatalf("no %q after %s", re, ExpectTimeout)
		}
	}
}

// Send types s.
func (p *PTY) Send(s string) {
	p.t.Helper()
	if _, err := p.File.Write([]byte(s)); err != nil {
		p.Fatalf("typing %q: %v", s, err)
	}
}

// WaitRaw waits until the command has put its terminal in raw mode: its
// session is up and typing goes to it (not to a local echo).
func (p *PTY) WaitRaw() {
	p.t.Helper()
	deadline := time.Now().Add(ExpectTimeout)
	for {
		tio, err := unix.IoctlGetTermios(int(p.File.Fd()), unix.TCGETS)
		if err != nil {
			p.Fatalf("termios: %v", err)
		}
		if tio.Lflag&(unix.ECHO|unix.ICANON) == 0 {
			return
		}
		select {
		case <-p.exited:
			p.Fatalf("exited (%d) before its terminal was raw", p.code)
		default:
		}
		if time.Now().After(deadline) {
			p.Fatalf("its terminal is not raw after %s", ExpectTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Wait waits for the command to exit and returns its status.
func (p *PTY) Wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(ExpectTimeout):
		p.Fatalf("still running after %s", ExpectTimeout)
	}
	return 0
}
