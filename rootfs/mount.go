package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
)

// ErrKernelTooOld is wrapped by MountAll's error when an overlay has too many
// layers for mount(2) and the kernel cannot take them one by one.
var ErrKernelTooOld = errors.New("kernel too old")

// maxMountData is the longest option string passed to mount(2), which copies
// one page (4096 bytes, NUL included) of it.
const maxMountData = 4000

// maxFsconfigString is the longest string fsconfig(2) accepts (256 bytes
// with the NUL).
const maxFsconfigString = 255

// mountFlag is an option that is a mount flag rather than data.
type mountFlag struct {
	clear bool
	flag  uintptr
	attr  uint64 // MOUNT_ATTR_* for the new mount API
}

var mountFlags = map[string]mountFlag{
	"ro":          {false, unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
	"rw":          {true, unix.MS_RDONLY, 0},
	"nosuid":      {false, unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
	"suid":        {true, unix.MS_NOSUID, 0},
	"nodev":       {false, unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
	"dev":         {true, unix.MS_NODEV, 0},
	"noexec":      {false, unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
	"exec":        {true, unix.MS_NOEXEC, 0},
	"bind":        {false, unix.MS_BIND, 0},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC, 0},
	"noatime":     {false, unix.MS_NOATIME, unix.MOUNT_ATTR_NOATIME},
	"nodiratime":  {false, unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
	"relatime":    {false, unix.MS_RELATIME, unix.MOUNT_ATTR_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME, unix.MOUNT_ATTR_STRICTATIME},
}

// propagationFlags are applied by a second mount(2) call once mounted.
var propagationFlags = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parsedOptions are a Mount's options sorted into flags and data.
type parsedOptions struct {
	flags       uintptr
	attrs       uint64
	data        []string
	propagation []uintptr
}

func parseOptions(opts []string) parsedOptions {
	var p parsedOptions
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				p.flags &^= f.flag
			} else {
				p.flags |= f.flag
			}
			continue
		}
		if f, ok := propagationFlags[o]; ok {
			p.propagation = append(p.propagation, f)
			continue
		}
		p.data = append(p.data, o)
	}
	for _, f := range mountFlags {
		if !f.clear && f.attr != 0 && p.flags&f.flag == f.flag {
			p.attrs |= f.attr
		}
	}
	return p
}

// dataString is what mount(2) gets as its data argument.
func (p parsedOptions) dataString() string { return strings.Join(p.data, ",") }

// needsMountAPI reports whether m must be mounted with the new mount API:
// an overlay whose option data does not fit one mount(2) page.
func needsMountAPI(m Mount, p parsedOptions) bool {
	return m.Type == "overlay" && len(p.dataString()) > maxMountData
}

// MountAll mounts ms on target in order. When one fails, those already made
// are undone.
func MountAll(ms []Mount, target string) error {
	for i, m := range ms {
		if err := mountOne(m, target); err != nil {
			for j := 0; j < i; j++ {
				unix.Unmount(target, unix.MNT_DETACH)
			}
			return fmt.Errorf("mount %s on %s: %w", m.Type, target, err)
		}
	}
	return nil
}

func mountOne(m Mount, target string) error {
	p := parseOptions(m.Options)
	if needsMountAPI(m, p) {
		if err := mountOverlayFD(m, p, target); err != nil {
			return err
		}
	} else {
		bind := p.flags&unix.MS_BIND != 0
		flags := p.flags
		if bind {
			flags &^= unix.MS_RDONLY // a bind mount is made read-only by a remount
		}
		if err := unix.Mount(m.Source, target, m.Type, flags, p.dataString()); err != nil {
			return err
		}
		if bind && p.flags&unix.MS_RDONLY != 0 {
			if err := unix.Mount("", target, "", p.flags|unix.MS_REMOUNT, ""); err != nil {
				unix.Unmount(target, unix.MNT_DETACH)
				return fmt.Errorf("remount read-only: %w", err)
			}
		}
	}
	for _, f := range p.propagation {
		if err := unix.Mount("", target, "", f, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("set propagation: %w", err)
		}
	}
	return nil
}

// mountOverlayFD mounts an overlay with fsopen/fsconfig/fsmount/move_mount,
// passing each lower layer as its own "lowerdir+" (Linux ≥ 6.8) so that the
// one-page limit of mount(2) does not apply.
func mountOverlayFD(m Mount, p parsedOptions, target string) (err error) {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	layers := 0
	for _, o := range p.data {
		if k, v, ok := strings.Cut(o, "="); ok && k == "lowerdir" {
			l, d := splitLowerdir(v)
			layers += len(l) + len(d)
		}
	}
	fail := func(what string, err error) error {
		log := fsLog(fd)
		if tooOld(what, err, log) {
			return fmt.Errorf("overlay with %d layers needs %d bytes of mount options, more than mount(2) takes, "+
				"and this kernel (%s) lacks overlayfs %q (Linux ≥ 6.8) to pass them one at a time: %w for that many layers (%w)",
				layers, len(p.dataString()), kernelRelease(), "lowerdir+", ErrKernelTooOld, errdefs.ErrNotImplemented)
		}
		if log != "" {
			return fmt.Errorf("fsconfig %s: %w (kernel: %s)", what, err, log)
		}
		return fmt.Errorf("fsconfig %s: %w", what, err)
	}
	// setPath passes a directory, by name when fsconfig takes it, else as an
	// open file (overlayfs ≥ 6.13). escaped is the name as the kernel expects
	// it for key, plain the real path.
	setPath := func(key, escaped, plain string) error {
		if len(escaped) <= maxFsconfigString {
			if err := unix.FsconfigSetString(fd, key, escaped); err != nil {
				return fail(key+"="+plain, err)
			}
			return nil
		}
		dfd, err := unix.Open(plain, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: plain, Err: err}
		}
		defer unix.Close(dfd)
		if err := unix.FsconfigSetFd(fd, key, dfd); err != nil {
			err = fail(key+"="+plain, err)
			if errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("%w (paths over %d bytes need overlayfs layer file descriptors, Linux ≥ 6.13)", err, maxFsconfigString)
			}
			return err
		}
		return nil
	}
	if m.Source != "" {
		if err := unix.FsconfigSetString(fd, "source", m.Source); err != nil {
			return fail("source", err)
		}
	}
	for _, o := range p.data {
		k, v, hasValue := strings.Cut(o, "=")
		switch {
		case k == "lowerdir" && hasValue:
			lowers, data := splitLowerdir(v)
			for _, l := range lowers {
				if err := setPath("lowerdir+", l, l); err != nil {
					return err
				}
			}
			for _, l := range data {
				if err := setPath("datadir+", l, l); err != nil {
					return err
				}
			}
		case (k == "lowerdir+" || k == "datadir+") && hasValue: // not escaped
			if err := setPath(k, v, v); err != nil {
				return err
			}
		case (k == "upperdir" || k == "workdir") && hasValue: // escaped
			if err := setPath(k, v, unescapeOverlayPath(v)); err != nil {
				return err
			}
		case !hasValue:
			if err := unix.FsconfigSetFlag(fd, k); err != nil {
				return fail(k, err)
			}
		default:
			if err := unix.FsconfigSetString(fd, k, v); err != nil {
				return fail(k, err)
			}
		}
	}
	if p.flags&unix.MS_RDONLY != 0 {
		if err := unix.FsconfigSetFlag(fd, "ro"); err != nil {
			return fail("ro", err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fail("create", err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, int(p.attrs))
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", target, err)
	}
	return nil
}

// tooOld reports whether a failure of fsconfig means the kernel does not
// know "lowerdir+": EINVAL while setting it (6.5–6.7 reject the key), or at
// create time with the kernel naming it (older kernels pass keys through to
// the legacy parser).
func tooOld(what string, err error, log string) bool {
	if !errors.Is(err, unix.EINVAL) {
		return false
	}
	switch {
	case strings.HasPrefix(what, "lowerdir+="):
		return log == "" || strings.Contains(log, "nknown parameter") || strings.Contains(log, "lowerdir+")
	case what == "create":
		return strings.Contains(log, "lowerdir+")
	}
	return false
}

// splitLowerdir splits an escaped lowerdir value into unescaped layers, and
// the data-only layers after "::".
func splitLowerdir(v string) (lowers, data []string) {
	var cur strings.Builder
	inData := false
	flush := func() {
		if inData {
			data = append(data, cur.String())
		} else {
			lowers = append(lowers, cur.String())
		}
		cur.Reset()
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case c == ':':
			if i+1 < len(v) && v[i+1] == ':' {
				flush()
				inData = true
				i++
				continue
			}
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return lowers, data
}

// fsLog drains the messages the kernel left on a filesystem context.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for i := 0; i < 32; i++ {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// UnmountAll unmounts every mount on target and below it, innermost first.
// A busy mount is detached lazily. Nothing mounted is not an error.
func UnmountAll(target string) error {
	abs, err := filepath.Abs(target)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if abs == "/" {
		return fmt.Errorf("unmount %s: refusing to unmount the root: %w", target, errdefs.ErrInvalidArgument)
	}
	if mounts, err := readMountinfo(); err == nil {
		var under []mountInfo
		for _, mi := range mounts {
			if within(mi.mountPoint, abs) {
				under = append(under, mi)
			}
		}
		sortDeepestFirst(under)
		for _, mi := range under {
			if err := unmountPath(mi.mountPoint); err != nil {
				return err
			}
		}
	}
	for i := 0; i < 64; i++ { // anything mountinfo did not show (stacked, raced)
		err := unix.Unmount(abs, 0)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point (any more)
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(abs, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", abs, err)
			}
		default:
			return fmt.Errorf("unmount %s: %w", abs, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted", abs)
}

// unmountPath unmounts the topmost mount on p, lazily when it is busy.
func unmountPath(p string) error {
	err := unix.Unmount(p, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(p, unix.MNT_DETACH)
	}
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return nil // gone already (e.g. with a lazily detached parent)
	default:
		return fmt.Errorf("unmount %s: %w", p, err)
	}
}

// within reports whether p is dir or below it (both clean and absolute).
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/") || dir == "/"
}

// sortDeepestFirst orders mounts so that children (and mounts stacked later
// on the same point) come before their parents.
func sortDeepestFirst(ms []mountInfo) {
	for i := range ms {
		ms[i].order = i
	}
	sort.SliceStable(ms, func(i, j int) bool {
		di, dj := strings.Count(ms[i].mountPoint, "/"), strings.Count(ms[j].mountPoint, "/")
		if di != dj {
			return di > dj
		}
		return ms[i].order > ms[j].order
	})
}
