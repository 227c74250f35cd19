package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// copyLayers copies layers (bottom first) into the existing directory dst,
// as overlayfs would merge them: a 0/0 character device deletes what is below
// it, a directory marked trusted.overlay.opaque=y hides the contents of the
// directories below it, a non-directory replaces a directory and a directory
// replaces a non-directory. Owners, modes, xattrs (but trusted.overlay.*),
// times, devices, fifos, sockets, sparse files and hard links within a layer
// are preserved. Directory times are set last, from the topmost layer that
// has the directory.
func copyLayers(ctx context.Context, layers []string, dst string) error {
	dirTimes := map[string][]unix.Timespec{}
	for _, l := range layers {
		c := &copier{ctx: ctx, src: l, dst: dst, links: map[inodeKey]string{}, dirTimes: dirTimes}
		var st unix.Stat_t
		if err := unix.Stat(l, &st); err != nil {
			return &os.PathError{Op: "stat", Path: l, Err: err}
		}
		if err := c.copyDir(""); err != nil {
			return err
		}
		if err := c.copyMeta(dst, l, &st); err != nil {
			return err
		}
		dirTimes[""] = []unix.Timespec{st.Atim, st.Mtim}
	}
	rels := make([]string, 0, len(dirTimes))
	for rel := range dirTimes {
		rels = append(rels, rel)
	}
	sort.Slice(rels, func(i, j int) bool { // deepest first
		return strings.Count(rels[i], "/") > strings.Count(rels[j], "/")
	})
	for _, rel := range rels {
		p := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue // deleted or replaced by a higher layer
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, dirTimes[rel], unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "utimes", Path: p, Err: err}
		}
	}
	return nil
}

type inodeKey struct{ dev, ino uint64 }

// copier applies one layer.
type copier struct {
	ctx      context.Context
	src, dst string
	links    map[inodeKey]string // this layer's hard-linked inodes → dst path
	dirTimes map[string][]unix.Timespec
}

// copyDir applies the directory rel of the layer to the directory rel of
// dst, which exists and is a directory.
func (c *copier) copyDir(rel string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	sdir := filepath.Join(c.src, rel)
	f, err := os.Open(sdir)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		if err := c.copyEntry(filepath.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

func (c *copier) copyEntry(rel string) error {
	sp, dp := filepath.Join(c.src, rel), filepath.Join(c.dst, rel)
	var st unix.Stat_t
	if err := unix.Lstat(sp, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: sp, Err: err}
	}
	var dst unix.Stat_t
	dstErr := unix.Lstat(dp, &dst)
	exists := dstErr == nil
	if dstErr != nil && !errors.Is(dstErr, unix.ENOENT) {
		return &os.PathError{Op: "lstat", Path: dp, Err: dstErr}
	}
	if isWhiteout(&st) {
		if exists {
			return os.RemoveAll(dp)
		}
		return nil
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if exists && (dst.Mode&unix.S_IFMT != unix.S_IFDIR || isOpaque(sp)) {
			if err := os.RemoveAll(dp); err != nil {
				return err
			}
			exists = false
		}
		if !exists {
			if err := unix.Mkdir(dp, 0o700); err != nil {
				return &os.PathError{Op: "mkdir", Path: dp, Err: err}
			}
		}
		if err := c.copyMeta(dp, sp, &st); err != nil {
			return err
		}
		c.dirTimes[rel] = []unix.Timespec{st.Atim, st.Mtim}
		return c.copyDir(rel)
	}
	if exists {
		if err := os.RemoveAll(dp); err != nil {
			return err
		}
	}
	if st.Nlink > 1 {
		k := inodeKey{uint64(st.Dev), st.Ino}
		if first, ok := c.links[k]; ok {
			if err := unix.Link(first, dp); err == nil {
				return nil
			}
		} else {
			defer func() { c.links[k] = dp }()
		}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if err := copyFileData(sp, dp, st.Size); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(sp)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dp); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dp, st.Mode&(unix.S_IFMT|0o777), int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dp, Err: err}
		}
	default:
		return fmt.Errorf("%s: unknown file type %#o", sp, st.Mode&unix.S_IFMT)
	}
	if err := c.copyMeta(dp, sp, &st); err != nil {
		return err
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dp, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: dp, Err: err}
	}
	return nil
}

// copyMeta gives dp the owner, mode and xattrs of sp (whose stat is st).
// The order matters: chown clears set-id bits and security.capability.
func (c *copier) copyMeta(dp, sp string, st *unix.Stat_t) error {
	if err := unix.Lchown(dp, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "lchown", Path: dp, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dp, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dp, Err: err}
		}
	}
	return copyXattrs(dp, sp)
}

// copyXattrs makes dp's xattrs those of sp, except trusted.overlay.* (which
// overlayfs keeps to itself).
func copyXattrs(dp, sp string) error {
	want, err := listXattrs(sp)
	if err != nil {
		return &os.PathError{Op: "llistxattr", Path: sp, Err: err}
	}
	have, err := listXattrs(dp)
	if err != nil {
		return &os.PathError{Op: "llistxattr", Path: dp, Err: err}
	}
	keep := map[string]bool{}
	for _, name := range want {
		if strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		keep[name] = true
		v, err := getXattr(sp, name)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "lgetxattr " + name, Path: sp, Err: err}
		}
		if err := unix.Lsetxattr(dp, name, v, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return &os.PathError{Op: "lsetxattr " + name, Path: dp, Err: err}
		}
	}
	for _, name := range have {
		if !keep[name] {
			if err := unix.Lremovexattr(dp, name); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
				return &os.PathError{Op: "lremovexattr " + name, Path: dp, Err: err}
			}
		}
	}
	return nil
}

func listXattrs(p string) ([]string, error) {
	for {
		n, err := unix.Llistxattr(p, nil)
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil || n == 0 {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(p, name string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		if n == 0 {
			return buf, nil
		}
		n, err = unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// copyFileData copies the regular file sp to the new file dp, keeping holes.
func copyFileData(sp, dp string, size int64) error {
	in, err := os.OpenFile(sp, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if err := copySparse(out, in, size); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", sp, err)
	}
	return out.Close()
}

func copySparse(out, in *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	ifd := int(in.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil { // no SEEK_DATA: copy it all
			data = off
		}
		end, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil || end > size {
			end = size
		}
		if end <= data {
			break
		}
		if err := copyRange(out, in, data, end-data); err != nil {
			return err
		}
		off = end
	}
	return nil
}

// copyRange copies n bytes at off from in to the same offset in out.
func copyRange(out, in *os.File, off, n int64) error {
	ifd, ofd := int(in.Fd()), int(out.Fd())
	for n > 0 {
		roff, woff := off, off
		c, err := unix.CopyFileRange(ifd, &roff, ofd, &woff, int(min(n, 1<<30)), 0)
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) ||
				errors.Is(err, unix.EOPNOTSUPP) {
				w := io.NewOffsetWriter(out, off)
				m, err := io.Copy(w, io.NewSectionReader(in, off, n))
				if err == nil && m != n {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			return err
		}
		if c == 0 {
			return io.ErrUnexpectedEOF // the layer file shrank
		}
		off += int64(c)
		n -= int64(c)
	}
	return nil
}
