package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/atomicfile"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/reaper"
	"github.com/raind/condenser/shim/runtime"
)

// Options say which container a shim serves and how: the flags of
// condenser-shim's commands.
type Options struct {
	ID          string
	Bundle      string // the bundle directory: shim.pid, exit.json and the log go here
	Runtime     string // runtime binary (runc, crun, droplet) or path
	RuntimeRoot string // the runtime's --root state directory (Droplet's RAIND_ROOT_DIR)
	Socket      string // unix socket path to serve on; empty: bundle/shim.sock
}

// ioSocket is the path of the socket serving the processes' standard
// streams (api.IOFile in the bundle).
func (o Options) ioSocket() string { return filepath.Join(o.Bundle, api.IOFile) }

// checkIOSocket checks that the io socket's path fits in a unix socket
// address (the shim's own socket may be elsewhere, shorter).
func (o Options) checkIOSocket() error {
	if len(o.ioSocket()) >= len(unix.RawSockaddrUnix{}.Path) {
		return fmt.Errorf("shim: io socket path %q is longer than %d bytes: %w", o.ioSocket(), len(unix.RawSockaddrUnix{}.Path)-1, errdefs.ErrInvalidArgument)
	}
	return nil
}

// socket is the socket path: Socket, or the bundle's.
func (o Options) socket() string {
	if o.Socket == "" && o.Bundle != "" {
		return filepath.Join(o.Bundle, api.SocketFile)
	}
	return o.Socket
}

func (o Options) args() []string {
	return []string{"--id", o.ID, "--bundle", o.Bundle, "--runtime", o.Runtime, "--runtime-root", o.RuntimeRoot, "--socket", o.socket()}
}

func (o Options) validate() error {
	if err := names.ValidID(o.ID); err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	switch {
	case !filepath.IsAbs(o.Bundle):
		return fmt.Errorf("shim: bundle %q is not an absolute path: %w", o.Bundle, errdefs.ErrInvalidArgument)
	case o.Runtime == "" || o.RuntimeRoot == "":
		return fmt.Errorf("shim: no runtime or runtime root: %w", errdefs.ErrInvalidArgument)
	case len(o.socket()) >= len(unix.RawSockaddrUnix{}.Path):
		return fmt.Errorf("shim: socket path %q is longer than %d bytes: %w", o.socket(), len(unix.RawSockaddrUnix{}.Path)-1, errdefs.ErrInvalidArgument)
	}
	return nil
}

// StartDetached is `condenser-shim start`: it binds the socket, starts the
// shim's server as a detached process (own session and process group, stdio
// away from the caller) handing it the listener, waits until it serves, and
// returns the address for the caller to print.
//
// It holds the bundle's lock (api.LockFile) from before it binds the socket
// until the server has written its pid file and serves, or has failed: a
// `condenser-shim delete` of the bundle (which takes the same lock) runs
// before the launch or after it, never in the middle, so it always sees the
// shim a launch makes, even one whose caller is gone. The server shares
// the lock (the same open file) until it has written its pid file, so a
// launch whose starter is killed half-way still holds it until then.
func StartDetached(ctx context.Context, o Options) (string, error) {
	if err := o.validate(); err != nil {
		return "", err
	}
	if err := o.checkIOSocket(); err != nil {
		return "", err
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	lock, err := lockBundle(ctx, o.Bundle)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	return spawn(ctx, o, self, lock)
}

// spawn binds the socket and starts `binary serve` detached, handing it
// the listener and the bundle's lock; it returns the address once the
// server serves.
func spawn(ctx context.Context, o Options, binary string, lock *os.File) (string, error) {
	l, err := listen(o.socket())
	if err != nil {
		return "", err
	}
	defer l.Close()
	lf, err := l.(*net.UnixListener).File()
	if err != nil {
		return "", err
	}
	defer lf.Close()
	ready, readyW, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer ready.Close()
	logf, err := os.OpenFile(filepath.Join(o.Bundle, api.LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		readyW.Close()
		return "", err
	}
	defer logf.Close()
	cmd := exec.Command(binary, append([]string{"serve"}, o.args()...)...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{lf, readyW, lock}
	// The server gets a mount namespace of its own (see ownMountNamespace).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWNS}
	cmd.Env = runtime.CleanEnv()
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return "", fmt.Errorf("start shim server: %w", err)
	}
	readyW.Close()
	pid := cmd.Process.Pid
	cmd.Process.Release()
	if err := leaveServiceCgroup(pid); err != nil {
		fmt.Fprintf(os.Stderr, "condenser-shim: shim %d stays in the service's cgroup: %v\n", pid, err)
	}
	// The server writes one line when it serves, or closes the pipe when
	// it fails.
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(ready).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "ready" {
			return "", fmt.Errorf("shim server %d exited before serving; see %s", pid, filepath.Join(o.Bundle, api.LogFile))
		}
	case <-ctx.Done():
		syscall.Kill(pid, syscall.SIGKILL)
		return "", ctx.Err()
	}
	return "unix://" + o.socket(), nil
}

// listen binds a unix socket reachable only by this user, replacing a stale
// socket file that nothing listens on.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("shim socket %s: a shim already serves there: %w", path, errdefs.ErrAlreadyExists)
	}
	os.Remove(path)
	old := unix.Umask(0o077)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("shim socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	return l, nil
}

// Serve is `condenser-shim serve`: it serves the inherited listener (fd 3)
// until Shutdown, reaping every child, and the processes' standard streams
// on the bundle's io socket (api.IOFile), which it binds itself. It tells
// the starter it is ready on fd 4, and lets go of the bundle's lock (fd 5)
// once its pid file is written.
func Serve(o Options, version string) error {
	if err := o.validate(); err != nil {
		return err
	}
	if err := o.checkIOSocket(); err != nil {
		return err
	}
	if err := ownMountNamespace(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("id", o.ID)
	lf := os.NewFile(3, "listener")
	l, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		return fmt.Errorf("shim listener: %w", err)
	}
	ready := os.NewFile(4, "ready")
	// The shim outlives whoever started it and ignores the signals that a
	// terminal or a dying session would send.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGINT, syscall.SIGTERM)
	r, err := reaper.New()
	if err != nil {
		return err
	}
	if o.droplet() {
		// Droplet's own processes (its terminal shim, its init before it
		// runs the container's process) come to the shim as orphans the
		// driver does not name.
		r.ReapOnSignal()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	err = atomicfile.WriteFile(filepath.Join(o.Bundle, api.PidFile), []byte(strconv.Itoa(os.Getpid())), 0o644, false)
	os.NewFile(5, "lock").Close() // a delete may come now: it finds this shim
	if err != nil {
		return err
	}
	srv, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()))
	if err != nil {
		return err
	}
	// The io socket lives as long as the shim, which outlives the daemon:
	// a daemon restarted attaches again.
	iol, err := listen(o.ioSocket())
	if err != nil {
		return err
	}
	done := make(chan struct{})
	svc := newService(ServiceConfig{
		ID: o.ID, Bundle: o.Bundle, Reaper: r, Version: version, Logger: log,
		Driver:   newDriver(o, r),
		Shutdown: func() { close(done) },
	})
	defer svc.close()
	api.RegisterShimService(srv, svc)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, l) }()
	ioDone := make(chan struct{})
	go func() {
		defer close(ioDone)
		svc.serveIO(iol.(*net.UnixListener))
	}()
	// The io socket goes before the ttrpc connections close: the daemon
	// takes a closed connection for a shim that is gone, and may launch
	// the container's next shim on this bundle at once.
	var ioOnce sync.Once
	closeIO := func() {
		ioOnce.Do(func() {
			iol.Close()
			<-ioDone
			os.Remove(o.ioSocket())
		})
	}
	defer closeIO()
	ready.WriteString("ready\n")
	ready.Close()
	select {
	case <-done:
	case err := <-errc:
		if err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			log.Error("serve", "error", err)
		}
	}
	closeIO()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	srv.Shutdown(sctx)
	os.Remove(o.socket())
	os.Remove(filepath.Join(o.Bundle, api.PidFile))
	return nil
}

// ownMountNamespace makes the mount namespace the server was cloned into
// (spawn's CLONE_NEWNS) a slave of the one it came from, all the way down:
// the container's root filesystem, which the driver mounts, and whatever
// the runtime mounts stay in this namespace, never in the host's, and go
// with the shim and its container (no mount can leak from a shim killed
// at any moment); mounts and unmounts made on the host under shared
// mounts still reach it (a network namespace the daemon binds under a
// shared directory, and its removal, which must not stay pinned here).
//
// One mount table per container is what keeps the start path O(1) in the
// number of containers: the runtime reads its namespace's mount table
// several times per start, and every new mount namespace (the container's
// own) copies it; with the root filesystems of 1000 running containers in
// the host's table, bare `runc run` took twice as long.
//
// It refuses to run in its starter's namespace, whose mounts it would
// change for everyone.
func ownMountNamespace() error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return fmt.Errorf("shim: mount namespace: %w", err)
	}
	if starter, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid())); err == nil && starter == self {
		return fmt.Errorf("shim: serve runs in its starter's mount namespace (%s): start it with `condenser-shim start`: %w", self, errdefs.ErrInvalidArgument)
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("shim: make the shim's mount namespace a slave of the host's: %w", err)
	}
	return nil
}

// leaveNetnsDir detaches, from the shim's mount namespace, the directory
// holding the container's network namespace file when that directory is
// a mount the host shares with it (the daemon binds its network
// namespaces under such a directory so that a shim launched ahead sees
// the one made later for its container). Once the runtime has joined the
// namespace the shim needs none of them, and without this every network
// namespace bound later would be copied into every running shim's
// namespace: n² mounts for n networked containers, and a mount event
// costing O(n). Anything else is left as it is.
func leaveNetnsDir(netns string) error {
	_, err := rootfs.DetachIfSlave(filepath.Dir(netns))
	return err
}

// droplet tells whether the runtime is Droplet.
func (o Options) droplet() bool { return filepath.Base(o.Runtime) == "droplet" }

// newDriver picks the runtime driver by the runtime binary's name: Droplet
// (whose root is its RAIND_ROOT_DIR), or the OCI command line of runc and
// crun.
func newDriver(o Options, m runtime.Monitor) runtime.Driver {
	if o.droplet() {
		return &runtime.Droplet{Binary: o.Runtime, RootDir: o.RuntimeRoot, Monitor: m}
	}
	return &runtime.OCI{Binary: o.Runtime, Root: o.RuntimeRoot, Monitor: m}
}
