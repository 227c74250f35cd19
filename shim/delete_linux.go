package shim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/reaper"
	"github.com/raind/condenser/shim/runtime"
)

// Bounds of `condenser-shim delete`.
const (
	// lockWait bounds the wait for a launch that holds the bundle's lock.
	lockWait = 10 * time.Second
	// goneWait bounds the wait for a killed process (the shim, the
	// processes of a cgroup) to be gone.
	goneWait = 10 * time.Second
)

// Delete is `condenser-shim delete`, the out-of-band clean-up of a container
// whose shim is gone or must go (containerd's `shim delete`). Holding the
// bundle's lock (so that a launch still going on is over first), it
//
//  1. kills the shim that still serves the bundle (bundle/shim.pid, when
//     that process is a condenser-shim serving this bundle: pids are
//     reused) and waits for it to be gone;
//  2. force-deletes the runtime's container with the driver the shim would
//     use (runc and crun: `delete --force`, then bundle/rootfs is
//     unmounted; Droplet: droplet delete when its directory is there, and
//     what Droplet and the driver keep removed: the directory behind its
//     unmount guard, the init, Droplet's cgroup directory and etc/, the
//     veth); a container the runtime does not know is no error;
//  3. kills what is left in the container's cgroup (config.json's
//     linux.cgroupsPath, in every v1 hierarchy and the v2 one) and removes
//     it, and removes the runtime's state directory RuntimeRoot/ID that a
//     runtime killed half-way through create leaves;
//  4. removes the shim's sockets and pid file.
//
// config.json, exit.json and the logs stay. It returns the exit status in
// exit.json, or nil when none is known. A missing bundle or config.json is
// no error: what is not there needs no clean-up. Running it again does
// nothing more and returns the same.
func Delete(ctx context.Context, o Options) (*api.Exit, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.Bundle); err == nil {
		lctx, cancel := context.WithTimeout(ctx, lockWait)
		lock, err := lockBundle(lctx, o.Bundle)
		cancel()
		if err != nil {
			return nil, err
		}
		defer lock.Close()
	}
	var errs []error
	if err := killShim(ctx, o.Bundle); err != nil {
		errs = append(errs, err)
	}
	driver := newDriver(o, execMonitor{})
	// Droplet's driver cleans up without the container's directory too:
	// what it keeps elsewhere (Droplet's cgroup directory and etc/, the
	// veth) outlives a directory removed by a clean-up that then failed.
	_, droplet := driver.(*runtime.Droplet)
	if _, err := os.Lstat(filepath.Join(o.RuntimeRoot, o.ID)); err == nil || droplet {
		if err := driver.Delete(ctx, o.ID, o.Bundle, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete container %s: %w", o.ID, err))
		}
	}
	// The OCI driver unmounts it on delete; not when the runtime knew no
	// container (killed half-way through create) or failed.
	if err := rootfs.UnmountAll(filepath.Join(o.Bundle, "rootfs")); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(ctx, o.Bundle); err != nil {
		errs = append(errs, err)
	}
	if _, ok := driver.(*runtime.OCI); ok {
		// Droplet's Delete removes its directory itself, after making sure
		// nothing is mounted there any more; runc's has no mounts.
		if err := os.RemoveAll(filepath.Join(o.RuntimeRoot, o.ID)); err != nil {
			errs = append(errs, fmt.Errorf("remove the runtime state of %s: %w", o.ID, err))
		}
	}
	for _, p := range []string{o.socket(), o.ioSocket(), filepath.Join(o.Bundle, api.PidFile)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e, err := api.ReadExit(o.Bundle)
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &e, nil
}

// lockBundle takes the bundle's lock (api.LockFile, created if needed),
// waiting for it as long as ctx lets it. The file is close-on-exec: no
// child inherits the lock.
func lockBundle(ctx context.Context, bundle string) (*os.File, error) {
	path := filepath.Join(bundle, api.LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bundle lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil // closing it unlocks
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("bundle lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("bundle lock %s: held by another launch or delete of the shim: %w: %w", path, errdefs.ErrUnavailable, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// killShim kills the shim serving bundle, if one still does, and waits for
// it to be gone.
func killShim(ctx context.Context, bundle string) error {
	b, err := os.ReadFile(filepath.Join(bundle, api.PidFile))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil
	}
	// A pidfd pins the process: once the command line is checked, the
	// signal cannot reach another process that reused the pid.
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil // gone
	}
	defer unix.Close(pidfd)
	if !servesBundle(pid, bundle) {
		return nil
	}
	if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill shim %d: %w", pid, err)
	}
	// The pidfd becomes readable when the process has exited.
	deadline := time.Now().Add(goneWait)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 50)
		if n > 0 {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for shim %d: %w", pid, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("shim %d survives SIGKILL", pid)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// servesBundle reports whether process pid is `condenser-shim serve` for
// bundle.
func servesBundle(pid int, bundle string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	return isShimServing(strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), bundle)
}

// isShimServing reports whether args is the command line of a
// `condenser-shim serve` for bundle.
func isShimServing(args []string, bundle string) bool {
	if len(args) < 2 || filepath.Base(args[0]) != "condenser-shim" || args[1] != "serve" {
		return false
	}
	i := slices.Index(args, "--bundle")
	return i > 0 && i+1 < len(args) && args[i+1] == bundle
}

// removeCgroups kills the processes left in the container's cgroup — the
// init of a runtime killed half-way through create, the processes of a
// container whose shim died — and removes the cgroup, in every hierarchy.
// The runtime does this on delete for the containers it knows; this is for
// those it does not. The cgroup is the container's own, so everything in it
// is the container's. No config.json or no cgroupsPath: nothing to do.
func removeCgroups(ctx context.Context, bundle string) error {
	path, err := cgroupsPath(bundle)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && path == "") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("the container's cgroup: %w", err)
	}
	dirs, err := cgroupDirs(path)
	if err != nil || len(dirs) == 0 {
		return err
	}
	// Every directory, sub-cgroups first.
	var all []string
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, p)
			}
			return nil
		})
	}
	slices.Reverse(all)
	deadline := time.Now().Add(goneWait)
	for {
		var pids []int
		for _, dir := range all {
			b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", path, pids)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	var errs []error
	for _, dir := range all {
		for {
			err := syscall.Rmdir(dir)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
				break
			}
			time.Sleep(10 * time.Millisecond) // the killed processes are still leaving
		}
	}
	return errors.Join(errs...)
}

// cgroupDirs returns the directories of cgroup path (a cgroupsPath) that
// exist in the cgroup hierarchies mounted here: one per v1 hierarchy and the
// v2 one.
func cgroupDirs(path string) ([]string, error) {
	if err := checkCgroupsPath(path); err != nil {
		return nil, err
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return (m.FSType != "cgroup" && m.FSType != "cgroup2") || m.Root != "/", false
	})
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	var dirs []string
	for _, m := range mounts {
		dir := filepath.Join(m.Mountpoint, path)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() && !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs, nil
}

// checkCgroupsPath accepts the cgroupsPath of a container's own cgroup: an
// absolute path below the root (cgroupfs style). What could name a shared
// cgroup — the root, a relative path (taken from the runtime's own cgroup),
// systemd's slice:prefix:name — is refused: everything in the cgroup is
// killed.
func checkCgroupsPath(path string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) == "/" || strings.Contains(path, ":") || slices.Contains(strings.Split(path, "/"), "..") {
		return fmt.Errorf("cgroupsPath %q is not a container's own cgroup (an absolute path below the root): %w", path, errdefs.ErrInvalidArgument)
	}
	return nil
}

// execMonitor runs the runtime's commands for Delete, which is no
// subreaper: exec.Cmd.Wait reaps them.
type execMonitor struct{}

var _ runtime.Monitor = execMonitor{}

func (execMonitor) Start(cmd *exec.Cmd) (<-chan reaper.Exit, error) { return nil, cmd.Start() }

func (execMonitor) Wait(cmd *exec.Cmd, _ <-chan reaper.Exit) (int, error) {
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}
