package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds the symlinks ReadFile follows (as the kernel's 40).
const maxSymlinks = 40

// ReadFile reads name (e.g. "/etc/passwd") as the merged view of layers
// (bottom first) would show it, without mounting anything. The topmost layer
// that has the file wins; a whiteout of it or of a parent directory, or an
// opaque parent directory, in a higher layer hides the lower ones. Symlinks
// are resolved inside the layered view ("/" and ".." stop at its root),
// never on the host. The error wraps fs.ErrNotExist when the file is absent
// (also when a parent is not a directory: then it wraps ENOTDIR as well).
func ReadFile(layers []string, name string) ([]byte, error) {
	r := resolver{layers: layers}
	e, err := r.resolve(name)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if e.dir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: unix.EISDIR}
	}
	if e.mode != unix.S_IFREG {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("not a regular file")}
	}
	b, err := readBeneath(layers[e.layer], e.rel)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return b, nil
}

// readBeneath reads the regular file rel inside root without following any
// symlink.
func readBeneath(root, rel string) ([]byte, error) {
	var fd int
	dfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	fd, err = unix.Openat2(dfd, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	unix.Close(dfd)
	if errors.Is(err, unix.ENOSYS) { // before Linux 5.6: every component was lstat'ed
		fd, err = unix.Open(filepath.Join(root, rel), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errors.New("not a regular file")
	}
	return io.ReadAll(f)
}

// resolver looks names up in the merged view of layers.
type resolver struct {
	layers []string // bottom first
}

// entry is a name found in the merged view.
type entry struct {
	dir       bool
	dirLayers []int  // a directory: the layers merged into it, top first
	layer     int    // a non-directory: the layer holding it
	rel       string // path in that layer
	mode      uint32 // S_IFMT bits
}

// frame is one directory on the path being resolved.
type frame struct {
	name   string
	layers []int // top first
}

// resolve follows name to the entry it denotes, symlinks included.
func (r *resolver) resolve(name string) (entry, error) {
	all := make([]int, len(r.layers))
	for i := range all {
		all[i] = len(r.layers) - 1 - i
	}
	stack := []frame{{"", all}}
	rel := func() string {
		parts := make([]string, 0, len(stack)-1)
		for _, f := range stack[1:] {
			parts = append(parts, f.name)
		}
		return strings.Join(parts, "/")
	}
	comps := strings.Split(name, "/")
	links := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		top := stack[len(stack)-1]
		e, err := r.lookup(rel(), top.layers, c)
		if err != nil {
			return entry{}, err
		}
		if e.dir {
			stack = append(stack, frame{c, e.dirLayers})
			continue
		}
		if e.mode == unix.S_IFLNK {
			if links++; links > maxSymlinks {
				return entry{}, unix.ELOOP
			}
			target, err := os.Readlink(filepath.Join(r.layers[e.layer], e.rel))
			if err != nil {
				return entry{}, err
			}
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			comps = append(strings.Split(target, "/"), comps...)
			continue
		}
		if hasMore(comps) { // absent too, for callers that only ask that
			return entry{}, fmt.Errorf("%w (%w)", unix.ENOTDIR, fs.ErrNotExist)
		}
		return e, nil
	}
	top := stack[len(stack)-1]
	return entry{dir: true, dirLayers: top.layers, rel: rel()}, nil
}

// hasMore reports whether comps still names something below ("" and "."
// only do not).
func hasMore(comps []string) bool {
	for _, c := range comps {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}

// lookup finds name in the merged directory dir made of layers (top first).
func (r *resolver) lookup(dir string, layers []int, name string) (entry, error) {
	rel := name
	if dir != "" {
		rel = dir + "/" + name
	}
	var dirs []int
	for _, i := range layers {
		p := filepath.Join(r.layers[i], rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				continue
			}
			return entry{}, err
		}
		if isWhiteout(&st) {
			break // hides this name in the layers below
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if len(dirs) == 0 {
				return entry{layer: i, rel: rel, mode: st.Mode & unix.S_IFMT}, nil
			}
			break // a directory above a non-directory hides it
		}
		dirs = append(dirs, i)
		if isOpaque(p) {
			break
		}
	}
	if len(dirs) == 0 {
		return entry{}, fs.ErrNotExist
	}
	return entry{dir: true, dirLayers: dirs, rel: rel}, nil
}
