package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/rootfs"
)

// OCI drives runc or crun through the standard OCI command line, with its
// state under Root and its log in the bundle so that its own error messages
// reach the caller.
type OCI struct {
	Binary  string  // runc, crun, or a path
	Root    string  // --root: the runtime's state directory
	Monitor Monitor // runs the commands without racing the reaper

	mu       sync.Mutex
	fifoInit map[string]int // created runc containers startable by their exec FIFO: init pid by id
	execSeq  atomic.Uint64  // names the files of the exec processes being started
}

var _ Driver = (*OCI)(nil)

// logName is the runtime's log (--log, JSON lines) in the bundle.
const logName = "runtime.log"

func (o *OCI) Create(ctx context.Context, opts CreateOptions) (Process, error) {
	rootfsDir := filepath.Join(opts.Bundle, "rootfs")
	if len(opts.Mounts) > 0 {
		if err := os.MkdirAll(rootfsDir, 0o755); err != nil {
			return Process{}, err
		}
		if err := rootfs.MountAll(opts.Mounts, rootfsDir); err != nil {
			return Process{}, err
		}
	}
	pidFile := filepath.Join(opts.Bundle, "init.pid")
	// Read before the runtime runs, not after: the time between its exit
	// and the create's answer is on the path of every start.
	byFifo := o.name() == "runc" && !hasPoststartHooks(opts.Bundle)
	var console string
	if opts.Terminal {
		console = filepath.Join(opts.Bundle, "c.sock")
	}
	p, err := o.runProcess(ctx, o.logPath(opts.Bundle), &stdio{in: opts.Stdin, out: opts.Stdout, err: opts.Stderr}, console, pidFile,
		opts.ID, "create", "--bundle", opts.Bundle, "--pid-file", pidFile)
	if err != nil {
		// A create that failed half-way may leave the runtime's state, and
		// an init waiting to be started: remove them (not when the
		// container existed before: it is not this create's).
		if !strings.Contains(err.Error(), "already exists") {
			dctx := context.WithoutCancel(ctx)
			if _, derr := o.run(dctx, o.logPath(""), nil, "delete", "--force", opts.ID); derr != nil {
				os.RemoveAll(filepath.Join(o.Root, opts.ID))
			}
		}
		if len(opts.Mounts) > 0 {
			rootfs.UnmountAll(rootfsDir)
		}
		return Process{}, err
	}
	if byFifo {
		o.mu.Lock()
		if o.fifoInit == nil {
			o.fifoInit = map[string]int{}
		}
		o.fifoInit[opts.ID] = p.Pid
		o.mu.Unlock()
	}
	return p, nil
}

// runProcess runs a runtime command that starts a process (create, exec
// --detach) with streams as its standard streams, or, with a console
// socket path, with a terminal whose master it receives there (the
// runtime's own streams are then /dev/null); then it reads the process's
// pid from pidFile. On failure nothing of the terminal is left open.
func (o *OCI) runProcess(ctx context.Context, logFile string, streams *stdio, console, pidFile, id string, args ...string) (Process, error) {
	var cs *consoleSocket
	if console != "" {
		var err error
		if cs, err = listenConsole(console); err != nil {
			return Process{}, fmt.Errorf("%s %s: %w", o.name(), args[0], err)
		}
		streams = &stdio{}
		args = append(args, "--console-socket", cs.path)
	}
	_, err := o.run(ctx, logFile, streams, append(args, id)...)
	var p Process
	if cs != nil {
		var cerr error
		p.Console, cerr = cs.wait(err == nil)
		if err == nil && cerr != nil {
			// The process runs, but the master of its terminal was never
			// taken: closed with the socket, it hangs the process up.
			err = fmt.Errorf("%s %s: %w", o.name(), args[0], cerr)
		}
	}
	if err == nil {
		if p.Pid, err = readPidFile(pidFile); err != nil {
			err = fmt.Errorf("%s %s: %w", o.name(), args[0], err)
		}
	}
	if err != nil {
		if p.Console != nil {
			p.Console.Close()
		}
		return Process{}, err
	}
	return p, nil
}

// readPidFile reads the pid a runtime wrote to path.
func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file holds %q", b)
	}
	return pid, nil
}

// execNames numbers the runtime's files of the exec processes being
// started (process, pid file, console socket, log) in the bundle: base 36,
// three digits at most, so that a console socket's path is no longer than
// the shim's own socket's (bundle/shim.sock).
const execNames = 36 * 36 * 36

// Exec runs `exec --detach --pid-file F --process P [--console-socket S]
// ID`. The runtime's files for the exec (the process, its pid file, the
// console socket and the runtime's log of this command, which concurrent
// execs must not share) are removed before it returns.
func (o *OCI) Exec(ctx context.Context, opts ExecOptions) (Process, error) {
	base := filepath.Join(opts.Bundle, "x"+strconv.FormatUint((o.execSeq.Add(1)-1)%execNames, 36))
	procFile, pidFile, logFile := base+".json", base+".pid", base+".log"
	defer func() {
		for _, f := range []string{procFile, pidFile, logFile} {
			os.Remove(f)
		}
	}()
	if err := os.WriteFile(procFile, opts.Process, 0o600); err != nil {
		return Process{}, fmt.Errorf("%s exec: %w", o.name(), err)
	}
	os.Remove(pidFile) // a killed shim's
	os.Remove(logFile)
	var console string
	if opts.Terminal {
		console = base + ".sock"
	}
	return o.runProcess(ctx, logFile, &stdio{in: opts.Stdin, out: opts.Stdout, err: opts.Stderr}, console, pidFile,
		opts.ID, "exec", "--detach", "--pid-file", pidFile, "--process", procFile)
}

// hasPoststartHooks reports whether the bundle's configuration may have
// poststart hooks (which a later runc could run at start); when in doubt,
// it says yes.
func hasPoststartHooks(bundle string) bool {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	return err != nil || bytes.Contains(b, []byte(`"poststart"`))
}

func (o *OCI) Start(ctx context.Context, id string) error {
	o.mu.Lock()
	pid, ok := o.fifoInit[id]
	delete(o.fifoInit, id)
	o.mu.Unlock()
	if ok {
		err := startByFifo(ctx, filepath.Join(o.Root, id, execFifo), pid)
		if !errors.Is(err, errNoFifo) {
			return err
		}
	}
	_, err := o.run(ctx, o.logPath(""), nil, "start", id)
	return err
}

func (o *OCI) State(ctx context.Context, id string) (State, error) {
	out, err := o.run(ctx, o.logPath(""), nil, "state", id)
	if err != nil {
		return State{}, err
	}
	var st State
	var raw struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return State{}, fmt.Errorf("%s state: %w", o.name(), err)
	}
	st.Status, st.Pid = raw.Status, raw.Pid
	return st, nil
}

func (o *OCI) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := o.run(ctx, o.logPath(""), nil, append(args, id, strconv.Itoa(int(sig)))...)
	if initGone(err) {
		// The init is gone: its exit is on its way to the reaper.
		return fmt.Errorf("process already finished: %w: %w", errdefs.ErrNotFound, err)
	}
	return err
}

// initGone tells whether a kill failed because the container's init has
// exited: runc says "container not running" when it sees it gone first,
// and "unable to signal init: os: process already finished" when the init
// exits between its check and its signal.
func initGone(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "not running") || strings.Contains(err.Error(), "process already finished"))
}

func (o *OCI) Delete(ctx context.Context, id string, bundle string, force bool) error {
	o.mu.Lock()
	delete(o.fifoInit, id)
	o.mu.Unlock()
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	if _, err := o.run(ctx, o.logPath(""), nil, append(args, id)...); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return rootfs.UnmountAll(filepath.Join(bundle, "rootfs"))
}

func (o *OCI) name() string { return filepath.Base(o.Binary) }

// logPath is the runtime's log (--log) for the commands on a container
// whose bundle is bundle, or for those that name no bundle.
func (o *OCI) logPath(bundle string) string {
	if bundle != "" {
		return filepath.Join(bundle, logName)
	}
	return filepath.Join(o.Root, logName)
}

// stdio are the standard streams of a runtime command that hands them to
// a container's process; nil is /dev/null.
type stdio struct{ in, out, err *os.File }

// attach makes the streams cmd's standard streams. A nil *os.File must
// not become a non-nil io.Reader or io.Writer: a missing stream is left
// as cmd has it.
func (s stdio) attach(cmd *exec.Cmd) {
	if s.in != nil {
		cmd.Stdin = s.in
	}
	if s.out != nil {
		cmd.Stdout = s.out
	}
	if s.err != nil {
		cmd.Stderr = s.err
	}
}

// run runs one runtime command with its log at logPath. Without streams
// its stdout is returned; with them, they are its standard streams. On
// failure the runtime's own error message (from its log, or its stderr)
// is in the error.
func (o *OCI) run(ctx context.Context, logPath string, streams *stdio, args ...string) ([]byte, error) {
	var offset int64
	if fi, err := os.Stat(logPath); err == nil {
		offset = fi.Size()
	}
	full := append([]string{"--root", o.Root, "--log", logPath, "--log-format", "json"}, args...)
	cmd := exec.Command(o.Binary, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if streams != nil {
		cmd.Stdout, cmd.Stderr = nil, nil
		streams.attach(cmd)
	}
	cmd.Env = CleanEnv()
	status, err := runMonitored(ctx, o.Monitor, cmd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.name(), args[0], err)
	}
	if status != 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := lastLogError(logPath, offset)
		if msg == "" {
			msg = strings.TrimSpace(errb.String())
		}
		// runc says "runc create failed: …" itself: say it once.
		msg = strings.TrimPrefix(msg, o.name()+" "+args[0]+" failed: ")
		return nil, classifyCommand(args[0], fmt.Errorf("%s %s failed (exit status %d): %s", o.name(), args[0], status, msg))
	}
	return out.Bytes(), nil
}

// lastLogError returns the last error message the runtime logged after
// offset.
func lastLogError(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	var msg string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && (e.Level == "error" || e.Level == "fatal") && e.Msg != "" {
			msg = e.Msg
		}
	}
	return msg
}

// requestFaults are the wordings (lowercased) of runc's and crun's create
// and start failures that the container's configuration — so the request —
// caused: its command cannot be found or executed, its user does not exist,
// one of its mounts cannot be made. Docker answers them 400 too (moby's
// translateContainerdStartErr).
var requestFaults = []string{
	"no such file or directory",         // runc: exec: "/x": stat /x: no such file or directory; crun: … No such file or directory
	"executable file not found",         // runc: exec: "x": executable file not found in $PATH
	"not found in $path",                // crun: executable file `x` not found in $PATH
	"permission denied",                 // exec of a file that is not executable
	"exec format error",                 // a binary of another architecture
	"not a directory", "is a directory", // a file mounted on a directory or the reverse
	"cannot be mounted", "error mounting", // runc: a mount over /proc, …
	"unable to find user", "unable to find group", "no matching entries in passwd file",
	"is not allowed", // a mount destination the runtime forbids
}

// classifyCommand gives a failure of the runtime command cmd its errdefs
// kind. A create or a start that fails because of the container's
// configuration, or an exec because of its process's, is an invalid
// argument, with the runtime's own message; the rest is classify's.
func classifyCommand(cmd string, err error) error {
	m := strings.ToLower(err.Error())
	if cmd == "create" || cmd == "start" || cmd == "exec" {
		if strings.Contains(m, "already exists") || strings.Contains(m, "cannot start") || strings.Contains(m, "not running") ||
			strings.Contains(m, "cannot exec") || cmd == "exec" && strings.Contains(m, "container does not exist") {
			return classify(err)
		}
		for _, f := range requestFaults {
			if strings.Contains(m, f) {
				return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
			}
		}
	}
	return classify(err)
}

// classify gives runtime failures an errdefs kind where the message tells.
func classify(err error) error {
	m := err.Error()
	switch {
	case strings.Contains(m, "does not exist"), strings.Contains(m, "not found"), strings.Contains(m, "No such file"):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case strings.Contains(m, "not running"), strings.Contains(m, "already exists"), strings.Contains(m, "cannot start"),
		strings.Contains(m, "cannot exec"): // runc: cannot exec in a stopped container
		return fmt.Errorf("%w: %w", errdefs.ErrConflict, err)
	}
	return err
}
