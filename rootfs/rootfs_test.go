package rootfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

// requireRoot skips a test that needs root, or fails it when CI=true.
func requireRoot(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		msg := "test needs root to mount, chown and make whiteouts (running as euid " + strconv.Itoa(euid) + ")"
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal(msg + " (CI=true: failing instead of skipping)")
		}
		t.Skip(msg)
	}
}

// mountT mounts ms on target and unmounts everything there when the test
// ends, whether it passed or not.
func mountT(t testing.TB, ms []Mount, target string) {
	t.Helper()
	t.Cleanup(func() {
		if err := UnmountAll(target); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := MountAll(ms, target); err != nil {
		t.Fatalf("MountAll: %v", err)
	}
}

// newManager returns a Manager under a fresh containers dir whose leftovers
// are unmounted at the end of the test.
func newManager(t testing.TB, base string) *Manager {
	t.Helper()
	dir := filepath.Join(base, "containers")
	m, err := NewManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mounts, _ := readMountinfo()
		for _, mi := range containerMounts(mounts, m.dir, m.dir) {
			t.Errorf("left mounted: %s (%s)", mi.mountPoint, mi.fstype)
		}
		if err := unmountContainer(context.Background(), m.dir, m.dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return m
}

// node is one entry of a test layer.
type node struct {
	path   string
	kind   byte // 'f' file, 'd' dir, 'l' symlink, 'h' hard link to data, 'w' whiteout, 'c' char dev, 'p' fifo
	data   string
	mode   os.FileMode // permission bits (with setuid etc. as 0o4000…); 0: default
	uid    int
	gid    int
	opaque bool
	xattrs map[string]string
}

var epoch = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// makeLayer writes nodes into dir as an unpacked layer in overlayfs form.
func makeLayer(t testing.TB, dir string, nodes ...node) string {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dir, 0o755))
	var dirs []string
	for i, n := range nodes {
		p := filepath.Join(dir, n.path)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		mode := uint32(n.mode.Perm())
		if n.mode&os.ModeSetuid != 0 {
			mode |= unix.S_ISUID
		}
		if n.mode&os.ModeSetgid != 0 {
			mode |= unix.S_ISGID
		}
		if n.mode&os.ModeSticky != 0 {
			mode |= unix.S_ISVTX
		}
		switch n.kind {
		case 'f':
			if mode == 0 {
				mode = 0o644
			}
			must(os.WriteFile(p, []byte(n.data), 0o600))
		case 'd':
			if mode == 0 {
				mode = 0o755
			}
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				t.Fatal(err)
			}
			dirs = append(dirs, p)
		case 'l':
			must(os.Symlink(n.data, p))
		case 'h':
			must(os.Link(filepath.Join(dir, n.data), p))
			continue
		case 'w':
			must(unix.Mknod(p, unix.S_IFCHR, 0))
		case 'c':
			must(unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		case 'p':
			must(unix.Mkfifo(p, 0o644))
		default:
			t.Fatalf("node kind %q", n.kind)
		}
		must(os.Lchown(p, n.uid, n.gid))
		if n.kind != 'l' && mode != 0 {
			must(unix.Chmod(p, mode))
		}
		if n.opaque {
			must(unix.Lsetxattr(p, "trusted.overlay.opaque", []byte("y"), 0))
		}
		for k, v := range n.xattrs {
			must(unix.Lsetxattr(p, k, []byte(v), 0))
		}
		ts := []unix.Timespec{unix.NsecToTimespec(epoch.Add(time.Duration(i) * time.Hour).UnixNano()),
			unix.NsecToTimespec(epoch.Add(time.Duration(i) * time.Minute).UnixNano())}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	for i := len(dirs) - 1; i >= 0; i-- { // after their contents
		ts := []unix.Timespec{unix.NsecToTimespec(epoch.UnixNano()), unix.NsecToTimespec(epoch.Add(time.Duration(i) * time.Second).UnixNano())}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	return dir
}

// threeLayers makes a small image exercising whiteouts, opaque dirs,
// replacements, owners, modes, xattrs, links and devices.
func threeLayers(t testing.TB, base string) []string {
	l0 := makeLayer(t, filepath.Join(base, "l0"),
		node{path: "etc", kind: 'd'},
		node{path: "etc/hostname", kind: 'f', data: "bottom"},
		node{path: "etc/passwd", kind: 'f', data: "root:x:0:0:root:/root:/bin/sh\n"},
		node{path: "opaque", kind: 'd'},
		node{path: "opaque/old", kind: 'f', data: "old"},
		node{path: "opaque/sub", kind: 'd'},
		node{path: "opaque/sub/older", kind: 'f', data: "older"},
		node{path: "merged", kind: 'd'},
		node{path: "merged/low", kind: 'f', data: "low"},
		node{path: "gone-file", kind: 'f', data: "gone"},
		node{path: "gone-dir", kind: 'd'},
		node{path: "gone-dir/x", kind: 'f', data: "x"},
		node{path: "becomes-dir", kind: 'f', data: "file"},
		node{path: "becomes-file", kind: 'd'},
		node{path: "becomes-file/y", kind: 'f', data: "y"},
		node{path: "bin", kind: 'd'},
		node{path: "bin/tool", kind: 'f', data: "#!/bin/sh\n", mode: 0o755 | os.ModeSetuid, uid: 1000, gid: 1000,
			xattrs: map[string]string{"user.test": "value"}},
		node{path: "hl", kind: 'd'},
		node{path: "hl/a", kind: 'f', data: "same inode"},
		node{path: "hl/b", kind: 'h', data: "hl/a"},
		node{path: "dev", kind: 'd'},
		node{path: "dev/null", kind: 'c'},
		node{path: "dev/fifo", kind: 'p'},
		node{path: "link", kind: 'l', data: "etc/hostname"},
		node{path: "private", kind: 'd', mode: 0o700, uid: 1000, gid: 1000},
		node{path: "tmp", kind: 'd', mode: 0o777 | os.ModeSticky},
		node{path: "sparse", kind: 'f'},
	)
	// A sparse file: 1 MiB hole, then data.
	f, err := os.OpenFile(filepath.Join(l0, "sparse"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("end"), 1<<20)
	f.Close()
	l1 := makeLayer(t, filepath.Join(base, "l1"),
		node{path: "gone-file", kind: 'w'},
		node{path: "gone-dir", kind: 'w'},
		node{path: "opaque", kind: 'd', opaque: true},
		node{path: "opaque/new", kind: 'f', data: "new"},
		node{path: "merged", kind: 'd'},
		node{path: "merged/mid", kind: 'f', data: "mid"},
		node{path: "becomes-file", kind: 'f', data: "now a file"},
		node{path: "becomes-dir", kind: 'd'},
		node{path: "becomes-dir/z", kind: 'f', data: "z"},
		node{path: "etc", kind: 'd'},
		node{path: "etc/hostname", kind: 'f', data: "middle"},
	)
	// overlayfs ignores an opaque mark on a layer's root; so must the copy
	// and ReadFile.
	if err := unix.Setxattr(l1, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	l2 := makeLayer(t, filepath.Join(base, "l2"),
		node{path: "etc", kind: 'd'},
		node{path: "etc/hostname", kind: 'f', data: "top"},
		node{path: "merged", kind: 'd'},
		node{path: "merged/high", kind: 'f', data: "high"},
		node{path: "gone-dir", kind: 'd'},
		node{path: "gone-dir/again", kind: 'f', data: "again"},
		node{path: "private", kind: 'd', mode: 0o750, uid: 2000, gid: 2000},
		node{path: "top-only", kind: 'f', data: "top only"},
	)
	return []string{l0, l1, l2}
}

// wantThree is the merged view of threeLayers: path → content ("" for dirs
// and special files, "->target" for symlinks).
var wantThree = map[string]string{
	"etc": "", "etc/hostname": "top", "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
	"opaque": "", "opaque/new": "new",
	"merged": "", "merged/low": "low", "merged/mid": "mid", "merged/high": "high",
	"gone-dir": "", "gone-dir/again": "again",
	"becomes-dir": "", "becomes-dir/z": "z", "becomes-file": "now a file",
	"bin": "", "bin/tool": "#!/bin/sh\n",
	"hl": "", "hl/a": "same inode", "hl/b": "same inode",
	"dev": "", "dev/null": "", "dev/fifo": "",
	"link":    "->etc/hostname",
	"private": "", "tmp": "", "top-only": "top only",
	"sparse": "\x00\x00\x00 1MiB+end",
}

// checkTree compares the tree at root with want (see wantThree).
func checkTree(t *testing.T, root string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if rel == "sparse" && len(b) == 1<<20+3 && string(b[1<<20:]) == "end" {
				b = []byte("\x00\x00\x00 1MiB+end")
			}
			got[rel] = string(b)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			got[rel] = "->" + l
		default:
			got[rel] = ""
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: missing", k)
		} else if g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected", k)
		}
	}
}

// entryInfo is what the copy and overlay views must agree on.
type entryInfo struct {
	Type     uint32
	Mode     uint32
	UID, GID uint32
	Size     int64
	Rdev     uint64
	Mtime    int64
	Data     string // sha256 of content, or the symlink target
	Xattrs   string
}

func snapshot(t *testing.T, root string) map[string]entryInfo {
	t.Helper()
	out := map[string]entryInfo{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entryInfo{Type: st.Mode & unix.S_IFMT, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev,
			Mtime: st.Mtim.Nano()}
		switch e.Type {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Size = st.Size
			e.Data = fmt.Sprintf("%x", sha256.Sum256(b))
		case unix.S_IFLNK:
			e.Data, _ = os.Readlink(p)
		}
		names, _ := listXattrs(p)
		sort.Strings(names)
		for _, n := range names {
			if strings.HasPrefix(n, "user.") || strings.HasPrefix(n, "trusted.") {
				v, _ := getXattr(p, n)
				e.Xattrs += n + "=" + string(v) + ";"
			}
		}
		if rel == "." {
			e.Mtime = 0 // a writable overlay's root is its fresh upper dir
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOptionStrings(t *testing.T) {
	cases := []struct {
		name         string
		lowers       []string
		upper, work  string
		ro           bool
		want         []string
		wantLowerdir []string
	}{
		{"read-write", []string{"/l/c", "/l/b", "/l/a"}, "/c/1/upper", "/c/1/work", false,
			[]string{"lowerdir=/l/c:/l/b:/l/a", "upperdir=/c/1/upper", "workdir=/c/1/work"}, []string{"/l/c", "/l/b", "/l/a"}},
		{"read-only", []string{"/l/b", "/l/a"}, "", "", true,
			[]string{"lowerdir=/l/b:/l/a", "ro"}, []string{"/l/b", "/l/a"}},
		{"escaped", []string{"/l/a:b", `/l/c,d\e`}, "/u:1", "/w,1", false,
			[]string{`lowerdir=/l/a\:b:/l/c\,d\\e`, `upperdir=/u\:1`, `workdir=/w\,1`}, []string{"/l/a:b", `/l/c,d\e`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := overlayMount(c.lowers, c.upper, c.work, c.ro)
			if m.Type != "overlay" || m.Source != "overlay" || !reflect.DeepEqual(m.Options, c.want) {
				t.Fatalf("got %+v, want options %q", m, c.want)
			}
			l, d := splitLowerdir(strings.TrimPrefix(m.Options[0], "lowerdir="))
			if !reflect.DeepEqual(l, c.wantLowerdir) || len(d) != 0 {
				t.Errorf("splitLowerdir = %q %q, want %q", l, d, c.wantLowerdir)
			}
			if c.upper != "" && unescapeOverlayPath(strings.TrimPrefix(m.Options[1], "upperdir=")) != c.upper {
				t.Errorf("upperdir does not round-trip")
			}
		})
	}

	t.Run("data-only layers", func(t *testing.T) {
		l, d := splitLowerdir(`/a:/b::/c:/d\:e`)
		if !reflect.DeepEqual(l, []string{"/a", "/b"}) || !reflect.DeepEqual(d, []string{"/c", "/d:e"}) {
			t.Errorf("got %q %q", l, d)
		}
	})

	t.Run("flags", func(t *testing.T) {
		for _, c := range []struct {
			opts  []string
			flags uintptr
			attrs uint64
			data  string
			prop  int
		}{
			{[]string{"lowerdir=/a:/b", "ro"}, unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY, "lowerdir=/a:/b", 0},
			{[]string{"rbind", "ro"}, unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY, "", 0},
			{[]string{"ro", "rw", "nosuid", "nodev", "index=off", "rprivate"}, unix.MS_NOSUID | unix.MS_NODEV,
				unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV, "index=off", 1},
			{[]string{"lowerdir=/a", "upperdir=/u", "workdir=/w", "volatile"}, 0, 0, "lowerdir=/a,upperdir=/u,workdir=/w,volatile", 0},
		} {
			p := parseOptions(c.opts)
			if p.flags != c.flags || p.attrs != c.attrs || p.dataString() != c.data || len(p.propagation) != c.prop {
				t.Errorf("%q: flags %#x attrs %#x data %q prop %d; want %#x %#x %q %d", c.opts,
					p.flags, p.attrs, p.dataString(), len(p.propagation), c.flags, c.attrs, c.data, c.prop)
			}
		}
	})

	t.Run("mount API threshold", func(t *testing.T) {
		for _, c := range []struct {
			typ    string
			layers int
			plen   int
			want   bool
		}{
			{"overlay", 3, 60, false},
			{"overlay", 60, 60, false}, // 60*61 = 3660 < 4000
			{"overlay", 64, 120, true},
			{"bind", 64, 120, false},
		} {
			ls := make([]string, c.layers)
			for i := range ls {
				ls[i] = "/" + strings.Repeat("x", c.plen-5) + fmt.Sprintf("%04d", i)
			}
			m := overlayMount(ls, "/u", "/w", false)
			m.Type = c.typ
			if got := needsMountAPI(m, parseOptions(m.Options)); got != c.want {
				t.Errorf("%s with %d layers of %d bytes: needsMountAPI = %v", c.typ, c.layers, c.plen, got)
			}
		}
	})

	t.Run("kernel too old", func(t *testing.T) {
		for _, c := range []struct {
			what string
			err  error
			log  string
			want bool
		}{
			{"lowerdir+=/a", unix.EINVAL, "e overlay: Unknown parameter 'lowerdir+'", true},
			{"lowerdir+=/a", unix.EINVAL, "", true},
			{"lowerdir+=/a", unix.EINVAL, "e overlayfs: failed to clone lowerpath", false},
			{"lowerdir+=/a", unix.ENOENT, "", false},
			{"create", unix.EINVAL, "e overlayfs: unrecognized mount option \"lowerdir+=/a\"", true},
			{"create", unix.EINVAL, "e overlayfs: missing 'lowerdir'", false},
		} {
			if got := tooOld(c.what, c.err, c.log); got != c.want {
				t.Errorf("tooOld(%q, %v, %q) = %v", c.what, c.err, c.log, got)
			}
		}
	})

	t.Run("mountinfo", func(t *testing.T) {
		line := `612 30 0:95 / /run/a\040b rw,relatime shared:300 - overlay overlay rw,lowerdir=/l/x:/l/y\134:z,upperdir=/c/i\134\054d/upper,workdir=/c/i/work,lowerdir+=/l/p:q\054r`
		mi, err := parseMountinfoLine(line)
		if err != nil {
			t.Fatal(err)
		}
		if mi.id != 612 || mi.parent != 30 || mi.majmin != "0:95" || mi.mountPoint != "/run/a b" || mi.fstype != "overlay" {
			t.Errorf("parsed %+v", mi)
		}
		if got := overlayDirs(mi); !reflect.DeepEqual(got, []string{"/l/x", "/l/y:z", "/c/i,d/upper", "/c/i/work", "/l/p:q,r"}) {
			t.Errorf("overlayDirs = %q", got)
		}
		if _, err := parseMountinfoLine("1 2 3"); err == nil {
			t.Error("short line parsed")
		}
	})

}

// newIDs hands out container ids as the daemon makes them (names.NewID),
// one per name: tests refer to their containers by name.
func newIDs() func(name string) string {
	ids := map[string]string{}
	return func(name string) string {
		if _, ok := ids[name]; !ok {
			ids[name] = names.NewID()
		}
		return ids[name]
	}
}

func TestPrepareOptions(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	m := newManager(t, base)
	layers := threeLayers(t, base)
	ctx := context.Background()
	id := newIDs()
	cdir := func(name string) string { return filepath.Join(m.dir, id(name)) }
	for _, c := range []struct {
		name   string
		layers []string
		o      Options
		want   Mount
	}{
		{"rw", layers, Options{}, Mount{"overlay", "overlay", []string{
			"lowerdir=" + layers[2] + ":" + layers[1] + ":" + layers[0],
			"upperdir=" + cdir("rw") + "/upper", "workdir=" + cdir("rw") + "/work"}}},
		{"ro", layers, Options{ReadOnly: true}, Mount{"overlay", "overlay", []string{
			"lowerdir=" + layers[2] + ":" + layers[1] + ":" + layers[0], "ro"}}},
		{"ro1", layers[:1], Options{ReadOnly: true}, Mount{"overlay", "overlay", []string{
			"lowerdir=" + layers[0] + ":" + cdir("ro1") + "/empty", "ro"}}},
		{"rw1", layers[:1], Options{}, Mount{"overlay", "overlay", []string{
			"lowerdir=" + layers[0], "upperdir=" + cdir("rw1") + "/upper", "workdir=" + cdir("rw1") + "/work"}}},
		{"scratch", nil, Options{}, Mount{"overlay", "overlay", []string{
			"lowerdir=" + cdir("scratch") + "/empty", "upperdir=" + cdir("scratch") + "/upper", "workdir=" + cdir("scratch") + "/work"}}},
		{"scratch-ro", nil, Options{ReadOnly: true}, Mount{"bind", cdir("scratch-ro") + "/empty", []string{"rbind", "ro"}}},
		{"copy", layers, Options{Copy: true}, Mount{"bind", cdir("copy") + "/rootfs", []string{"rbind"}}},
		{"copy-ro", layers, Options{Copy: true, ReadOnly: true}, Mount{"bind", cdir("copy-ro") + "/rootfs", []string{"rbind", "ro"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ms, err := m.Prepare(ctx, id(c.name), c.layers, c.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != 1 || !reflect.DeepEqual(ms[0], c.want) {
				t.Fatalf("Prepare = %+v\nwant      %+v", ms, c.want)
			}
			target := t.TempDir()
			mountT(t, ms, target)
			if err := UnmountAll(target); err != nil {
				t.Fatal(err)
			}
			if err := m.Remove(ctx, id(c.name)); err != nil {
				t.Fatal(err)
			}
		})
	}
	if m.Driver() != DriverOverlay {
		t.Errorf("Driver() = %q on %s (%v)", m.Driver(), base, m.OverlayError())
	}

	t.Run("escaped paths", func(t *testing.T) {
		odd := filepath.Join(base, `odd:dir,with\chars`)
		m := newManager(t, odd)
		ls := threeLayers(t, odd)
		for _, o := range []Options{{}, {ReadOnly: true}} {
			ms, err := m.Prepare(ctx, id("odd"), ls, o)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ms[0].Options[0], `odd\:dir\,with\\chars`) {
				t.Errorf("not escaped: %q", ms[0].Options[0])
			}
			target := t.TempDir()
			mountT(t, ms, target)
			checkTree(t, target, wantThree)
			if err := UnmountAll(target); err != nil {
				t.Fatal(err)
			}
			if err := m.Remove(ctx, id("odd")); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		if _, err := m.Prepare(ctx, id("dup"), layers, Options{}); err != nil {
			t.Fatal(err)
		}
		defer m.Remove(ctx, id("dup"))
		if _, err := m.Prepare(ctx, id("dup"), layers, Options{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
			t.Errorf("second Prepare: %v", err)
		}
		// Only ids as the daemon makes them: nothing that leaves the
		// containers directory, and no names.
		for _, bad := range []string{"", ".", "..", "../x", "a/b", "-x", ".hidden", "web-1", strings.ToUpper(id("dup"))} {
			if _, err := m.Prepare(ctx, bad, layers, Options{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Prepare(%q): %v, want ErrInvalidArgument", bad, err)
			}
			if err := m.Remove(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Remove(%q): %v, want ErrInvalidArgument", bad, err)
			}
			if _, err := m.Usage(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Usage(%q): %v, want ErrInvalidArgument", bad, err)
			}
		}
		_, err := m.Prepare(ctx, id("missing"), []string{filepath.Join(base, "nope")}, Options{})
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("missing layer: %v", err)
		}
		if _, err := os.Stat(cdir("missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("failed Prepare left %s: %v", cdir("missing"), err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := m.Prepare(cctx, id("cancelled"), layers, Options{Copy: true}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Prepare: %v", err)
		}
	})
}

func TestOverlayMergedView(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	m := newManager(t, base)
	layers := threeLayers(t, base)
	id := names.NewID()
	ms, err := m.Prepare(context.Background(), id, layers, Options{})
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(base, "mnt")
	os.Mkdir(target, 0o755)
	mountT(t, ms, target)
	checkTree(t, target, wantThree)

	// Writes land in the upper dir; deleting a lower file makes a whiteout.
	if err := os.WriteFile(filepath.Join(target, "new"), []byte("written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(target, "merged/low")); err != nil {
		t.Fatal(err)
	}
	upper := filepath.Join(m.dir, id, "upper")
	if b, err := os.ReadFile(filepath.Join(upper, "new")); err != nil || string(b) != "written" {
		t.Errorf("upper/new: %q %v", b, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "merged/low"), &st); err != nil || !isWhiteout(&st) {
		t.Errorf("no whiteout for merged/low in upper: %v", err)
	}
	// The root keeps the top layer's owner and mode.
	var rst, lst unix.Stat_t
	unix.Stat(target, &rst)
	unix.Stat(layers[2], &lst)
	if rst.Mode != lst.Mode || rst.Uid != lst.Uid {
		t.Errorf("root mode %o uid %d, top layer root %o uid %d", rst.Mode, rst.Uid, lst.Mode, lst.Uid)
	}
	if err := UnmountAll(target); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

func TestReadOnly(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	m := newManager(t, base)
	layers := threeLayers(t, base)
	for _, c := range []struct {
		name   string
		layers []string
		o      Options
	}{
		{"overlay", layers, Options{ReadOnly: true}},
		{"overlay-one-layer", layers[:1], Options{ReadOnly: true}},
		{"copy", layers, Options{ReadOnly: true, Copy: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := names.NewID()
			ms, err := m.Prepare(context.Background(), id, c.layers, c.o)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Remove(context.Background(), id)
			target := t.TempDir()
			mountT(t, ms, target)
			if b, err := os.ReadFile(filepath.Join(target, "etc/passwd")); err != nil || len(b) == 0 {
				t.Errorf("read etc/passwd: %v", err)
			}
			err = os.WriteFile(filepath.Join(target, "new"), []byte("x"), 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Errorf("write: %v, want EROFS", err)
			}
			if err := os.Remove(filepath.Join(target, "etc/passwd")); !errors.Is(err, unix.EROFS) {
				t.Errorf("remove: %v, want EROFS", err)
			}
		})
	}
}

func TestManyLayers(t *testing.T) {
	requireRoot(t)
	for _, c := range []struct {
		name string
		base func(tmp string) string
	}{
		// Each path fits fsconfig's 255 bytes: one "lowerdir+" string each.
		{"long-paths", func(tmp string) string {
			return filepath.Join(tmp, strings.Repeat("a-long-directory-name-", 5))
		}},
		// Characters overlayfs splits on, escaped in the option strings.
		{"odd-characters", func(tmp string) string {
			return filepath.Join(tmp, strings.Repeat("x", 40)+`:with,odd\chars`)
		}},
		// Paths over 255 bytes: passed to fsconfig as open directories.
		{"very-long-paths", func(tmp string) string {
			return filepath.Join(tmp, strings.Repeat("b", 200), strings.Repeat("an-even-longer-name-", 6))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := c.base(t.TempDir())
			const n = 64
			layers := make([]string, n)
			for i := range layers {
				nodes := []node{{path: "version", kind: 'f', data: strconv.Itoa(i)},
					{path: fmt.Sprintf("layer-%02d", i), kind: 'f', data: strconv.Itoa(i)}}
				switch i {
				case 0:
					nodes = append(nodes, node{path: "bottom", kind: 'f', data: "from the bottom"},
						node{path: "hidden", kind: 'f', data: "hidden"})
				case 30:
					nodes = append(nodes, node{path: "hidden", kind: 'w'})
				case n - 1:
					nodes = append(nodes, node{path: "top", kind: 'f', data: "from the top"})
				}
				h := sha256.Sum256([]byte{byte(i)})
				layers[i] = makeLayer(t, filepath.Join(base, "layers", "sha256", fmt.Sprintf("%x", h)), nodes...)
			}
			m := newManager(t, base)
			for _, ro := range []bool{false, true} {
				name := "rw"
				if ro {
					name = "ro"
				}
				id := names.NewID()
				t.Run(name, func(t *testing.T) {
					ms, err := m.Prepare(context.Background(), id, layers, Options{ReadOnly: ro})
					if err != nil {
						t.Fatal(err)
					}
					defer m.Remove(context.Background(), id)
					if l := len(parseOptions(ms[0].Options).dataString()); l <= 4096 {
						t.Fatalf("option data is only %d bytes", l)
					} else {
						t.Logf("option data: %d bytes, layer path %d bytes", l, len(layers[0]))
					}
					target := filepath.Join(base, "mnt-"+id)
					os.Mkdir(target, 0o755)
					mountT(t, ms, target)
					for name, want := range map[string]string{"bottom": "from the bottom", "top": "from the top",
						"version": strconv.Itoa(n - 1), "layer-00": "0", "layer-31": "31", "layer-63": "63"} {
						if b, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(b) != want {
							t.Errorf("%s: %q %v, want %q", name, b, err, want)
						}
					}
					if _, err := os.Lstat(filepath.Join(target, "hidden")); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("whiteout in layer 30 did not hide a file of layer 0: %v", err)
					}
					err = os.WriteFile(filepath.Join(target, "written"), []byte("x"), 0o644)
					if ro && !errors.Is(err, unix.EROFS) {
						t.Errorf("write to read-only overlay: %v", err)
					}
					if !ro && err != nil {
						t.Errorf("write: %v", err)
					}
					mi := mountAt(t, target)
					if mi == nil || mi.fstype != "overlay" {
						t.Fatalf("no overlay on %s in mountinfo", target)
					}
					if dirs := overlayDirs(*mi); !anyWithin(dirs, layers[0]) || !anyWithin(dirs, layers[n-1]) {
						t.Errorf("mountinfo lacks the layers: %.300q…", mi.superOpts)
					}
					if !ro && !anyWithin(overlayDirs(*mi), filepath.Join(m.dir, id)) {
						t.Errorf("mountinfo lacks the upper dir")
					}
					if err := UnmountAll(target); err != nil {
						t.Fatal(err)
					}
					if mountAt(t, target) != nil {
						t.Errorf("%s still mounted", target)
					}
				})
			}
		})
	}
}

// mountAt returns the topmost mount on p, or nil.
func mountAt(t testing.TB, p string) *mountInfo {
	t.Helper()
	ms, err := readMountinfo()
	if err != nil {
		t.Fatal(err)
	}
	var found *mountInfo
	for i := range ms {
		if ms[i].mountPoint == p {
			found = &ms[i]
		}
	}
	return found
}

func TestCopyMatchesOverlay(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	m := newManager(t, base)
	layers := threeLayers(t, base)
	views := map[string]map[string]entryInfo{}
	id := newIDs()
	for _, c := range []struct {
		name string
		o    Options
	}{{"overlay", Options{}}, {"overlay-ro", Options{ReadOnly: true}}, {"copy", Options{Copy: true}}} {
		ms, err := m.Prepare(context.Background(), id(c.name), layers, c.o)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(base, "mnt-"+c.name)
		os.Mkdir(target, 0o755)
		mountT(t, ms, target)
		checkTree(t, target, wantThree)
		views[c.name] = snapshot(t, target)
	}
	for _, id := range []string{"overlay", "overlay-ro"} {
		if !reflect.DeepEqual(views[id], views["copy"]) {
			for k, v := range views[id] {
				if c, ok := views["copy"][k]; !ok {
					t.Errorf("%s: %s missing in the copy", id, k)
				} else if c != v {
					t.Errorf("%s: %s differs:\noverlay %+v\ncopy    %+v", id, k, v, c)
				}
			}
			for k := range views["copy"] {
				if _, ok := views[id][k]; !ok {
					t.Errorf("%s: %s only in the copy", id, k)
				}
			}
		}
	}
	// Hard links of a layer stay links; the sparse file stays sparse.
	copyRoot := filepath.Join(m.dir, id("copy"), "rootfs")
	var a, b, sp unix.Stat_t
	unix.Lstat(filepath.Join(copyRoot, "hl/a"), &a)
	unix.Lstat(filepath.Join(copyRoot, "hl/b"), &b)
	if a.Ino != b.Ino {
		t.Errorf("hl/a and hl/b are not one inode in the copy")
	}
	unix.Lstat(filepath.Join(copyRoot, "sparse"), &sp)
	if sp.Blocks*512 >= 1<<20 {
		t.Errorf("sparse file takes %d bytes in the copy", sp.Blocks*512)
	}
	// No trusted.overlay.* leaked into the copy.
	if v, err := getXattr(filepath.Join(copyRoot, "opaque"), "trusted.overlay.opaque"); err == nil {
		t.Errorf("copy kept trusted.overlay.opaque=%q", v)
	}
}

func TestAutomaticCopyFallback(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	layers := threeLayers(t, base)
	// A Manager whose directory lies on an overlay mount: an overlay upper
	// dir cannot be on overlayfs.
	host := filepath.Join(base, "host")
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		os.MkdirAll(filepath.Join(host, d), 0o755)
	}
	mountT(t, []Mount{overlayMount([]string{filepath.Join(host, "lower")}, filepath.Join(host, "upper"),
		filepath.Join(host, "work"), false)}, filepath.Join(host, "merged"))
	m := newManager(t, filepath.Join(host, "merged"))
	if m.Supported() {
		t.Skipf("this kernel accepts an overlay upper dir on overlayfs; cannot exercise the fallback")
	}
	if m.Driver() != DriverCopy {
		t.Errorf("Driver() = %q", m.Driver())
	}
	t.Logf("overlay unsupported: %v", m.OverlayError())
	id := names.NewID()
	ms, err := m.Prepare(context.Background(), id, layers, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Type != "bind" {
		t.Fatalf("Prepare = %+v, want a bind of a copy", ms)
	}
	target := t.TempDir()
	mountT(t, ms, target)
	checkTree(t, target, wantThree)
	if err := UnmountAll(target); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(m.dir, "*")); len(left) > 0 {
		t.Errorf("left behind: %q", left)
	}
}

func TestRemoveAfterCrash(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	layers := threeLayers(t, base)
	for _, copyMode := range []bool{false, true} {
		name := map[bool]string{false: "overlay", true: "copy"}[copyMode]
		t.Run(name, func(t *testing.T) {
			m := newManager(t, filepath.Join(base, name))
			id := names.NewID()
			ms, err := m.Prepare(context.Background(), id, layers, Options{Copy: copyMode})
			if err != nil {
				t.Fatal(err)
			}
			cdir := filepath.Join(m.dir, id)
			// Mounted inside the container dir (twice, stacked, plus a
			// submount), and in a bundle elsewhere, as a crashed supervisor
			// and shim could leave them.
			inside := filepath.Join(cdir, "mnt")
			os.Mkdir(inside, 0o755)
			mountT(t, ms, inside)
			mountT(t, ms, inside)
			mountT(t, []Mount{{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}}}, filepath.Join(inside, "tmp"))
			outside := filepath.Join(base, name+"-bundle-rootfs")
			os.Mkdir(outside, 0o755)
			mountT(t, ms, outside)
			// Keep the inner mount busy.
			busy, err := os.Open(filepath.Join(inside, "etc/passwd"))
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()

			m2, err := NewManager(m.dir) // the restarted supervisor, with no record
			if err != nil {
				t.Fatal(err)
			}
			if err := m2.Remove(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			mounts, err := readMountinfo()
			if err != nil {
				t.Fatal(err)
			}
			for _, mi := range mounts {
				if within(mi.mountPoint, cdir) || mi.mountPoint == outside || anyWithin(overlayDirs(mi), cdir) {
					t.Errorf("still mounted: %s %s %q", mi.mountPoint, mi.fstype, mi.superOpts)
				}
			}
			if _, err := os.Lstat(cdir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s still there: %v", cdir, err)
			}
			// The layers are untouched.
			if b, err := ReadFile(layers, "/etc/hostname"); err != nil || string(b) != "top" {
				t.Errorf("layers damaged: %q %v", b, err)
			}
			// Idempotent.
			if err := m2.Remove(context.Background(), id); err != nil {
				t.Errorf("second Remove: %v", err)
			}
		})
	}

	t.Run("crash during Prepare", func(t *testing.T) {
		m := newManager(t, filepath.Join(base, "partial"))
		id := names.NewID()
		cdir := filepath.Join(m.dir, id)
		os.MkdirAll(filepath.Join(cdir, "upper", "half"), 0o755)
		os.WriteFile(filepath.Join(cdir, id+"-json.log"), []byte("{}\n"), 0o640)
		if err := m.Remove(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(cdir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there: %v", cdir, err)
		}
	})
}

func TestUsage(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	m := newManager(t, base)
	layers := threeLayers(t, base)
	ctx := context.Background()
	for _, copyMode := range []bool{false, true} {
		name, id := map[bool]string{false: "overlay", true: "copy"}[copyMode], names.NewID()
		t.Run(name, func(t *testing.T) {
			ms, err := m.Prepare(ctx, id, layers, Options{Copy: copyMode})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Remove(ctx, id)
			target := t.TempDir()
			mountT(t, ms, target)
			before, err := m.Usage(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !copyMode && before != 0 {
				t.Errorf("fresh overlay container uses %d bytes", before)
			}
			data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
			f, err := os.Create(filepath.Join(target, "tmp", "big"))
			if err != nil {
				t.Fatal(err)
			}
			f.Write(data)
			f.Sync()
			f.Close()
			// A hard link is counted once.
			if err := os.Link(filepath.Join(target, "tmp", "big"), filepath.Join(target, "big-link")); err != nil {
				t.Fatal(err)
			}
			after, err := m.Usage(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("usage %d → %d bytes", before, after)
			if after < before+int64(len(data)) || after > before+2*int64(len(data)) {
				t.Errorf("usage went from %d to %d after writing %d bytes", before, after, len(data))
			}
		})
	}
	if _, err := m.Usage(ctx, names.NewID()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Usage of an unknown container: %v", err)
	}
}

func TestReadFile(t *testing.T) {
	requireRoot(t) // whiteouts and trusted.* xattrs
	base := t.TempDir()
	l0 := makeLayer(t, filepath.Join(base, "layers", "l0"),
		node{path: "private/etc/passwd", kind: 'f', data: "root:x:0:0\n"},
		node{path: "private/etc/group", kind: 'f', data: "root:x:0:\n"},
		node{path: "etc", kind: 'l', data: "private/etc"},
		node{path: "abs-etc", kind: 'l', data: "/private/etc"},
		node{path: "host-file", kind: 'f', data: "the layers' own host-file"},
		node{path: "opq/old", kind: 'f', data: "old"},
		node{path: "gone/file", kind: 'f', data: "gone"},
		node{path: "dir-then-file/x", kind: 'f', data: "x"},
		node{path: "dev/null", kind: 'c'},
		node{path: "loop1", kind: 'l', data: "loop2"},
		node{path: "loop2", kind: 'l', data: "loop1"},
	)
	l1 := makeLayer(t, filepath.Join(base, "layers", "l1"),
		node{path: "gone", kind: 'w'},
		node{path: "opq", kind: 'd', opaque: true},
		node{path: "opq/new", kind: 'f', data: "new"},
		node{path: "dir-then-file", kind: 'f', data: "a file now"},
		node{path: "private/etc/group", kind: 'f', data: "root:x:0:\nwheel:x:10:\n"},
		node{path: "up", kind: 'l', data: "../../../private/./etc/../etc/group"},
	)
	// The hostile layer: etc/passwd (through the etc symlink) points far up,
	// where the host has a file of the same name.
	l2 := makeLayer(t, filepath.Join(base, "layers", "l2"),
		node{path: "private/etc/passwd", kind: 'l', data: "../../../../host-file"},
		node{path: "private/etc/resolv.conf", kind: 'l', data: "../../../../../../../../../../etc/hosts"},
		node{path: "private/etc/loop", kind: 'l', data: "../../../../../../../../../../etc/loop"},
		node{path: "private/etc/abs", kind: 'l', data: "/../../../../../../../host-only"},
	)
	for _, p := range []string{base, filepath.Join(base, "layers"), filepath.Dir(base)} {
		os.WriteFile(filepath.Join(p, "host-file"), []byte("HOST SECRET"), 0o644)
		os.WriteFile(filepath.Join(p, "host-only"), []byte("HOST SECRET"), 0o644)
	}
	good := []string{l0, l1}
	hostile := []string{l0, l1, l2}
	for _, c := range []struct {
		layers []string
		path   string
		want   string
		err    error
	}{
		{good, "/etc/passwd", "root:x:0:0\n", nil},
		{good, "etc/group", "root:x:0:\nwheel:x:10:\n", nil},
		{good, "/abs-etc/group", "root:x:0:\nwheel:x:10:\n", nil},
		{good, "/private/../etc/./passwd", "root:x:0:0\n", nil},
		{good, "/up", "root:x:0:\nwheel:x:10:\n", nil},
		{good, "/gone/file", "", fs.ErrNotExist},
		{good, "/gone", "", fs.ErrNotExist},
		{good, "/opq/old", "", fs.ErrNotExist},
		{good, "/opq/new", "new", nil},
		{good, "/dir-then-file", "a file now", nil},
		{good, "/dir-then-file/x", "", unix.ENOTDIR},
		{good, "/dir-then-file/x", "", fs.ErrNotExist},
		{good, "/missing", "", fs.ErrNotExist},
		{good, "/etc", "", unix.EISDIR},
		{good, "/dev/null", "", nil}, // error: not a regular file
		{good, "/loop1", "", unix.ELOOP},
		{[]string{l0}, "/gone/file", "gone", nil},
		{[]string{l0}, "/etc/group", "root:x:0:\n", nil},
		{nil, "/etc/passwd", "", fs.ErrNotExist},
		// ../../../../host-file from /private/etc stops at the layered root.
		{hostile, "/etc/passwd", "the layers' own host-file", nil},
		{hostile, "/etc/resolv.conf", "", fs.ErrNotExist},
		{hostile, "/etc/loop", "", unix.ELOOP},
		{hostile, "/etc/abs", "", fs.ErrNotExist},
		{hostile, "/etc/group", "root:x:0:\nwheel:x:10:\n", nil},
	} {
		b, err := ReadFile(c.layers, c.path)
		switch {
		case c.path == "/dev/null":
			if err == nil {
				t.Errorf("ReadFile(%s) of a device succeeded", c.path)
			}
		case c.err != nil:
			if !errors.Is(err, c.err) {
				t.Errorf("ReadFile(%d layers, %s) = %q, %v; want %v", len(c.layers), c.path, b, err, c.err)
			}
		case err != nil || string(b) != c.want:
			t.Errorf("ReadFile(%d layers, %s) = %q, %v; want %q", len(c.layers), c.path, b, err, c.want)
		}
		if bytes.Contains(b, []byte("HOST SECRET")) {
			t.Errorf("ReadFile(%s) read a host file", c.path)
		}
	}
	// Without the layers' own host-file, the hostile link leads nowhere.
	os.Remove(filepath.Join(l0, "host-file"))
	if b, err := ReadFile(hostile, "/etc/passwd"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("hostile /etc/passwd = %q, %v; want not found", b, err)
	}
}

// TestReadFileMatchesOverlay reads every file of the mounted overlay through
// ReadFile too.
func TestReadFileMatchesOverlay(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	m := newManager(t, base)
	layers := threeLayers(t, base)
	ms, err := m.Prepare(context.Background(), names.NewID(), layers, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	mountT(t, ms, target)
	n := 0
	filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel := strings.TrimPrefix(p, target)
		want, _ := os.ReadFile(p)
		got, err := ReadFile(layers, rel)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ReadFile(%s) = %.40q, %v; mounted view has %.40q", rel, got, err, want)
		}
		n++
		return nil
	})
	if n < 10 {
		t.Errorf("only %d files compared", n)
	}
	for _, p := range []string{"/gone-file", "/gone-dir/x", "/opaque/old", "/opaque/sub/older", "/becomes-file/y"} {
		if _, err := ReadFile(layers, p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%s): %v, want not found", p, err)
		}
	}
	if b, err := ReadFile(layers, "/link"); err != nil || string(b) != "top" {
		t.Errorf("ReadFile(/link) = %q, %v", b, err)
	}
}
