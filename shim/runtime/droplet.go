package runtime

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/moby/sys/mountinfo"
	"github.com/raind/condenser/internal/atomicfile"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/rootfs"
)

// Droplet drives Droplet, the Raind stack's own runtime
// (github.com/shizuku198411/Droplet, v0.1.3). Its command line is not the
// OCI one:
//
//	droplet create ID        reads $RAIND_ROOT_DIR/ID/config.json; prints nothing
//	droplet start ID         exits 0 even when the init then fails
//	droplet state ID         prints its state.json: {"status": …, "pid": …, …}
//	droplet kill ID [NAME]   NAME is TERM (the default), KILL, INT, HUP, QUIT,
//	                         USR1, USR2, STOP or CONT; there is no --all
//	droplet delete ID        there is no --force: it refuses a running container
//
// There is no --bundle, --root, --pid-file or --log: everything lives in
// $RAIND_ROOT_DIR/ID (default /etc/raind/container/ID), the init's output
// goes to logs/init.log there, and Droplet mounts the root filesystem itself
// (on root.path) from the annotation io.raind.image.config. A failure is
// reported by Go's log.Fatal (a timestamped line on stderr, exit status 1),
// or, before it has loaded config.json, by a Go panic (exit status 2).
//
// The driver provides what Droplet expects of its caller
// (../shared/reference/droplet.md): /etc/raind/log, the container's
// directory with config.json in Droplet's subset of the spec (see
// dropletConfig), logs/ and etc/, the cgroup directory Droplet writes
// into, limits through cgroup v1 on a host that is not cgroup v2 only,
// and the clean-up of what a failed create leaves.
type Droplet struct {
	Binary  string  // droplet, or a path
	RootDir string  // RAIND_ROOT_DIR; empty means Droplet's default
	Monitor Monitor // runs the commands without racing the reaper

	// Droplet's fixed paths; empty means Droplet's own (tests move them).
	auditDir  string // /etc/raind/log
	etcRoot   string // /etc/raind/container: where its init reads ID/etc/
	cgroupDir string // /sys/fs/cgroup/raind: where it writes ID/'s limits
	// v1: 0 detects the cgroup version; 1 applies limits through cgroup
	// v1 too, -1 does not.
	v1 int

	nsenter string // nsenter, or a path; empty means nsenter

	mu    sync.Mutex
	inits map[string]*initOutput // the init output of the containers created here
}

var _ Driver = (*Droplet)(nil)

const (
	// DropletDefaultRoot is Droplet's RAIND_ROOT_DIR when none is set.
	DropletDefaultRoot = "/etc/raind/container"
	// DropletImageAnnotation carries the overlay Droplet mounts.
	DropletImageAnnotation = "io.raind.image.config"
)

// startWait bounds how long Start waits to see the init run the
// container's process or fail.
var startWait = 5 * time.Second

// dropletImage is the value of DropletImageAnnotation; Droplet mounts
// overlay with lowerdir=ImageLayer joined by ":" (top first), so the order
// is overlayfs's.
type dropletImage struct {
	RootfsType string   `json:"rootfsType"`
	ImageLayer []string `json:"imageLayer"`
	UpperDir   string   `json:"upperDir"`
	WorkDir    string   `json:"workDir"`
}

// dropletSignals are the signal names droplet kill understands (any other
// name makes it send nothing and still record the container as stopped).
var dropletSignals = map[syscall.Signal]string{
	syscall.SIGTERM: "TERM", syscall.SIGKILL: "KILL", syscall.SIGINT: "INT",
	syscall.SIGHUP: "HUP", syscall.SIGQUIT: "QUIT", syscall.SIGUSR1: "USR1",
	syscall.SIGUSR2: "USR2", syscall.SIGSTOP: "STOP", syscall.SIGCONT: "CONT",
}

// Create lays out $RAIND_ROOT_DIR/ID (config.json in Droplet's subset of
// the bundle's spec, with opts.Mounts as the image annotation; logs/;
// etc/), the audit log and cgroup directories Droplet needs, and runs
// droplet create. A failed create leaves nothing: not the init waiting on
// the fifo, nor Droplet's files, cgroup or veth.
//
// Without a terminal, Droplet writes the init's stdout and stderr both to
// logs/init.log, which is therefore made a pipe to opts.Stdout (or
// opts.Stderr when there is no Stdout), read on the way for the init's
// own failure; the pid is the init's, as droplet state reports it. Droplet
// gives the init no stdin (/dev/null): a stdin pipe is not implemented.
//
// With opts.Terminal it runs droplet create -t: Droplet's tty shim (droplet
// shim ID FIFO ARGS, reparented to the caller) holds the terminal and
// starts the init on it; the driver connects to its tty.sock before the
// init runs and relays it (ttyRelay). The process is then the tty shim,
// not the init: the init is the tty shim's child, whose exit the caller
// cannot reap. The tty shim exits when the init does, with the init's
// exit code (its command line passes an exec.ExitError's code on), but
// with 255 when a signal killed the init (the code is -1 then): a killed
// container reads 255, not 128+n, and is not checked for an OOM kill. The
// init's output also goes to logs/console.log; what it writes before the
// driver connects (nothing, before start) is only there.
func (d *Droplet) Create(ctx context.Context, opts CreateOptions) (Process, error) {
	return d.create(ctx, opts)
}

func (d *Droplet) create(ctx context.Context, opts CreateOptions) (Process, error) {
	if opts.Stdin != nil && !opts.Terminal {
		return Process{}, fmt.Errorf("droplet: the init's stdin is /dev/null: a stdin pipe needs a terminal: %w", errdefs.ErrNotImplemented)
	}
	dir, err := d.containerDir(opts.ID)
	if err != nil {
		return Process{}, err
	}
	image, err := dropletImageConfig(opts.Mounts)
	if err != nil {
		return Process{}, err
	}
	spec, err := dropletConfig(filepath.Join(opts.Bundle, "config.json"), dir, image)
	if err != nil {
		return Process{}, err
	}
	// Droplet overwrites the state of an existing container without asking.
	if _, err := os.Lstat(filepath.Join(dir, "state.json")); err == nil {
		return Process{}, fmt.Errorf("%w: droplet container %s", errdefs.ErrAlreadyExists, opts.ID)
	}
	_, err = os.Lstat(dir)
	existed := err == nil
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return Process{}, err
	}
	// undo removes what a failed create leaves: all of dir when it is new,
	// else Droplet's files that would fail a retry.
	undo := func() {
		d.cleanup(opts.ID, dir, spec.veth, v1Path(opts.Bundle, opts.ID))
		if !existed {
			d.removeDir(dir)
		}
	}
	out, err := d.prepare(dir, spec, opts)
	if err != nil {
		undo()
		return Process{}, err
	}
	args := []string{"create", opts.ID}
	if opts.Terminal {
		args = []string{"create", "-t", opts.ID}
	}
	_, err = d.run(ctx, args...)
	if out != nil {
		out.w.Close() // the init holds its own
	}
	if err != nil {
		undo()
		return Process{}, err
	}
	st, err := d.State(ctx, opts.ID)
	if err == nil && (st.Pid <= 0 || st.Status != "created") {
		err = fmt.Errorf("droplet create: the container is %q with init pid %d, not created", st.Status, st.Pid)
	}
	p := Process{Pid: st.Pid}
	var relay *ttyRelay
	if err == nil && opts.Terminal {
		p, relay, err = d.attachInit(ctx, dir)
	}
	if err == nil && d.useV1() {
		if err = applyV1(v1Path(opts.Bundle, opts.ID), st.Pid, spec.memory, spec.quota, spec.period); err != nil {
			err = fmt.Errorf("droplet create: limits through cgroup v1: %w", err)
		}
	}
	if err != nil {
		if relay != nil {
			p.Console.Close()
			relay.stop()
		}
		undo()
		return Process{}, err
	}
	if out != nil {
		d.mu.Lock()
		if d.inits == nil {
			d.inits = map[string]*initOutput{}
		}
		d.inits[opts.ID] = out
		d.mu.Unlock()
	}
	return p, nil
}

func (d *Droplet) pathOr(p, def string) string {
	if p != "" {
		return p
	}
	return def
}

// useV1 tells whether limits go through cgroup v1 too.
func (d *Droplet) useV1() bool {
	if d.v1 != 0 {
		return d.v1 > 0
	}
	return !cgroupV2()
}

// etcDirs are the directories of the container's etc/ files: in its
// directory, and where Droplet's init reads them (which ignores
// RAIND_ROOT_DIR).
func (d *Droplet) etcDirs(id, dir string) []string {
	dirs := []string{filepath.Join(dir, "etc")}
	if fixed := filepath.Join(d.pathOr(d.etcRoot, dropletEtcRoot), id, "etc"); fixed != dirs[0] {
		dirs = append(dirs, fixed)
	}
	return dirs
}

// prepare lays out dir for droplet create, and the cgroup directory
// Droplet writes into.
func (d *Droplet) prepare(dir string, spec *dropletSpec, opts CreateOptions) (*initOutput, error) {
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(spec.rootfs, 0o755); err != nil {
		return nil, err
	}
	for _, etc := range d.etcDirs(opts.ID, dir) {
		if err := os.MkdirAll(etc, 0o755); err != nil {
			return nil, err
		}
		for name, b := range spec.etc {
			if err := atomicfile.WriteFile(filepath.Join(etc, name), b, 0o644, false); err != nil {
				return nil, err
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(d.pathOr(d.cgroupDir, dropletCgroupDir), opts.ID), 0o755); err != nil {
		return nil, fmt.Errorf("droplet: its cgroup directory: %w", err)
	}
	initLog := filepath.Join(logs, "init.log")
	// Droplet's tty shim opens console.log without truncating it.
	for _, name := range []string{initLog, filepath.Join(logs, "console.log")} {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	var out *initOutput
	if w := cmp.Or(opts.Stdout, opts.Stderr); w != nil {
		var err error
		if out, err = newInitOutput(w); err != nil {
			return nil, err
		}
		// Opening /proc/PID/fd/N opens the pipe itself.
		if err := os.Symlink(fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), out.w.Fd()), initLog); err != nil {
			out.w.Close()
			return nil, err
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "config.json"), spec.config, 0o600, true); err != nil {
		if out != nil {
			out.w.Close()
		}
		return nil, err
	}
	return out, nil
}

// cleanup removes what Droplet and a failed create leave of container id:
// its init (or tty shim), waiting on the fifo or not; state.json,
// exec.fifo, config_hash.json, init.pid and the sockets; the veth; the
// cgroups (Droplet's, and the v1 ones at v1 path); the etc/ files outside
// dir. dir itself stays.
func (d *Droplet) cleanup(id, dir, veth, v1 string) error {
	fifo := filepath.Join(dir, "exec.fifo")
	pids := dropletInits(id, fifo)
	if st, err := readState(dir); err == nil && st.Pid > 0 && alive(st.Pid) && slices.Contains(dropletInits(id, fifo), st.Pid) {
		pids = append(pids, st.Pid)
	}
	for _, pid := range pids {
		killWait(pid)
	}
	var errs []error
	for _, name := range []string{"state.json", "exec.fifo", "config_hash.json", "init.pid", "tty.sock", "exec_tty.sock"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := deleteVeth(veth); err != nil {
		errs = append(errs, err)
	}
	if err := removeDropletCgroup(filepath.Join(d.pathOr(d.cgroupDir, dropletCgroupDir), id)); err != nil {
		errs = append(errs, err)
	}
	if d.useV1() {
		if err := removeV1(v1); err != nil {
			errs = append(errs, err)
		}
	}
	for _, etc := range d.etcDirs(id, dir)[1:] {
		if err := os.RemoveAll(filepath.Dir(etc)); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Lock()
	delete(d.inits, id)
	d.mu.Unlock()
	return errors.Join(errs...)
}

// Start runs droplet start on a created container whose init waits, and
// then waits until the init runs the container's process or fails: Droplet
// says nothing of the latter (it exits 0), the init's own error is in its
// output (logs/init.log), which Start reports.
func (d *Droplet) Start(ctx context.Context, id string) error {
	dir, err := d.containerDir(id)
	if err != nil {
		return err
	}
	st, err := readState(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: droplet container %s", errdefs.ErrNotFound, id)
	case err != nil:
		return fmt.Errorf("droplet start: state.json: %w", err)
	case st.Status != "created":
		return fmt.Errorf("%w: droplet start: container %s is %s, not created", errdefs.ErrConflict, id, st.Status)
	}
	pidfd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil || !alive(st.Pid) {
		if err == nil {
			unix.Close(pidfd)
		}
		return d.initFailed(id, dir, st.Pid, "before it was started")
	}
	defer unix.Close(pidfd)
	dev, ino, _ := exeID(st.Pid)
	// droplet start blocks opening the fifo until the init reads it: stop
	// it if the init goes first.
	sctx, cancel := context.WithCancel(ctx)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for sctx.Err() == nil {
			if n, _ := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 50); n > 0 {
				cancel()
				return
			}
		}
	}()
	_, err = d.run(sctx, "start", id)
	startErr := ctx.Err()
	cancel()
	<-exited
	if err != nil {
		if startErr == nil && errors.Is(err, context.Canceled) {
			return d.initFailed(id, dir, st.Pid, "before it was started")
		}
		return err
	}
	deadline := time.Now().Add(startWait)
	for time.Now().Before(deadline) {
		if n, _ := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 10); n > 0 {
			return d.initFailed(id, dir, st.Pid, "instead of running the container's process")
		}
		if dv, in, ok := exeID(st.Pid); ok && (dv != dev || in != ino) {
			return nil
		}
	}
	return nil // still starting: its exit, if any, reaches the reaper
}

// initFailed is the error of a container whose init exited: Droplet's
// message in the init's output, if any.
func (d *Droplet) initFailed(id, dir string, pid int, when string) error {
	d.mu.Lock()
	out := d.inits[id]
	d.mu.Unlock()
	var tail []byte
	switch st, _ := readState(dir); {
	case out != nil:
		tail = out.end(time.Second)
	case st.ShimPid > 0:
		// With a terminal (create -t), Droplet's tty shim logs what
		// the init wrote on it.
		tail = readTail(filepath.Join(dir, "logs", "console.log"))
	default:
		tail = readTail(filepath.Join(dir, "logs", "init.log"))
	}
	msg := initFailure(tail)
	if msg == "" {
		msg = "no message in logs/init.log"
	}
	err := fmt.Errorf("droplet start: the container's init (pid %d) exited %s: %s", pid, when, msg)
	if strings.Contains(strings.ToLower(msg), "not found in path") {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return classifyCommand("start", err)
}

// State runs droplet state. Droplet reads a zombie as running (and a
// created container whose init died as created): the driver checks the
// init is alive and reads it stopped when it is not.
func (d *Droplet) State(ctx context.Context, id string) (State, error) {
	if _, err := d.containerDir(id); err != nil {
		return State{}, err
	}
	out, err := d.run(ctx, "state", id)
	if err != nil {
		return State{}, err
	}
	var raw dropletState
	if err := json.Unmarshal(out, &raw); err != nil {
		return State{}, fmt.Errorf("droplet state: %w", err)
	}
	if (raw.Status == "running" || raw.Status == "created") && !alive(raw.Pid) {
		raw.Status = "stopped"
	}
	return State{Status: raw.Status, Pid: raw.Pid}, nil
}

// Kill sends sig through droplet kill. Droplet cannot signal every process
// and knows only the signals of dropletSignals. It records the container as
// stopped after any signal, and follows TERM by KILL after 3s.
func (d *Droplet) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	dir, err := d.containerDir(id)
	if err != nil {
		return err
	}
	if all {
		return fmt.Errorf("%w: droplet kill cannot signal all processes", errdefs.ErrNotImplemented)
	}
	name, ok := dropletSignals[sig]
	if !ok {
		return fmt.Errorf("%w: droplet kill cannot send signal %d (%v)", errdefs.ErrNotImplemented, int(sig), sig)
	}
	if st, err := readState(dir); err == nil && st.Status == "running" && !alive(st.Pid) {
		// Droplet would fail reading its /proc: the exit is on its way.
		return fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)
	}
	_, err = d.run(ctx, "kill", id, name)
	return err
}

// Delete runs droplet delete (after droplet kill KILL when forced and
// that fails: the container runs), then removes what Droplet leaves: the
// init of a failed create, its files, the veth, the cgroups, and
// $RAIND_ROOT_DIR/ID, unmounting first whatever is still mounted there or
// on root.path. Forced, a container Droplet cannot delete (its state
// broken, its init gone) is cleaned up all the same.
func (d *Droplet) Delete(ctx context.Context, id, bundle string, force bool) error {
	dir, err := d.containerDir(id)
	if err != nil {
		return err
	}
	// Without its directory Droplet knows no container (it would panic):
	// what a create cut short may have left is cleaned up all the same.
	if _, lerr := os.Lstat(dir); lerr == nil {
		_, err = d.run(ctx, "delete", id)
	}
	if err != nil && force && !errors.Is(err, errdefs.ErrNotFound) {
		d.run(ctx, "kill", id, "KILL")
		_, err = d.run(ctx, "delete", id)
	}
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		st, serr := readState(dir)
		switch {
		case serr == nil && st.Status == "running" && alive(st.Pid) && !force:
			return fmt.Errorf("%w: droplet delete: container %s is running", errdefs.ErrConflict, id)
		case !force:
			return err
		}
	}
	veth := vethName(filepath.Join(dir, "config.json"))
	if veth == "" && bundle != "" {
		veth = vethName(filepath.Join(bundle, "config.json"))
	}
	cerr := d.cleanup(id, dir, veth, v1Path(bundle, id))
	return errors.Join(cerr, d.removeDir(dir))
}

// vethName is the host side of the veth the network annotation of the
// config.json at path names, or "".
func vethName(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var s struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(b, &s) != nil {
		return ""
	}
	var n struct {
		Interface struct{ Name string } `json:"interface"`
	}
	json.Unmarshal([]byte(s.Annotations[DropletNetAnnotation]), &n)
	return n.Interface.Name
}

func (d *Droplet) root() string {
	if d.RootDir != "" {
		return d.RootDir
	}
	return DropletDefaultRoot
}

// containerDir is $RAIND_ROOT_DIR/id, for a container id (names.ValidID):
// it names one directory there and cannot pass for a flag.
func (d *Droplet) containerDir(id string) (string, error) {
	if err := names.ValidID(id); err != nil {
		return "", fmt.Errorf("droplet: %w", err)
	}
	return filepath.Join(d.root(), id), nil
}

// removeDir removes dir once nothing is mounted in it or on the rootfs its
// config.json names, so that removing it cannot reach into a mount.
func (d *Droplet) removeDir(dir string) error {
	var rootfs string
	if b, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil {
		var s specs.Spec
		if json.Unmarshal(b, &s) == nil && s.Root != nil {
			rootfs = s.Root.Path
		}
	}
	if err := unmountUnder(dir, rootfs); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// run runs one droplet command with RAIND_ROOT_DIR set and returns its
// stdout; on failure Droplet's own message is in the error.
func (d *Droplet) run(ctx context.Context, args ...string) ([]byte, error) {
	// Without its audit log directory every droplet command fails.
	if err := os.MkdirAll(d.pathOr(d.auditDir, dropletAuditDir), 0o700); err != nil {
		return nil, fmt.Errorf("droplet %s: its audit log directory: %w", args[0], err)
	}
	cmd := exec.Command(d.Binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	for _, kv := range CleanEnv() {
		if !strings.HasPrefix(kv, "RAIND_ROOT_DIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "RAIND_ROOT_DIR="+d.root())
	status, err := runMonitored(ctx, d.Monitor, cmd)
	if err != nil {
		return nil, fmt.Errorf("droplet %s: %w", args[0], err)
	}
	if status != 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := dropletMessage(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		if p, ok := dropletPanic(status, errb.String()); ok {
			// Droplet panics when a command fails before it has read
			// config.json (its audit log dereferences the spec).
			err := fmt.Errorf("droplet %s crashed (exit status %d, %s): Droplet panics on a container it cannot find, one not in the state %s needs, or a config.json without linux.seccomp or process.args", args[0], status, p, args[0])
			if len(args) > 1 {
				if _, serr := os.Stat(filepath.Join(d.root(), args[1], "state.json")); errors.Is(serr, fs.ErrNotExist) {
					return nil, fmt.Errorf("%w: %w: droplet container %s", err, errdefs.ErrNotFound, args[1])
				}
			}
			return nil, err
		}
		return nil, dropletClassify(args[0], fmt.Errorf("droplet %s failed (exit status %d): %s", args[0], status, msg))
	}
	return out.Bytes(), nil
}

// dropletPanic returns the first line of a Go panic on stderr.
func dropletPanic(status int, stderr string) (string, bool) {
	i := strings.Index(stderr, "panic: ")
	if status != 2 || i < 0 {
		return "", false
	}
	line, _, _ := strings.Cut(stderr[i:], "\n")
	return strings.TrimSpace(line), true
}

// logPrefixLen returns the length of the timestamp log.Fatal puts before
// Droplet's error ("2006/01/02 15:04:05 " or with microseconds,
// "2006/01/02 15:04:05.000000 "), or -1 when line does not start with
// one. Written out rather than a regexp: the regexp package would be the
// shim's only user of it (its text and init cost every shim's memory).
func logPrefixLen(line string) int {
	const layout = "dddd/dd/dd dd:dd:dd"
	if len(line) < len(layout) {
		return -1
	}
	for i := 0; i < len(layout); i++ {
		if c := line[i]; (layout[i] == 'd') != (c >= '0' && c <= '9') || (layout[i] != 'd' && c != layout[i]) {
			return -1
		}
	}
	n := len(layout)
	if n < len(line) && line[n] == '.' {
		m := n + 1
		for m < len(line) && line[m] >= '0' && line[m] <= '9' {
			m++
		}
		if m == n+1 {
			return -1
		}
		n = m
	}
	if n < len(line) && line[n] == ' ' {
		return n + 1
	}
	return -1
}

// dropletMessage is the error Droplet logged last (from its timestamped line
// on), or all of stderr when it logged none (a usage error).
func dropletMessage(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if n := logPrefixLen(lines[i]); n >= 0 {
			lines[i] = lines[i][n:]
			return strings.TrimSpace(strings.Join(lines[i:], "\n"))
		}
	}
	return strings.TrimSpace(stderr)
}

// dropletClassify adds Droplet's own wordings to classifyCommand's.
func dropletClassify(cmd string, err error) error {
	m := err.Error()
	switch {
	case strings.Contains(m, "state.json: no such file"), strings.Contains(m, "config.json: no such file"):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case strings.Contains(m, "is not stopped"), strings.Contains(m, "is not created"):
		return fmt.Errorf("%w: %w", errdefs.ErrConflict, err)
	}
	return classifyCommand(cmd, err)
}

// dropletImageConfig turns the root filesystem mounts into the image
// annotation: Droplet can only mount one overlay with lower, upper and work
// dirs. No mounts gives nil (the bundle must then carry the annotation).
func dropletImageConfig(ms []Mount) (*dropletImage, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	invalid := func(format string, a ...any) error {
		return fmt.Errorf("%w: droplet: "+format, append([]any{errdefs.ErrInvalidArgument}, a...)...)
	}
	if len(ms) != 1 || ms[0].Type != "overlay" {
		types := make([]string, len(ms))
		for i, m := range ms {
			types[i] = m.Type
		}
		return nil, invalid("the root filesystem must be one overlay mount, not %q", types)
	}
	img := &dropletImage{RootfsType: "overlay"}
	for _, o := range ms[0].Options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			img.ImageLayer = strings.Split(v, ":")
		case "upperdir":
			img.UpperDir = v
		case "workdir":
			img.WorkDir = v
		case "rw":
		default:
			return nil, invalid("cannot pass overlay option %q", o)
		}
	}
	dirs := append([]string{img.UpperDir, img.WorkDir}, img.ImageLayer...)
	if len(img.ImageLayer) == 0 || slices.Contains(dirs, "") {
		return nil, invalid("overlay needs lowerdir, upperdir and workdir, got %q", ms[0].Options)
	}
	for _, p := range dirs {
		if strings.Contains(p, ",") {
			return nil, invalid("overlay directory %q has a comma", p)
		}
	}
	return img, nil
}

// unmountUnder unmounts, innermost first, every mount below dir and one on
// rootfs. It fails when the mount table cannot be read.
func unmountUnder(dir, root string) error {
	paths := []string{dir, root}
	for i, p := range paths {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			paths[i] = r
		}
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !strings.HasPrefix(m.Mountpoint, paths[0]+"/") && (root == "" || m.Mountpoint != paths[1]), false
	})
	if err != nil {
		return fmt.Errorf("droplet: refusing to remove %s: %w", dir, err)
	}
	targets := make([]string, len(mounts))
	for i, m := range mounts {
		targets[i] = m.Mountpoint
	}
	sort.Slice(targets, func(i, j int) bool { return len(targets[i]) > len(targets[j]) })
	for _, t := range targets {
		if err := rootfs.UnmountAll(t); err != nil {
			return err
		}
	}
	return nil
}
