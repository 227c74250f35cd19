package network

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/names"
)

// NewNamespace creates the network namespace of container id, with its
// loopback up, kept by a bind mount at <state>/netns/<id>, and returns that
// path (for the OCI spec's network namespace). A namespace that exists
// already is returned as it is. Attach makes it when it is missing, so
// calling NewNamespace first only lets the runtime's create and Attach
// overlap.
func (m *Manager) NewNamespace(ctx context.Context, id string) (string, error) {
	if err := names.ValidID(id); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	m.op.RLock()
	defer m.op.RUnlock()
	unlock := m.lockID(id)
	defer unlock()
	path := m.nsPath(id)
	if isNamespace(path) {
		return path, nil
	}
	ns, h, err := createNamespace(path)
	if err != nil {
		return "", fmt.Errorf("container %s: %w", names.ShortID(id), err)
	}
	h.Close()
	ns.Close()
	return path, nil
}

// RemoveNamespace unmounts and removes the namespace of container id. A
// namespace that is gone is no error. (The namespace itself lives on while
// a process is in it.)
func (m *Manager) RemoveNamespace(ctx context.Context, id string) error {
	if err := names.ValidID(id); err != nil {
		return err
	}
	m.op.RLock()
	defer m.op.RUnlock()
	unlock := m.lockID(id)
	defer unlock()
	return removeNamespace(m.nsPath(id))
}

// createNamespace makes a network namespace kept at path, brings its
// loopback up and returns a handle on it and a netlink socket in it.
//
// unshare(CLONE_NEWNET) moves the calling thread: it runs on a goroutine
// locked to its thread that never unlocks it, so that when the goroutine
// returns the Go runtime ends the thread instead of giving it to other
// goroutines. The thread is moved back to its namespace first all the
// same: the runtime cannot end the process's main thread, which it parks
// for good instead, and a thread parked in the new namespace would keep
// it (and the veth in it) alive as long as the daemon. The netlink socket
// is opened on that thread: a socket stays in the namespace it was made
// in, whichever thread uses it later.
func createNamespace(path string) (netns.NsHandle, *netlink.Handle, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o444)
	if err != nil {
		return 0, nil, fmt.Errorf("network namespace: %w", err)
	}
	f.Close()
	type made struct {
		ns  netns.NsHandle
		h   *netlink.Handle
		err error
	}
	c := make(chan made, 1)
	go func() {
		runtime.LockOSThread() // for good: see above
		r := made{ns: -1}
		defer func() { c <- r }()
		back, err := netns.Get()
		if err != nil {
			r.err = fmt.Errorf("the thread's namespace: %w", err)
			return
		}
		defer back.Close()
		defer netns.Set(back) // if it fails, the thread ends all the same
		if r.err = unix.Unshare(unix.CLONE_NEWNET); r.err != nil {
			r.err = fmt.Errorf("unshare: %w", r.err)
			return
		}
		if r.err = unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); r.err != nil {
			r.err = fmt.Errorf("bind mount at %s: %w", path, r.err)
			return
		}
		if r.ns, r.err = netns.Get(); r.err != nil {
			return
		}
		r.h, r.err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}()
	r := <-c
	if r.err == nil {
		// The loopback is the index 1 of every network namespace.
		if err := r.h.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo"}}); err != nil {
			r.err = fmt.Errorf("loopback up: %w", err)
		}
	}
	if r.err != nil {
		if r.h != nil {
			r.h.Close()
		}
		if r.ns >= 0 {
			r.ns.Close()
		}
		if err := removeNamespace(path); err != nil {
			return 0, nil, fmt.Errorf("network namespace: %w (and removing it: %v)", r.err, err)
		}
		return 0, nil, fmt.Errorf("network namespace: %w", r.err)
	}
	return r.ns, r.h, nil
}

// openNamespace returns a handle on the namespace kept at path and a
// netlink socket in it.
func openNamespace(path string) (netns.NsHandle, *netlink.Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return 0, nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return 0, nil, fmt.Errorf("network namespace %s: netlink: %w", path, err)
	}
	return ns, h, nil
}

// isNamespace tells whether path is a namespace (an nsfs file: the bind
// mount is there).
func isNamespace(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// removeNamespace unmounts path (every mount stacked on it) and removes the
// file. Missing is no error.
func removeNamespace(path string) error {
	for range 16 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // not (or no longer) a mount point
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// makeShared makes dir a mount point with shared propagation, as iproute2
// does with /run/netns: a mount namespace made later (a runtime's, a
// service's) copies the namespaces' bind mounts as peers or slaves, so
// unmounting one here unmounts the copies, and the namespace is freed
// instead of living on in another mount namespace. dir is bind-mounted
// onto itself first when it is not a mount point.
func makeShared(dir string) error {
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil || !errors.Is(err, unix.EINVAL) {
		return err
	}
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
}

// unmountIfEmpty unmounts dir (the namespaces' directory, a mount point of
// its own) when no namespace is left in it.
func unmountIfEmpty(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) > 0 {
		return nil
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}
