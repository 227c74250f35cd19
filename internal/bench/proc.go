package bench

// Process and host-state helpers of the peer engines.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

const (
	cmdTimeout   = 10 * time.Minute // bounds every command
	readyTimeout = 30 * time.Second // for a daemon's API to answer, or containers to be reported
	stopTimeout  = 10 * time.Second // for a process to exit
	closeTimeout = 5 * time.Minute  // for Close altogether
)

// run runs a command to its end and returns its standard output; the error
// names the command line and carries its standard error. env nil means
// this process's environment.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	return runCmd(ctx, env, nil, name, args...)
}

// runInput is run with stdin as the command's standard input.
func runInput(ctx context.Context, stdin, name string, args ...string) (string, error) {
	return runCmd(ctx, nil, strings.NewReader(stdin), name, args...)
}

func runCmd(ctx context.Context, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = stopTimeout // should a daemonised grandchild keep the pipes open
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// lookExe returns the executable name as /proc/PID/exe shows it.
func lookExe(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}

// unixClient is an HTTP client of the server on the unix socket sock.
func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// readAnswer sends req, reads the whole answer (so that the connection is
// kept alive for the next request) and fails unless it is a 200.
func readAnswer(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(b)))
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// daemon is a long-running process an engine started; it is signalled only
// through its own process.
type daemon struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once cmd.Wait returned
}

// startDaemon starts name with its output appended to the file log.
func startDaemon(ctx context.Context, env []string, log, name string, args ...string) (*daemon, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the daemon has its own descriptor
	// The daemon outlives the call that starts it: it takes ctx's values
	// but not its cancellation.
	cmd := exec.CommandContext(context.WithoutCancel(ctx), name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the benchmark
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	d := &daemon{cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) pid() int {
	if d == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends sig, then SIGKILL if the daemon has not exited within
// stopTimeout, and waits for it to exit.
func (d *daemon) stop(sig syscall.Signal) error {
	if d == nil {
		return nil
	}
	for _, s := range []syscall.Signal{sig, syscall.SIGKILL} {
		if d.exited() {
			return nil
		}
		d.cmd.Process.Signal(s)
		select {
		case <-d.done:
			return nil
		case <-time.After(stopTimeout):
		}
	}
	return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", d.cmd.Path, d.pid())
}

// logTail returns the end of the daemon's log, for error messages.
func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.log)
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// waitGone waits until no process runs exe with s on its command line.
func waitGone(ctx context.Context, exe, s string) error {
	return poll(ctx, stopTimeout, func() error {
		pids, err := pidsOf(exe, []string{s})
		if err == nil && len(pids) > 0 {
			err = fmt.Errorf("%s still running (pids %v)", exe, pids)
		}
		return err
	})
}

// missingPaths returns those of paths (parents before children) that do
// not exist and are not below one already returned: whatever appears there
// while an engine runs is the engine's, for cleanUp to remove.
func missingPaths(paths ...string) []string {
	var missing []string
	for _, p := range paths {
		if slices.ContainsFunc(missing, func(m string) bool { return strings.HasPrefix(p, m+"/") }) {
			continue
		}
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, p)
		}
	}
	return missing
}

// missingCgroups returns the cgroup name (a path below the root) of every
// hierarchy mounted under /sys/fs/cgroup where it does not exist.
func missingCgroups(name string) []string {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	var paths []string
	for _, r := range roots {
		if fi, err := os.Stat(r); err == nil && fi.IsDir() {
			paths = append(paths, filepath.Join(r, name))
		}
	}
	return missingPaths(paths...)
}

// cleanUp removes the host paths created, unmounting what is mounted
// below them (cgroups with rmdir, deepest first), and then dir.
func cleanUp(dir string, created []string) error {
	var errs []error
	for _, p := range created {
		if strings.HasPrefix(p, "/sys/fs/cgroup/") {
			errs = append(errs, removeCgroup(p))
		} else {
			errs = append(errs, unmountUnder(p), os.RemoveAll(p))
		}
	}
	if dir != "" {
		errs = append(errs, unmountUnder(dir), os.RemoveAll(dir))
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts every mount at or below dir, deepest first, lazily
// when a plain unmount fails.
func unmountUnder(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	points := make([]string, len(mounts))
	for i, m := range mounts {
		points[i] = m.Mountpoint
	}
	sort.SliceStable(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, 0); err != nil {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeCgroup removes the cgroup directory root and those below it.
func removeCgroup(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var errs []error
	for _, d := range slices.Backward(dirs) {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
