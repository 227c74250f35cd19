package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

// Mount is one mount of a root filesystem (the shape the shim takes).
type Mount struct {
	Type    string   // "overlay" or "bind"
	Source  string   // "overlay", or the bind source
	Options []string // "lowerdir=…", "upperdir=…", "workdir=…", "rbind", "ro", …
}

// Options for Prepare.
type Options struct {
	ReadOnly bool // no writable layer; the mount is read-only
	Copy     bool // force the copy fallback even where overlayfs works
}

// Driver names, as Driver returns them.
const (
	DriverOverlay = "overlayfs"
	DriverCopy    = "copy"
)

// Names inside containers/<id>.
const (
	upperName  = "upper"
	workName   = "work"
	emptyName  = "empty"
	rootfsName = "rootfs"
	probePfx   = ".overlay-probe-"
)

// Manager prepares root filesystems under one directory (<root>/containers).
type Manager struct {
	dir string // absolute, symlinks resolved

	probeOnce sync.Once
	probeErr  error
}

// NewManager returns a Manager for dir, creating it if needed.
func NewManager(dir string) (*Manager, error) {
	if dir == "" {
		return nil, fmt.Errorf("rootfs: empty directory: %w", errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	if err := os.MkdirAll(abs, 0o711); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	return &Manager{dir: real}, nil
}

// Supported reports whether overlayfs works on the Manager's filesystem. The
// probe runs once; its result is cached.
func (m *Manager) Supported() bool {
	return m.OverlayError() == nil
}

// OverlayError returns why overlayfs cannot be used (nil when it can).
func (m *Manager) OverlayError() error {
	m.probeOnce.Do(func() { m.probeErr = probeOverlay(m.dir) })
	return m.probeErr
}

// Driver returns "overlayfs", or "copy" when overlayfs does not work here.
func (m *Manager) Driver() string {
	if m.Supported() {
		return DriverOverlay
	}
	return DriverCopy
}

// Prepare creates containers/<id>'s rootfs directories and returns the
// mounts for its root filesystem. layers are ordered bottom first.
func (m *Manager) Prepare(ctx context.Context, id string, layers []string, o Options) (_ []Mount, err error) {
	if err := names.ValidID(id); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	abs := make([]string, len(layers))
	for i, l := range layers {
		if l == "" {
			return nil, fmt.Errorf("rootfs %s: empty layer path: %w", id, errdefs.ErrInvalidArgument)
		}
		if abs[i], err = filepath.Abs(l); err != nil {
			return nil, fmt.Errorf("rootfs %s: %w", id, err)
		}
		fi, err := os.Stat(abs[i])
		if err != nil {
			kind := errdefs.ErrNotFound
			if !errors.Is(err, fs.ErrNotExist) {
				kind = errdefs.ErrUnavailable
			}
			return nil, fmt.Errorf("rootfs %s: layer: %w: %w", id, kind, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("rootfs %s: layer %s is not a directory: %w", id, abs[i], errdefs.ErrInvalidArgument)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cdir := filepath.Join(m.dir, id)
	if err := os.MkdirAll(cdir, 0o710); err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", id, err)
	}
	for _, n := range []string{upperName, workName, emptyName, rootfsName} {
		if _, err := os.Lstat(filepath.Join(cdir, n)); err == nil {
			return nil, fmt.Errorf("rootfs %s: %s already prepared: %w", id, n, errdefs.ErrAlreadyExists)
		}
	}
	var made []string // what to remove when Prepare fails
	defer func() {
		if err != nil {
			for _, p := range made {
				os.RemoveAll(p)
			}
			os.Remove(cdir) // only if nothing else (a log) is in it
		}
	}()
	mkdir := func(name string, mode os.FileMode) (string, error) {
		p := filepath.Join(cdir, name)
		if err := os.Mkdir(p, mode); err != nil {
			return "", fmt.Errorf("rootfs %s: %w", id, err)
		}
		made = append(made, p)
		return p, nil
	}

	if o.Copy || !m.Supported() {
		dst, err := mkdir(rootfsName, 0o755)
		if err != nil {
			return nil, err
		}
		if err := copyLayers(ctx, abs, dst); err != nil {
			return nil, fmt.Errorf("rootfs %s: copy layers: %w", id, err)
		}
		opts := []string{"rbind"}
		if o.ReadOnly {
			opts = append(opts, "ro")
		}
		return []Mount{{Type: "bind", Source: dst, Options: opts}}, nil
	}

	lowers := make([]string, 0, len(abs)+1) // top first
	for i := len(abs) - 1; i >= 0; i-- {
		lowers = append(lowers, abs[i])
	}
	if len(lowers) == 0 || (o.ReadOnly && len(lowers) == 1) {
		empty, err := mkdir(emptyName, 0o755)
		if err != nil {
			return nil, err
		}
		if len(lowers) == 0 && o.ReadOnly {
			return []Mount{{Type: "bind", Source: empty, Options: []string{"rbind", "ro"}}}, nil
		}
		lowers = append(lowers, empty)
	}
	if o.ReadOnly {
		return []Mount{overlayMount(lowers, "", "", true)}, nil
	}
	upper, err := mkdir(upperName, 0o755)
	if err != nil {
		return nil, err
	}
	// The merged root takes its owner and mode from the upper dir: make them
	// those of the top layer's root, as a read-only view would show.
	if len(abs) > 0 {
		var st unix.Stat_t
		if err := unix.Stat(abs[len(abs)-1], &st); err != nil {
			return nil, fmt.Errorf("rootfs %s: %w", id, err)
		}
		if err := unix.Lchown(upper, int(st.Uid), int(st.Gid)); err != nil {
			return nil, fmt.Errorf("rootfs %s: %w", id, err)
		}
		if err := unix.Chmod(upper, st.Mode&0o7777); err != nil {
			return nil, fmt.Errorf("rootfs %s: %w", id, err)
		}
	}
	work, err := mkdir(workName, 0o700)
	if err != nil {
		return nil, err
	}
	return []Mount{overlayMount(lowers, upper, work, false)}, nil
}

// overlayMount builds the overlay Mount for lowers (top first) and, unless
// empty, upper and work.
func overlayMount(lowers []string, upper, work string, readOnly bool) Mount {
	esc := make([]string, len(lowers))
	for i, l := range lowers {
		esc[i] = escapeOverlayPath(l)
	}
	opts := []string{"lowerdir=" + strings.Join(esc, ":")}
	if upper != "" {
		opts = append(opts, "upperdir="+escapeOverlayPath(upper), "workdir="+escapeOverlayPath(work))
	}
	if readOnly {
		opts = append(opts, "ro")
	}
	return Mount{Type: "overlay", Source: "overlay", Options: opts}
}

// escapeOverlayPath escapes the characters overlayfs splits its options and
// lower dirs on.
func escapeOverlayPath(p string) string {
	if !strings.ContainsAny(p, `\:,`) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\', ':', ',':
			b.WriteByte('\\')
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// unescapeOverlayPath undoes escapeOverlayPath (as the kernel does).
func unescapeOverlayPath(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			i++
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// Remove unmounts everything still mounted at or below containers/<id> (and
// mounts elsewhere of its directories), then removes containers/<id>. It is
// idempotent.
func (m *Manager) Remove(ctx context.Context, id string) error {
	if err := names.ValidID(id); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	cdir := filepath.Join(m.dir, id)
	if err := unmountContainer(ctx, m.dir, cdir); err != nil {
		return fmt.Errorf("rootfs %s: %w", id, err)
	}
	if err := os.RemoveAll(cdir); err != nil {
		return fmt.Errorf("rootfs %s: %w", id, err)
	}
	return nil
}

// Usage returns the bytes allocated to a container's writable layer (its
// upper dir, or its copy), hard links counted once.
func (m *Manager) Usage(ctx context.Context, id string) (int64, error) {
	if err := names.ValidID(id); err != nil {
		return 0, fmt.Errorf("rootfs: %w", err)
	}
	cdir := filepath.Join(m.dir, id)
	root := ""
	for _, n := range []string{upperName, rootfsName} {
		if fi, err := os.Lstat(filepath.Join(cdir, n)); err == nil && fi.IsDir() {
			root = filepath.Join(cdir, n)
			break
		}
	}
	if root == "" {
		return 0, fmt.Errorf("rootfs %s: no writable layer: %w", id, errdefs.ErrNotFound)
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed by the running container
				return nil
			}
			return err
		}
		if n++; n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if p == root {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return &fs.PathError{Op: "lstat", Path: p, Err: err}
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rootfs %s: usage: %w", id, err)
	}
	return total, nil
}

// probeOverlay mounts a tiny read-write overlay in a temporary directory under
// dir, deletes a lower file through it (making a whiteout) and unmounts it.
func probeOverlay(dir string) (err error) {
	// Leftovers of a probe interrupted by a crash.
	if old, _ := filepath.Glob(filepath.Join(dir, probePfx+"*")); len(old) > 0 {
		for _, p := range old {
			UnmountAll(filepath.Join(p, "merged"))
			os.RemoveAll(p)
		}
	}
	tmp, err := os.MkdirTemp(dir, probePfx)
	if err != nil {
		return fmt.Errorf("overlay probe: %w", err)
	}
	defer os.RemoveAll(tmp)
	p := func(n string) string { return filepath.Join(tmp, n) }
	for _, n := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(p(n), 0o755); err != nil {
			return fmt.Errorf("overlay probe: %w", err)
		}
	}
	if err := os.WriteFile(p("lower/f"), []byte("x"), 0o644); err != nil {
		return fmt.Errorf("overlay probe: %w", err)
	}
	mnt := overlayMount([]string{p("lower")}, p("upper"), p("work"), false)
	if err := MountAll([]Mount{mnt}, p("merged")); err != nil {
		return fmt.Errorf("overlay probe: %w", err)
	}
	defer func() {
		if uerr := UnmountAll(p("merged")); uerr != nil && err == nil {
			err = fmt.Errorf("overlay probe: %w", uerr)
		}
	}()
	if err := os.Remove(p("merged/f")); err != nil {
		return fmt.Errorf("overlay probe: delete a lower file: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p("upper/f"), &st); err != nil || !isWhiteout(&st) {
		return fmt.Errorf("overlay probe: no whiteout made in the upper dir")
	}
	if _, err := os.Lstat(p("merged/f")); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("overlay probe: a deleted file is still visible")
	}
	return nil
}

// isWhiteout reports whether st is an overlayfs whiteout (a 0/0 character
// device).
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// isOpaque reports whether the directory p is marked opaque for overlayfs.
func isOpaque(p string) bool {
	var buf [8]byte
	n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf[:])
	return err == nil && n == 1 && buf[0] == 'y'
}
