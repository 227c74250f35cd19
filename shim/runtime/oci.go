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
}

var _ Driver = (*OCI)(nil)

// logName is the runtime's log (--log, JSON lines) in the bundle.
const logName = "runtime.log"

func (o *OCI) Create(ctx context.Context, opts CreateOptions) (int, error) {
	rootfsDir := filepath.Join(opts.Bundle, "rootfs")
	if len(opts.Mounts) > 0 {
		if err := os.MkdirAll(rootfsDir, 0o755); err != nil {
			return 0, err
		}
		if err := rootfs.MountAll(opts.Mounts, rootfsDir); err != nil {
			return 0, err
		}
	}
	pidFile := filepath.Join(opts.Bundle, "init.pid")
	_, err := o.run(ctx, opts.Bundle, opts.Stdout, opts.Stderr, "create", "--bundle", opts.Bundle, "--pid-file", pidFile, opts.ID)
	if err != nil {
		// A create that failed half-way may leave the runtime's state, and
		// an init waiting to be started: remove them (not when the
		// container existed before: it is not this create's).
		if !strings.Contains(err.Error(), "already exists") {
			dctx := context.WithoutCancel(ctx)
			if _, derr := o.run(dctx, "", nil, nil, "delete", "--force", opts.ID); derr != nil {
				os.RemoveAll(filepath.Join(o.Root, opts.ID))
			}
		}
		if len(opts.Mounts) > 0 {
			rootfs.UnmountAll(rootfsDir)
		}
		return 0, err
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("%s create: pid file: %w", o.name(), err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s create: pid file holds %q", o.name(), b)
	}
	if o.name() == "runc" && !hasPoststartHooks(opts.Bundle) {
		o.mu.Lock()
		if o.fifoInit == nil {
			o.fifoInit = map[string]int{}
		}
		o.fifoInit[opts.ID] = pid
		o.mu.Unlock()
	}
	return pid, nil
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
	_, err := o.run(ctx, "", nil, nil, "start", id)
	return err
}

func (o *OCI) State(ctx context.Context, id string) (State, error) {
	out, err := o.run(ctx, "", nil, nil, "state", id)
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
	_, err := o.run(ctx, "", nil, nil, append(args, id, strconv.Itoa(int(sig)))...)
	if err != nil && strings.Contains(err.Error(), "not running") {
		// The init is gone: its exit is on its way to the reaper.
		return fmt.Errorf("process already finished: %w: %w", errdefs.ErrNotFound, err)
	}
	return err
}

func (o *OCI) Delete(ctx context.Context, id string, bundle string, force bool) error {
	o.mu.Lock()
	delete(o.fifoInit, id)
	o.mu.Unlock()
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	if _, err := o.run(ctx, "", nil, nil, append(args, id)...); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return rootfs.UnmountAll(filepath.Join(bundle, "rootfs"))
}

func (o *OCI) name() string { return filepath.Base(o.Binary) }

// run runs one runtime command. Its stdout is returned unless stdout is
// given; on failure the runtime's own error message (from its log, or its
// stderr) is in the error.
func (o *OCI) run(ctx context.Context, bundle string, stdout, stderr *os.File, args ...string) ([]byte, error) {
	logPath := filepath.Join(o.Root, logName)
	if bundle != "" {
		logPath = filepath.Join(bundle, logName)
	}
	var offset int64
	if fi, err := os.Stat(logPath); err == nil {
		offset = fi.Size()
	}
	full := append([]string{"--root", o.Root, "--log", logPath, "--log-format", "json"}, args...)
	cmd := exec.Command(o.Binary, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
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
// configuration is an invalid argument, with the runtime's own message;
// the rest is classify's.
func classifyCommand(cmd string, err error) error {
	m := strings.ToLower(err.Error())
	if cmd == "create" || cmd == "start" {
		if strings.Contains(m, "already exists") || strings.Contains(m, "cannot start") || strings.Contains(m, "not running") {
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
	case strings.Contains(m, "not running"), strings.Contains(m, "already exists"), strings.Contains(m, "cannot start"):
		return fmt.Errorf("%w: %w", errdefs.ErrConflict, err)
	}
	return err
}
