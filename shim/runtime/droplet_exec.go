package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/creack/pty"

	"github.com/raind/condenser/internal/errdefs"
)

// attachInit connects to the tty shim's tty.sock and starts relaying it.
// The socket is there once droplet create -t has returned: Droplet's tty
// shim listens before it starts the init, whose pid create waits for.
func (d *Droplet) attachInit(ctx context.Context, dir string) (Process, *ttyRelay, error) {
	st, err := readState(dir)
	if err != nil {
		return Process{}, nil, fmt.Errorf("droplet create: state.json: %w", err)
	}
	if st.ShimPid <= 0 || !alive(st.ShimPid) {
		return Process{}, nil, fmt.Errorf("droplet create -t: its tty shim (pid %d) is not running", st.ShimPid)
	}
	conn, err := dialTTY(ctx, filepath.Join(dir, "tty.sock"))
	if err != nil {
		return Process{}, nil, err
	}
	master, relay, err := newTTYRelay(conn)
	if err != nil {
		conn.Close()
		return Process{}, nil, err
	}
	return Process{Pid: st.ShimPid, Console: master, Resize: relay.resize}, relay, nil
}

// defaultPath is the PATH of a process whose environment has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Exec starts a process in the running container the way droplet exec
// does: nsenter -t PID --all ARGS, PID being the init's. It runs that
// nsenter itself, as the caller's child: its pid and exit status are the
// process's (nsenter waits for it and exits with its status, 128+n when
// it was killed by signal n), with a terminal of the driver's or the
// three standard streams. Droplet's own ways cannot do this:
//
//   - droplet exec (no terminal) returns before telling any pid, gives the
//     process no stdin and writes its stdout and stderr both to
//     logs/exec.log (one file for every exec, overwritten in place); the
//     nsenter it leaves, reparented to the caller, could only be found by
//     searching /proc, racing the caller's reaper when the process is
//     quick.
//   - droplet exec -t starts its exec shim (droplet exec-shim ID PID ARGS),
//     which holds the terminal and serves it on exec_tty.sock, one path
//     for all of a container's exec processes (a second exec shim takes
//     it over; the first to exit removes it); and the exec shim always
//     exits with status 2 whatever the process did: its audit record
//     indexes a spec it never loaded (a panic, seen with Droplet v0.1.3).
//
// The process gets its args, env, user (nsenter -S/-G; not the additional
// groups) and cwd (nsenter --wd, opened through /proc/PID/root): more than
// droplet exec gives (args only). Not its capabilities, rlimits, AppArmor
// profile or no_new_privileges, which Droplet does not apply to an exec
// either. It stays in the caller's cgroup (nsenter enters the cgroup
// namespace only), and dies with the container's pid namespace. The
// terminal is the host's (devpts): inside the container `tty` finds no
// name for it; it works otherwise.
func (d *Droplet) Exec(ctx context.Context, opts ExecOptions) (Process, error) {
	dir, err := d.containerDir(opts.ID)
	if err != nil {
		return Process{}, err
	}
	var p specs.Process
	if err := json.Unmarshal(opts.Process, &p); err != nil {
		return Process{}, fmt.Errorf("%w: droplet exec: process: %w", errdefs.ErrInvalidArgument, err)
	}
	if len(p.Args) == 0 {
		return Process{}, fmt.Errorf("%w: droplet exec: the process has no args", errdefs.ErrInvalidArgument)
	}
	st, err := readState(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Process{}, fmt.Errorf("%w: droplet container %s", errdefs.ErrNotFound, opts.ID)
	case err != nil:
		return Process{}, fmt.Errorf("droplet exec: state.json: %w", err)
	case st.Status != "running" || !alive(st.Pid):
		return Process{}, fmt.Errorf("%w: droplet exec: container %s is not running", errdefs.ErrConflict, opts.ID)
	}
	if err := lookInContainer(st.Pid, p.Args[0], envPath(p.Env)); err != nil {
		return Process{}, err
	}
	// nsenter's options after -t PID --all, before the process's args
	// (nsenter takes options up to the first other argument: those the
	// exec shim passes on do count).
	// The root and working directory are the init's root and cwd in it,
	// given explicitly: entering the mount namespace alone gives the
	// namespace's root, which is the container's only when its init
	// pivoted into it (a chrooted init's differs).
	ns := []string{"--root", fmt.Sprintf("--wd=/proc/%d/root%s", st.Pid, path.Clean("/"+p.Cwd))}
	if p.User.UID != 0 || p.User.GID != 0 {
		ns = append(ns, "-S", strconv.FormatUint(uint64(p.User.UID), 10), "-G", strconv.FormatUint(uint64(p.User.GID), 10))
	}
	ns = append(ns, "--")
	args := append(ns, p.Args...)
	env := p.Env
	if envPath(env) == "" {
		env = append(slices.Clip(env), "PATH="+defaultPath)
	}
	if opts.Terminal {
		return d.execTTY(st.Pid, args, env)
	}
	cmd := exec.Command(d.pathOr(d.nsenter, "nsenter"), append([]string{"-t", strconv.Itoa(st.Pid), "--all"}, args...)...)
	cmd.Env = env
	stdio{in: opts.Stdin, out: opts.Stdout, err: opts.Stderr}.attach(cmd)
	ch, err := d.Monitor.Start(cmd)
	if err != nil {
		return Process{}, fmt.Errorf("droplet exec: nsenter: %w", err)
	}
	// Its exit reaches the caller's reaper; this releases cmd.
	go d.Monitor.Wait(cmd, ch)
	return Process{Pid: cmd.Process.Pid}, nil
}

// execTTY runs nsenter on a new terminal of the driver's, as Droplet's
// exec shim does on its own.
func (d *Droplet) execTTY(pid int, args, env []string) (Process, error) {
	m, slave, err := pty.Open()
	if err != nil {
		return Process{}, fmt.Errorf("droplet exec: terminal: %w", err)
	}
	defer slave.Close() // the process has its own
	// The slave stays blocking (the process shares its file description);
	// the master the caller polls does not.
	master, err := pollable(m)
	if err != nil {
		return Process{}, fmt.Errorf("droplet exec: terminal: %w", err)
	}
	cmd := exec.Command(d.pathOr(d.nsenter, "nsenter"), append([]string{"-t", strconv.Itoa(pid), "--all"}, args...)...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	ch, err := d.Monitor.Start(cmd)
	if err != nil {
		master.Close()
		return Process{}, fmt.Errorf("droplet exec: nsenter: %w", err)
	}
	// Its exit reaches the caller's reaper; this releases cmd.
	go d.Monitor.Wait(cmd, ch)
	return Process{Pid: cmd.Process.Pid, Console: master}, nil
}

// envPath is the PATH of env, or "".
func envPath(env []string) string {
	p := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			p = v
		}
	}
	return p
}

// lookInContainer checks that the executable name is in the root of
// process pid (resolved inside it, through PATH when name has no slash):
// nsenter would only fail after it has started, its message in the
// process's output. The error is errdefs.ErrInvalidArgument.
func lookInContainer(pid int, name, pathEnv string) error {
	root, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("droplet exec: the container's root: %w", err)
	}
	defer unix.Close(root)
	executable := func(p string) bool {
		fd, err := unix.Openat2(root, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
		if err != nil {
			return false
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0
	}
	if strings.Contains(name, "/") {
		if executable(name) {
			return nil
		}
		return fmt.Errorf("%w: droplet exec: %q: no such executable in the container", errdefs.ErrInvalidArgument, name)
	}
	if pathEnv == "" {
		pathEnv = defaultPath
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir != "" && executable(path.Join(dir, name)) {
			return nil
		}
	}
	return fmt.Errorf("%w: droplet exec: %q: executable file not found in $PATH", errdefs.ErrInvalidArgument, name)
}
