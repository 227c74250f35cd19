package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim"
)

// cgroupKillTimeout bounds how long removeCgroups waits for the processes
// it killed to leave a container's cgroups.
const cgroupKillTimeout = 10 * time.Second

// reap cleans up after a container whose shim is gone (killed, crashed, or
// not there after a restart): a shim process that lingers without
// answering is killed, and so is whatever of the container still runs
// (its processes outlive their shim); the runtime's state, the cgroups and
// the root filesystem's mount go. The bundle's config.json, the writable
// layer and the log stay, as for any stopped container, so that it can be
// inspected, started again or deleted. Called with the container's lock
// held; the caller records the container as stopped.
func (s *Supervisor) reap(ctx context.Context, c *Container) {
	s.mu.Lock()
	cl := s.shims[c.ID]
	delete(s.shims, c.ID)
	s.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
	if pid := shimPid(c.Bundle); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	s.removeRuntimeState(ctx, c.ID)
	if err := rootfs.UnmountAll(filepath.Join(c.Bundle, "rootfs")); err != nil {
		s.log.Warn("unmount the root filesystem of a container whose shim is gone", "id", c.ID, "error", err)
	}
	for _, name := range []string{shim.PidFile, "shim.sock"} {
		os.Remove(filepath.Join(c.Bundle, name))
	}
	c.ShimPid, c.ShimAddress = 0, ""
}

// removeRuntimeState deletes the runtime's state of container id, killing
// the container if it still runs, then removes what the runtime could not:
// its cgroups and its state directory, which a runtime killed half-way
// through create leaves without a state it would recognize.
func (s *Supervisor) removeRuntimeState(ctx context.Context, id string) {
	if !safeID(id) {
		return
	}
	root := filepath.Join(s.cfg.State, "runtime")
	runtimeDelete(ctx, s.cfg.Runtime, root, id)
	if err := removeCgroups(ctx, id); err != nil {
		s.log.Warn("remove the cgroups of a container", "id", id, "error", err)
	}
	if err := os.RemoveAll(filepath.Join(root, id)); err != nil {
		s.log.Warn("remove the runtime state of a container", "id", id, "error", err)
	}
}

// safeID reports whether id can name a directory below another.
func safeID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\x00")
}

// shimPid returns the pid in bundle/shim.pid if that process is still the
// shim serving that bundle (pids are reused), else 0.
func shimPid(bundle string) int {
	pid := readPid(filepath.Join(bundle, shim.PidFile))
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return 0
	}
	args := strings.Split(string(b), "\x00")
	if i := slices.Index(args, "--bundle"); i >= 0 && i+1 < len(args) && args[i+1] == bundle {
		return pid
	}
	return 0
}

// cgroupDirs returns the cgroup directories of container id that exist:
// its cgroupsPath (/condenser/<id>) in every cgroup hierarchy mounted here,
// one per v1 controller and the v2 one.
func cgroupDirs(id string) ([]string, error) {
	if !safeID(id) {
		return nil, fmt.Errorf("cgroups of container %q: bad id", id)
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return (m.FSType != "cgroup" && m.FSType != "cgroup2") || m.Root != "/", false
	})
	if err != nil {
		return nil, fmt.Errorf("cgroups of container %s: %w", id, err)
	}
	var dirs []string
	for _, m := range mounts {
		dir := filepath.Join(m.Mountpoint, cgroupParent, id)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() && !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs, nil
}

// removeCgroups kills the processes left in container id's cgroups — the
// init of a runtime killed half-way through create, the processes of a
// container whose shim died — and removes the cgroups. The runtime does
// this on delete for containers it knows; this is for those it does not.
// The cgroups are the container's own (cgroupsPath /condenser/<id>), so
// everything in them is the container's.
func removeCgroups(ctx context.Context, id string) error {
	dirs, err := cgroupDirs(id)
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
	deadline := time.Now().Add(cgroupKillTimeout)
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
			return fmt.Errorf("cgroups of container %s: processes %v survive SIGKILL", id, pids)
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
