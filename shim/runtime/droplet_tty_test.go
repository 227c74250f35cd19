package runtime

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/internal/testutil"
	"github.com/raind/condenser/shim/reaper"
	"github.com/raind/condenser/shim/stats"
)

// TestMain runs the test binary as the fake droplet's tty shims when the
// fake asks for one (testdata/fake-droplet.sh: shim, exec-shim).
func TestMain(m *testing.M) {
	if os.Getenv("FAKE_DROPLET_HELPER") != "" {
		os.Exit(fakeDropletHelper(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeDropletHelper is Droplet's tty shim (internal/container/shim.go)
// and exec shim (exec_shim.go), as they are: args are shim ID FIFO ARGS…
// or exec-shim ID PID ARGS…. It listens on the socket, starts the process
// on a new terminal (the fake's init, or nsenter), serves the terminal on
// the socket (frames in; raw output to the last client connected, and to
// the console log) and exits when the process does. The tty shim exits
// with the init's exit code, 255 when a signal killed it (urfave/cli
// exits with an exec.ExitError's ExitCode, -1 then); the exec shim always
// panics at its end (its audit record indexes the spec it never loaded)
// and exits with status 2.
func fakeDropletHelper(args []string) int {
	if len(args) < 4 {
		fmt.Fprintln(os.Stderr, "fake droplet helper: usage: shim|exec-shim ID FIFO|PID ARGS…")
		return 3
	}
	c := filepath.Join(os.Getenv("RAIND_ROOT_DIR"), args[1])
	var sock, console, logName string
	var cmd *exec.Cmd
	switch args[0] {
	case "shim":
		sock, console, logName = "tty.sock", "console.log", "shim.log"
		cmd = exec.Command(os.Getenv("FAKE_SCRIPT"), append([]string{"init", args[1], args[2]}, args[3:]...)...)
	case "exec-shim":
		sock, console, logName = "exec_tty.sock", "exec_console.log", "exec_shim.log"
		cmd = exec.Command("nsenter", append([]string{"-t", args[2], "--all"}, args[3:]...)...)
	default:
		return 3
	}
	sock = filepath.Join(c, sock)
	fatal := func(err error) int {
		log.Print(err)
		return 1
	}
	lf, err := os.OpenFile(filepath.Join(c, "logs", logName), os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return fatal(err)
	}
	defer lf.Close()
	logger := log.New(lf, args[0]+": ", log.LstdFlags|log.Lmicroseconds)
	if args[0] == "exec-shim" {
		if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fatal(err)
		}
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		return fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fatal(err)
	}
	consoleLog, err := os.OpenFile(filepath.Join(c, "logs", console), os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		logger.Printf("start failed: %v", err)
		return fatal(err)
	}
	logger.Printf("started pid=%d", cmd.Process.Pid)
	if args[0] == "shim" {
		f, _ := os.OpenFile(filepath.Join(os.Getenv("FAKE_DIR"), "inits"), os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintln(f, cmd.Process.Pid)
		f.Close()
		tmp := filepath.Join(c, ".init.pid.tmp")
		os.WriteFile(tmp, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
		if err := os.Rename(tmp, filepath.Join(c, "init.pid")); err != nil {
			return fatal(err)
		}
	}
	tty.Close()

	var mu sync.Mutex
	var conn net.Conn
	go func() { // the terminal's output: to the log and the client
		buf := make([]byte, 32<<10)
		for {
			n, err := ptmx.Read(buf)
			if n > 0 {
				consoleLog.Write(buf[:n])
				mu.Lock()
				cc := conn
				mu.Unlock()
				if cc != nil {
					cc.Write(buf[:n])
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // one client at a time: a new one drops the previous
		for {
			cc, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			mu.Lock()
			if conn != nil {
				conn.Close()
			}
			conn = cc
			mu.Unlock()
			go func() {
				readFrames(cc, ptmx)
				mu.Lock()
				if conn == cc {
					conn = nil
				}
				mu.Unlock()
				cc.Close()
			}()
		}
	}()
	werr := cmd.Wait()
	logger.Printf("exited: %v", werr)
	ln.Close()
	os.Remove(sock)
	if args[0] == "exec-shim" {
		fmt.Fprintln(os.Stderr, "panic: runtime error: index out of range [0] with length 0")
		return 2
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		fmt.Fprintln(os.Stderr, werr)
		return ee.ExitCode() & 0xff
	}
	if werr != nil {
		return fatal(werr)
	}
	return 0
}

// readFrames applies a client's frames to the terminal: 0 is input, 1 a
// resize (rows, cols u16 BE; another length is ignored), others ignored.
func readFrames(r io.Reader, ptmx *os.File) error {
	h := make([]byte, 5)
	for {
		if _, err := io.ReadFull(r, h); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(h[1:5])
		if n > 8<<20 {
			return fmt.Errorf("frame too large: %d", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			return err
		}
		switch h[0] {
		case 0:
			if len(p) > 0 {
				if _, err := ptmx.Write(p); err != nil {
					return err
				}
			}
		case 1:
			if len(p) == 4 {
				pty.Setsize(ptmx, &pty.Winsize{Rows: binary.BigEndian.Uint16(p[0:2]), Cols: binary.BigEndian.Uint16(p[2:4])})
			}
		}
	}
}

// recordMonitor is execMonitor keeping the exit status of each process it
// waited for.
type recordMonitor struct {
	mu    sync.Mutex
	exits map[int]chan int
}

func (m *recordMonitor) ch(pid int) chan int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exits == nil {
		m.exits = map[int]chan int{}
	}
	if m.exits[pid] == nil {
		m.exits[pid] = make(chan int, 1)
	}
	return m.exits[pid]
}

func (m *recordMonitor) Start(cmd *exec.Cmd) (<-chan reaper.Exit, error) {
	return execMonitor{}.Start(cmd)
}

func (m *recordMonitor) Wait(cmd *exec.Cmd, ch <-chan reaper.Exit) (int, error) {
	status, err := execMonitor{}.Wait(cmd, ch)
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		status = 128 + int(ws.Signal()) // as the reaper tells it
	}
	if err == nil {
		m.ch(cmd.Process.Pid) <- status
	}
	return status, err
}

// exit waits for the exit status of pid, a process the monitor started.
func (m *recordMonitor) exit(t *testing.T, pid int) int {
	t.Helper()
	select {
	case s := <-m.ch(pid):
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("process %d has not exited", pid)
		return 0
	}
}

// console reads a terminal's master in the background.
type console struct {
	f    *os.File
	mu   sync.Mutex
	out  []byte
	done chan struct{}
}

func readConsole(t *testing.T, f *os.File) *console {
	c := &console{f: f, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			c.mu.Lock()
			c.out = append(c.out, buf[:n]...)
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { f.Close(); <-c.done })
	return c
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.out)
}

// waitFor waits until the output has s.
func (c *console) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the terminal's output %q", s, c.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// end waits for the terminal's end (EIO once the relay let go).
func (c *console) end(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the terminal has not ended; output %q", c.String())
	}
}

// setSize sets the master's window size and passes it on, as the shim does.
func setSize(t *testing.T, p Process, rows, cols uint16) {
	t.Helper()
	if err := pty.Setsize(p.Console, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(rows, cols); err != nil {
		t.Fatal(err)
	}
}

func cmdline(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// TestDropletTerminal creates a container with a terminal (create -t):
// the driver relays Droplet's tty.sock to a terminal of its own, input,
// output and window size; the process is Droplet's tty shim, which ends
// with the init and ends the terminal.
func TestDropletTerminal(t *testing.T) {
	ctx := context.Background()
	f := newFakeDroplet(t)
	f.writeBundle(t, strings.Replace(testBundle, `"terminal": false`, `"terminal": true`, 1))
	// The init runs the process's args: an interactive shell.
	bundle := strings.Replace(testBundle, `"args": ["/bin/sh", "-c", "echo hi"]`, `"args": ["/bin/sh"]`, 1)
	f.writeBundle(t, bundle)
	os.WriteFile(filepath.Join(f.dir, "init-args"), nil, 0o644)
	p, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay, Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.calls(t), []string{"create -t " + testID, "state " + testID}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	if p.Console == nil || p.Resize == nil {
		t.Fatalf("process %+v: no terminal", p)
	}
	if args := cmdline(p.Pid); len(args) < 3 || args[1] != "shim" || args[2] != testID {
		t.Errorf("process %d runs %q, want Droplet's tty shim", p.Pid, args)
	}
	con := readConsole(t, p.Console)
	if err := f.d.Start(ctx, testID); err != nil {
		t.Fatal(err)
	}
	setSize(t, p, 31, 97)
	io.WriteString(p.Console, "stty size; echo fr$((6*7))om-sh\n")
	con.waitFor(t, "31 97")
	con.waitFor(t, "fr42om-sh") // not the echo of the input
	setSize(t, p, 12, 40)
	io.WriteString(p.Console, "stty size\n")
	con.waitFor(t, "12 40")
	io.WriteString(p.Console, "exit 3\n")
	// The tty shim ends with the init: the terminal ends.
	con.end(t)
	if err := p.Resize(1, 1); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("resize after the end: %v", err)
	}
	if err := f.d.Delete(ctx, testID, f.bundle, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.root, testID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container directory left: %v", err)
	}
}

// TestDropletTerminalCreateFails: the tty shim of a create that fails
// after starting it is gone with everything else.
func TestDropletTerminalCreateFails(t *testing.T) {
	ctx := context.Background()
	f := newFakeDroplet(t)
	f.writeBundle(t, testBundle)
	os.MkdirAll(filepath.Join(f.fixed, "cgroup", testID, "memory.max"), 0o755)
	if _, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay, Terminal: true}); err == nil {
		t.Fatal("create succeeded")
	}
	if pids := dropletInitsOf(t, f); len(pids) > 0 {
		t.Errorf("inits or tty shims left: %v", pids)
	}
	for _, n := range []string{"tty.sock", "init.pid", "state.json"} {
		if _, err := os.Lstat(filepath.Join(f.root, testID, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", n, err)
		}
	}
}

// runningContainer creates and starts the fake's container (its init: a
// sleep in the test's namespaces, which nsenter can enter).
func runningContainer(t *testing.T, f *fakeDroplet) int {
	t.Helper()
	ctx := context.Background()
	f.writeBundle(t, testBundle)
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if _, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay, Stdout: w}); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Start(ctx, testID); err != nil {
		t.Fatal(err)
	}
	st, err := f.d.State(ctx, testID)
	if err != nil || st.Status != "running" {
		t.Fatalf("state %+v %v", st, err)
	}
	t.Cleanup(func() { f.d.Delete(context.Background(), testID, f.bundle, true) })
	f.calls(t)
	return st.Pid
}

func processJSON(t *testing.T, p specs.Process) []byte {
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDropletExec runs exec processes without a terminal: nsenter into
// the init's namespaces, the process's pid and exit status, its three
// streams, env, cwd and user.
func TestDropletExec(t *testing.T) {
	testutil.RequireRoot(t) // nsenter
	ctx := context.Background()
	f := newFakeDroplet(t)
	m := &recordMonitor{}
	f.d.Monitor = m
	runningContainer(t, f)
	tests := []struct {
		name   string
		proc   specs.Process
		stdin  string
		stdout string
		stderr string
		status int
	}{
		{"streams", specs.Process{Args: []string{"sh", "-c", "read x; echo out $x; echo err >&2; exit 3"}},
			"hi\n", "out hi\n", "err\n", 3},
		{"env", specs.Process{Args: []string{"sh", "-c", "echo $FOO"}, Env: []string{"FOO=bar", "PATH=/usr/bin:/bin"}}, "", "bar\n", "", 0},
		{"cwd", specs.Process{Args: []string{"pwd"}, Cwd: "/tmp"}, "", "/tmp\n", "", 0},
		{"user", specs.Process{Args: []string{"id", "-u"}, User: specs.User{UID: 65534, GID: 65534}}, "", "65534\n", "", 0},
		{"signal", specs.Process{Args: []string{"sh", "-c", "kill -9 $$"}}, "", "", "", 137},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inR, inW, _ := os.Pipe()
			outR, outW, _ := os.Pipe()
			errR, errW, _ := os.Pipe()
			defer inW.Close()
			p, err := f.d.Exec(ctx, ExecOptions{ID: testID, Bundle: f.bundle, Process: processJSON(t, tc.proc), Stdin: inR, Stdout: outW, Stderr: errW})
			inR.Close()
			outW.Close()
			errW.Close()
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(inW, tc.stdin)
			inW.Close()
			var stderr []byte
			done := make(chan struct{})
			go func() { stderr, _ = io.ReadAll(errR); close(done) }()
			stdout, _ := io.ReadAll(outR)
			<-done
			if string(stdout) != tc.stdout || string(stderr) != tc.stderr {
				t.Errorf("stdout %q stderr %q, want %q %q", stdout, stderr, tc.stdout, tc.stderr)
			}
			if s := m.exit(t, p.Pid); s != tc.status {
				t.Errorf("exit status %d, want %d", s, tc.status)
			}
		})
	}
	t.Run("missing executable", func(t *testing.T) {
		plain := filepath.Join(t.TempDir(), "plain")
		os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644)
		for _, name := range []string{"no-such-command", "/no/such/command", plain, "/"} {
			_, err := f.d.Exec(ctx, ExecOptions{ID: testID, Bundle: f.bundle, Process: processJSON(t, specs.Process{Args: []string{name}})})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%s: error %v, want invalid argument", name, err)
			}
		}
	})
	t.Run("not running", func(t *testing.T) {
		_, err := f.d.Exec(ctx, ExecOptions{ID: names.NewID(), Bundle: f.bundle, Process: processJSON(t, specs.Process{Args: []string{"true"}})})
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("error %v, want not found", err)
		}
	})
	if got := f.calls(t); got != nil {
		t.Errorf("ran droplet %q", got)
	}
}

// TestDropletExecTerminal runs exec processes with a terminal: nsenter on
// a terminal of the driver's (Droplet's exec shim would lose the exit
// status), two at once, each with its own window size.
func TestDropletExecTerminal(t *testing.T) {
	testutil.RequireRoot(t) // nsenter
	ctx := context.Background()
	f := newFakeDroplet(t)
	m := &recordMonitor{}
	f.d.Monitor = m
	runningContainer(t, f)
	exec := func(t *testing.T, proc specs.Process) (Process, *console) {
		t.Helper()
		proc.Terminal = true
		p, err := f.d.Exec(ctx, ExecOptions{ID: testID, Bundle: f.bundle, Process: processJSON(t, proc), Terminal: true})
		if err != nil {
			t.Fatal(err)
		}
		if p.Console == nil {
			t.Fatalf("process %+v: no terminal", p)
		}
		// Fd would make it blocking.
		rc, err := p.Console.SyscallConn()
		if err != nil {
			t.Fatalf("terminal not pollable: %v", err)
		}
		rc.Control(func(fd uintptr) {
			if fl, err := unix.FcntlInt(fd, unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
				t.Errorf("terminal not close-on-exec: %v", err)
			}
			if fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
				t.Errorf("terminal blocking: %v", err)
			}
		})
		return p, readConsole(t, p.Console)
	}
	p1, c1 := exec(t, specs.Process{Args: []string{"sh"}, Env: []string{"PS1=one$ ", "PATH=/usr/bin:/bin"}})
	p2, c2 := exec(t, specs.Process{Args: []string{"sh"}, Env: []string{"PS1=two$ ", "PATH=/usr/bin:/bin"}, Cwd: "/tmp"})
	for _, p := range []Process{p1, p2} {
		if err := pty.Setsize(p.Console, &pty.Winsize{Rows: uint16(20 + p.Pid%7), Cols: 80}); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(p1.Console, "stty size; pwd\n")
	io.WriteString(p2.Console, "stty size; pwd\n")
	c1.waitFor(t, fmt.Sprintf("%d 80\r\n/\r\n", 20+p1.Pid%7))
	c2.waitFor(t, fmt.Sprintf("%d 80\r\n/tmp\r\n", 20+p2.Pid%7))
	io.WriteString(p1.Console, "exit 0\n")
	io.WriteString(p2.Console, "exit 3\n")
	c1.end(t)
	c2.end(t)
	if s := m.exit(t, p1.Pid); s != 0 {
		t.Errorf("exit status %d, want 0", s)
	}
	if s := m.exit(t, p2.Pid); s != 3 {
		t.Errorf("exit status %d, want 3", s)
	}
	if strings.Contains(c1.String(), "two$") || strings.Contains(c2.String(), "one$") {
		t.Errorf("the terminals mixed: %q, %q", c1, c2)
	}
	if got := f.calls(t); got != nil {
		t.Errorf("ran droplet %q", got)
	}
}

// TestDropletStatsCgroup: on a host with v1 hierarchies the driver puts
// the init, with its limits, in the bundle's cgroupsPath, where the shim
// reads the container's stats (shim/stats) and watches for OOM kills; the
// delete removes it.
func TestDropletStatsCgroup(t *testing.T) {
	if os.Getuid() != 0 || cgroupV2() {
		t.Skip("needs root and cgroup v1 hierarchies")
	}
	ctx := context.Background()
	f := newFakeDroplet(t)
	f.d.v1 = 1
	path := "/condenser-test/" + testID
	if dirs, err := v1Dirs(path); err != nil || dirs["memory"] == "" {
		t.Skipf("no v1 memory hierarchy: %v", err)
	}
	bundle := strings.Replace(testBundle, `"linux": {`, `"linux": {"cgroupsPath": "`+path+`", "resources": {"memory": {"limit": 67108864}},`, 1)
	f.writeBundle(t, bundle)
	p, err := f.d.Create(ctx, CreateOptions{ID: testID, Bundle: f.bundle, Mounts: testOverlay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.d.Delete(context.Background(), testID, f.bundle, true) })
	cg, err := stats.Load(path)
	if err != nil {
		t.Fatalf("the shim's view of the container's cgroup: %v", err)
	}
	st, err := cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.MemoryLimit != 64<<20 || st.PidsCurrent < 1 {
		t.Errorf("stats %+v: want the limit of 64 MiB and the init", st)
	}
	dirs, _ := v1Dirs(path)
	if b, _ := os.ReadFile(filepath.Join(dirs["memory"], "cgroup.procs")); !slices.Contains(strings.Fields(string(b)), strconv.Itoa(p.Pid)) {
		t.Errorf("init %d not in %s: %q", p.Pid, dirs["memory"], b)
	}
	if err := f.d.Delete(ctx, testID, f.bundle, true); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", d, err)
		}
	}
}

func TestDropletV1Path(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ config, want string }{
		{`{"linux": {"cgroupsPath": "/condenser/abc"}}`, "/condenser/abc"},
		{`{"linux": {}}`, "/raind/c1"},
		{`{}`, "/raind/c1"},
		{`{"linux": {"cgroupsPath": "system.slice:condenser:abc"}}`, "/raind/c1"},
		{`{"linux": {"cgroupsPath": "/condenser/../x"}}`, "/raind/c1"},
		{`{"linux": {"cgroupsPath": "/"}}`, "/raind/c1"},
		{`not json`, "/raind/c1"},
	} {
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(tc.config), 0o644)
		if got := v1Path(dir, "c1"); got != tc.want {
			t.Errorf("v1Path(%s) = %q, want %q", tc.config, got, tc.want)
		}
	}
}
