package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// resolveBeneath keeps every lookup inside the layer and refuses to cross a
// symlink or a mount point: a layer never needs to, and a hostile one would.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS |
	unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

type extractor struct {
	root    int // O_DIRECTORY fd of the layer directory
	rootDir string
	chown   bool
	// One cached parent directory: entries of a layer arrive grouped by
	// directory, so this saves most lookups.
	lastRel string
	lastFD  int
	dirs    []dirMeta
	buf     []byte
}

func newExtractor(dir string) (*extractor, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &extractor{root: fd, rootDir: dir, chown: os.Geteuid() == 0, lastFD: -1, buf: make([]byte, 256<<10)}, nil
}

func (x *extractor) close() {
	x.dropCache()
	unix.Close(x.root)
}

func (x *extractor) dropCache() {
	if x.lastFD >= 0 {
		unix.Close(x.lastFD)
	}
	x.lastFD, x.lastRel = -1, ""
}

// openDir opens the directory rel (relative to the root) without following
// any symlink. With create, missing components are made (0755, root-owned,
// as Docker does for implicit parents).
func (x *extractor) openDir(rel string, create bool) (int, error) {
	if rel == "" {
		return unix.Dup(x.root)
	}
	how := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveBeneath}
	fd, err := unix.Openat2(x.root, rel, how)
	if err == nil || !create || !errors.Is(err, unix.ENOENT) {
		return fd, x.pathErr(rel, err)
	}
	// Walk and create component by component.
	cur, err := unix.Dup(x.root)
	if err != nil {
		return -1, err
	}
	done := ""
	for _, c := range strings.Split(rel, "/") {
		done = joinRel(done, c)
		next, err := unix.Openat2(cur, c, how)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(cur, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat2(cur, c, how)
			}
		}
		unix.Close(cur)
		if err != nil {
			return -1, x.pathErr(done, err)
		}
		cur = next
	}
	return cur, nil
}

func (x *extractor) pathErr(rel string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: %q is not a directory inside the layer (symlink or file in the path)", ErrUnsafe, rel)
	}
	return &os.PathError{Op: "open", Path: rel, Err: err}
}

// parent returns an fd for the directory rel, creating it if needed. The fd
// belongs to the cache: callers must not close it.
func (x *extractor) parent(rel string) (int, error) {
	if x.lastFD >= 0 && x.lastRel == rel {
		return x.lastFD, nil
	}
	fd, err := x.openDir(rel, true)
	if err != nil {
		return -1, err
	}
	x.dropCache()
	x.lastFD, x.lastRel = fd, rel
	return fd, nil
}

func joinRel(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// entry writes one tar entry and returns the bytes of file content written.
func (x *extractor) entry(hdr *tar.Header, r io.Reader) (int64, error) {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return 0, err
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return 0, nil
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			// A few bytes of sparse map can declare terabytes of holes
			// that would be written out as zeros.
			return 0, fmt.Errorf("%w: sparse file %q is not supported", ErrUnsafe, hdr.Name)
		}
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return 0, fmt.Errorf("%w: layer root entry %q is not a directory", ErrUnsafe, hdr.Name)
		}
		x.dirs = append(x.dirs, dirMeta{rel: "", hdr: hdr})
		return 0, nil
	}
	dir, base := split(rel)
	pfd, err := x.parent(dir)
	if err != nil {
		return 0, fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return 0, x.whiteout(hdr, pfd, dir, base)
	}
	var n int64
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = x.mkdir(pfd, base)
		if err == nil {
			x.dirs = append(x.dirs, dirMeta{rel: rel, hdr: hdr})
		}
	case tar.TypeReg: // tar.Reader turns the legacy TypeRegA into TypeReg (or TypeDir)
		n, err = x.file(hdr, pfd, base, r)
	case tar.TypeSymlink:
		err = x.replace(pfd, base, func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) })
		if err == nil {
			err = x.meta(hdr, pfd, base, -1)
		}
	case tar.TypeLink:
		err = x.link(hdr, rel, pfd, base)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		err = x.replace(pfd, base, func() error { return unix.Mknodat(pfd, base, mode, int(dev)) })
		if err == nil {
			err = x.meta(hdr, pfd, base, -1)
		}
	default:
		return 0, fmt.Errorf("entry %q: unsupported tar entry type %q: %w", hdr.Name, hdr.Typeflag, ErrUnsafe)
	}
	if err != nil {
		return n, fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	return n, nil
}

func (x *extractor) whiteout(hdr *tar.Header, pfd int, dir, base string) error {
	if base == whiteoutOpaque {
		if err := unix.Fsetxattr(pfd, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("opaque whiteout %q: %w", hdr.Name, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other AUFS metadata (.wh..wh.plnk, …) has no overlay meaning
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: malformed whiteout %q", ErrUnsafe, hdr.Name)
	}
	err := x.replace(pfd, name, func() error { return unix.Mknodat(pfd, name, unix.S_IFCHR, 0) })
	if err == nil && x.chown {
		err = unix.Fchownat(pfd, name, 0, 0, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return fmt.Errorf("whiteout %q: %w", hdr.Name, err)
	}
	return nil
}

// replace runs create and, when something already has that name (a later
// entry replaces an earlier one, as in Docker), removes it and retries once.
func (x *extractor) replace(pfd int, base string, create func() error) error {
	err := create()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if err := x.remove(pfd, base); err != nil {
		return err
	}
	return create()
}

// remove deletes base in pfd, recursively if it is a directory. It never
// follows a symlink: unlinkat removes the link itself.
func (x *extractor) remove(pfd int, base string) error {
	err := unix.Unlinkat(pfd, base, 0)
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	// A directory. The cached parent is pfd itself, never inside it.
	return os.RemoveAll(fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base))
}

func (x *extractor) mkdir(pfd int, base string) error {
	err := unix.Mkdirat(pfd, base, 0o755)
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil // merge with an earlier entry of the same directory
	}
	if err := x.remove(pfd, base); err != nil {
		return err
	}
	return unix.Mkdirat(pfd, base, 0o755)
}

func (x *extractor) file(hdr *tar.Header, pfd int, base string, r io.Reader) (int64, error) {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	var fd int
	err := x.replace(pfd, base, func() (err error) {
		fd, err = unix.Openat(pfd, base, flags, 0o600)
		return err
	})
	if err != nil {
		return 0, err
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	n, err := io.CopyBuffer(fileWriter{f}, r, x.buf)
	if err != nil {
		return n, err
	}

	return n, x.meta(hdr, fd, "", fd)
}

// fileWriter hides os.File's ReadFrom so that io.CopyBuffer uses our buffer
// instead of falling back to a 32 KiB one.
type fileWriter struct{ f *os.File }

func (w fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (x *extractor) link(hdr *tar.Header, rel string, pfd int, base string) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return err
	}
	if target == "" {
		return fmt.Errorf("%w: hard link to the layer root", ErrUnsafe)
	}
	tdir, tbase := split(target)
	tfd, err := x.openDir(tdir, false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	defer unix.Close(tfd)
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%w: hard link target %q is not in the layer", ErrUnsafe, hdr.Linkname)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%w: hard link to directory %q", ErrUnsafe, hdr.Linkname)
	}
	if target == rel {
		return nil // a link to itself: nothing to do
	}
	return x.replace(pfd, base, func() error { return unix.Linkat(tfd, tbase, pfd, base, 0) })
}

// meta applies ownership, mode, xattrs and times. With fd >= 0 it works on
// that open file; otherwise on base in pfd without following symlinks.
func (x *extractor) meta(hdr *tar.Header, pfd int, base string, fd int) error {
	isLink := hdr.Typeflag == tar.TypeSymlink
	if x.chown {
		var err error
		if fd >= 0 {
			err = unix.Fchown(fd, hdr.Uid, hdr.Gid)
		} else {
			err = unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if !isLink { // chown clears setuid/setgid, so chmod comes after it
		mode := uint32(hdr.Mode & 0o7777)
		var err error
		if fd >= 0 {
			err = unix.Fchmod(fd, mode)
		} else {
			err = unix.Fchmodat(pfd, base, mode, 0)
		}
		if err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if err := x.xattrs(hdr, pfd, base, fd); err != nil {
		return err
	}
	return setTimes(hdr, pfd, base, fd)
}

func setTimes(hdr *tar.Header, pfd int, base string, fd int) error {
	mt := hdr.ModTime
	at := hdr.AccessTime
	if at.IsZero() {
		at = mt
	}
	ts := []unix.Timespec{timespec(at), timespec(mt)}
	var err error
	if fd >= 0 {
		err = unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
	} else {
		err = unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// xattrs applies the entry's extended attributes. trusted.* attributes are
// dropped: trusted.overlay.* in a layer would forge overlayfs whiteouts,
// redirects or metacopy and change what lower layers show.
func (x *extractor) xattrs(hdr *tar.Header, pfd int, base string, fd int) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(name, "trusted.") {
			continue
		}
		var err error
		if fd >= 0 {
			err = unix.Fsetxattr(fd, name, []byte(v), 0)
		} else {
			err = unix.Lsetxattr("/proc/self/fd/"+strconv.Itoa(pfd)+"/"+base, name, []byte(v), 0)
		}
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EPERM) && hdr.Typeflag == tar.TypeSymlink:
			// The filesystem (or, for user.* on symlinks, the kernel) does
			// not take it; Docker skips these too.
		default:
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

// finish applies directory metadata, last entry first; an earlier entry of
// the same directory is overridden by the later one.
func (x *extractor) finish() error {
	x.dropCache()
	done := make(map[string]bool, len(x.dirs))
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if done[d.rel] {
			continue
		}
		done[d.rel] = true
		fd, err := x.openDir(d.rel, false)
		if err != nil {
			if errors.Is(err, ErrUnsafe) || errors.Is(err, unix.ENOENT) {
				continue // replaced or removed by a later entry
			}
			return fmt.Errorf("entry %q: %w", d.hdr.Name, err)
		}
		err = x.meta(d.hdr, fd, "", fd)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}
