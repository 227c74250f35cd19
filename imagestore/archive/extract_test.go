package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/testutil"
)

type E = testutil.Entry

// sandbox is a directory holding the layer dir and a sentinel file beside it,
// so a test can see anything written outside the layer.
type sandbox struct {
	outer, layer, sentinel string
}

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	outer := t.TempDir()
	s := sandbox{outer: outer, layer: filepath.Join(outer, "layer"), sentinel: filepath.Join(outer, "outside")}
	if err := os.Mkdir(s.layer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.sentinel, []byte("sentinel"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkContained fails when anything beside the layer dir was created,
// removed or changed.
func (s sandbox) checkContained(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir(s.outer)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 2 || names[0] != "layer" || names[1] != "outside" {
		t.Fatalf("extraction escaped the layer: %v beside it", names)
	}
	fi, err := os.Lstat(s.sentinel)
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("sentinel replaced: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(s.sentinel); string(b) != "sentinel" {
		t.Fatalf("sentinel overwritten: %q", b)
	}
}

func extract(t testing.TB, dir string, entries ...E) error {
	t.Helper()
	_, err := Extract(context.Background(), dir, bytes.NewReader(testutil.Tar(t, entries...)))
	return err
}

func TestExtractPreservesEverything(t *testing.T) {
	testutil.RequireRoot(t)
	s := newSandbox(t)
	mt := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	err := extract(t, s.layer,
		E{Name: "./", Type: tar.TypeDir, Mode: 0o755, ModTime: mt},
		E{Name: "bin/", Type: tar.TypeDir, Mode: 0o711, UID: 3, GID: 4, ModTime: mt},
		E{Name: "bin/suid", Mode: 0o4755, Content: []byte("suid"), ModTime: mt},
		E{Name: "bin/sgid", Mode: 0o2711, UID: 10, GID: 20, Content: []byte("x"), ModTime: mt},
		E{Name: "etc/owned", Mode: 0o640, UID: 1234, GID: 5678, Content: []byte("owned"), ModTime: mt},
		E{Name: "etc/link", Type: tar.TypeLink, Linkname: "etc/owned"},
		E{Name: "etc/sym", Type: tar.TypeSymlink, Linkname: "/does/not/exist", UID: 7, GID: 8, ModTime: mt},
		E{Name: "dev/null2", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		E{Name: "dev/blk", Type: tar.TypeBlock, Mode: 0o600, Devmajor: 7, Devminor: 0},
		E{Name: "dev/fifo", Type: tar.TypeFifo, Mode: 0o620},
		E{Name: "x/file", Content: []byte("x"), Xattrs: map[string]string{"user.condenser": "test", "trusted.overlay.opaque": "y"}},
		E{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		E{Name: "wh/.wh.gone"},
		E{Name: "opq/.wh..wh..opq"},
		E{Name: "opq/new", Content: []byte("new")},
		E{Name: "aufs/.wh..wh.plnk", Content: []byte("ignored")},
	)
	if err != nil {
		t.Fatal(err)
	}
	s.checkContained(t)
	p := func(rel string) string { return filepath.Join(s.layer, rel) }
	st := func(rel string) unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(p(rel), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	tests := []struct {
		rel       string
		mode      uint32 // full st_mode
		uid, gid  uint32
		rdev      uint64
		checkTime bool
	}{
		{"", unix.S_IFDIR | 0o755, 0, 0, 0, true},
		{"bin", unix.S_IFDIR | 0o711, 3, 4, 0, true},
		{"bin/suid", unix.S_IFREG | 0o4755, 0, 0, 0, true},
		{"bin/sgid", unix.S_IFREG | 0o2711, 10, 20, 0, true},
		{"etc/owned", unix.S_IFREG | 0o640, 1234, 5678, 0, true},
		{"etc/sym", unix.S_IFLNK | 0o777, 7, 8, 0, true},
		{"etc", unix.S_IFDIR | 0o755, 0, 0, 0, false}, // implicit parent
		{"dev/null2", unix.S_IFCHR | 0o666, 0, 0, unix.Mkdev(1, 3), false},
		{"dev/blk", unix.S_IFBLK | 0o600, 0, 0, unix.Mkdev(7, 0), false},
		{"dev/fifo", unix.S_IFIFO | 0o620, 0, 0, 0, false},
		{"tmp", unix.S_IFDIR | 0o1777, 0, 0, 0, false},
		{"wh/gone", unix.S_IFCHR, 0, 0, 0, false},
	}
	for _, tc := range tests {
		got := st(tc.rel)
		if got.Mode != tc.mode || got.Uid != tc.uid || got.Gid != tc.gid || got.Rdev != tc.rdev {
			t.Errorf("%q: mode %o uid %d gid %d rdev %d; want %o %d %d %d", tc.rel, got.Mode, got.Uid, got.Gid, got.Rdev, tc.mode, tc.uid, tc.gid, tc.rdev)
		}
		if tc.checkTime && got.Mtim.Sec != mt.Unix() {
			t.Errorf("%q: mtime %d, want %d", tc.rel, got.Mtim.Sec, mt.Unix())
		}
	}
	if a, b := st("etc/owned"), st("etc/link"); a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard link: inodes %d/%d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	if target, _ := os.Readlink(p("etc/sym")); target != "/does/not/exist" {
		t.Errorf("symlink target %q", target)
	}
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(p("x/file"), "user.condenser", buf); err != nil || string(buf[:n]) != "test" {
		t.Errorf("user xattr: %q %v", buf[:max(n, 0)], err)
	}
	if _, err := unix.Lgetxattr(p("x/file"), "trusted.overlay.opaque", buf); err == nil {
		t.Error("trusted.overlay xattr from the layer was applied")
	}
	if n, err := unix.Lgetxattr(p("opq"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque dir xattr: %v", err)
	}
	if _, err := os.Lstat(p("aufs/.wh..wh.plnk")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("aufs metadata extracted: %v", err)
	}
	if _, err := os.Lstat(p("wh/.wh.gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("whiteout file kept as is: %v", err)
	}
}

func TestExtractReplaces(t *testing.T) {
	testutil.RequireRoot(t)
	s := newSandbox(t)
	err := extract(t, s.layer,
		E{Name: "a/", Type: tar.TypeDir},
		E{Name: "a/child", Content: []byte("c")},
		E{Name: "a", Content: []byte("now a file")}, // dir replaced by a file
		E{Name: "b", Content: []byte("file")},
		E{Name: "b/", Type: tar.TypeDir, Mode: 0o700}, // file replaced by a dir
		E{Name: "c", Type: tar.TypeSymlink, Linkname: "../outside"},
		E{Name: "c", Content: []byte("replaces the symlink, not its target")},
		E{Name: "d", Content: []byte("one")},
		E{Name: "d", Content: []byte("two")},
		E{Name: "e/", Type: tar.TypeDir, Mode: 0o700},
		E{Name: "e/", Type: tar.TypeDir, Mode: 0o750}, // dirs merge; last metadata wins
	)
	if err != nil {
		t.Fatal(err)
	}
	s.checkContained(t)
	for rel, want := range map[string]string{"a": "now a file", "c": "replaces the symlink, not its target", "d": "two"} {
		if b, err := os.ReadFile(filepath.Join(s.layer, rel)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", rel, b, err, want)
		}
	}
	for rel, want := range map[string]os.FileMode{"b": os.ModeDir | 0o700, "e": os.ModeDir | 0o750} {
		if fi, err := os.Lstat(filepath.Join(s.layer, rel)); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v %v, want %v", rel, fi.Mode(), err, want)
		}
	}
}

// hostile is the corpus of layers that must fail without touching anything
// outside the layer directory. The fuzzer starts from it too.
var hostile = []struct {
	name    string
	entries []E
}{
	{"dotdot", []E{{Name: "../outside", Content: []byte("pwned")}}},
	{"dotdot inside", []E{{Name: "a/../../outside", Content: []byte("pwned")}}},
	{"absolute", []E{{Name: "/etc/condenser-pwned", Content: []byte("pwned")}}},
	{"file through symlink to parent", []E{
		{Name: "s", Type: tar.TypeSymlink, Linkname: ".."},
		{Name: "s/outside", Content: []byte("pwned")}}},
	{"file through absolute symlink", []E{
		{Name: "s", Type: tar.TypeSymlink, Linkname: "/tmp"},
		{Name: "s/condenser-pwned", Content: []byte("pwned")}}},
	{"dir through symlink", []E{
		{Name: "s", Type: tar.TypeSymlink, Linkname: ".."},
		{Name: "s/newdir/", Type: tar.TypeDir}}},
	{"symlink chain", []E{
		{Name: "a", Type: tar.TypeSymlink, Linkname: "b"},
		{Name: "b", Type: tar.TypeSymlink, Linkname: "c/../.."},
		{Name: "c/", Type: tar.TypeDir},
		{Name: "a/outside", Content: []byte("pwned")}}},
	{"nested symlink in path", []E{
		{Name: "d/", Type: tar.TypeDir},
		{Name: "d/s", Type: tar.TypeSymlink, Linkname: "../.."},
		{Name: "d/s/outside", Content: []byte("pwned")}}},
	{"hard link outside", []E{{Name: "h", Type: tar.TypeLink, Linkname: "../outside"}}},
	{"hard link absolute", []E{{Name: "h", Type: tar.TypeLink, Linkname: "/etc/passwd"}}},
	{"hard link through symlink", []E{
		{Name: "s", Type: tar.TypeSymlink, Linkname: "/etc"},
		{Name: "h", Type: tar.TypeLink, Linkname: "s/passwd"}}},
	{"hard link through symlink to parent", []E{
		{Name: "s", Type: tar.TypeSymlink, Linkname: ".."},
		{Name: "h", Type: tar.TypeLink, Linkname: "s/outside"}}},
	{"hard link to missing", []E{{Name: "h", Type: tar.TypeLink, Linkname: "nothing"}}},
	{"hard link to dir", []E{{Name: "d/", Type: tar.TypeDir}, {Name: "h", Type: tar.TypeLink, Linkname: "d"}}},
	{"whiteout of parent", []E{{Name: "a/.wh..", Content: nil}}},
	{"whiteout through symlink", []E{
		{Name: "s", Type: tar.TypeSymlink, Linkname: ".."},
		{Name: "s/.wh.outside"}}},
	{"opaque through symlink", []E{
		{Name: "s", Type: tar.TypeSymlink, Linkname: ".."},
		{Name: "s/.wh..wh..opq"}}},
	{"root as file", []E{{Name: ".", Content: []byte("x")}}},
}

func TestExtractHostile(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range hostile {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			err := extract(t, s.layer, tc.entries...)
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("got %v, want ErrUnsafe", err)
			}
			s.checkContained(t)
			if _, err := os.Lstat("/etc/condenser-pwned"); err == nil {
				t.Fatal("wrote /etc/condenser-pwned")
			}
			if _, err := os.Lstat("/tmp/condenser-pwned"); err == nil {
				t.Fatal("wrote /tmp/condenser-pwned")
			}
		})
	}
}

func TestExtractCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := newSandbox(t)
	_, err := Extract(ctx, s.layer, bytes.NewReader(testutil.Tar(t, E{Name: "a", Content: []byte("a")})))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		unsafe   bool
	}{
		{"a/b", "a/b", false},
		{"./a/b/", "a/b", false},
		{"a//b/./c", "a/b/c", false},
		{".", "", false},
		{"./", "", false},
		{"..", "", true},
		{"a/../b", "", true},
		{"/a", "", true},
		{"a\x00b", "", true},
		{"...", "...", false},
		{"..a", "..a", false},
	}
	for _, tc := range tests {
		got, err := cleanName(tc.in)
		if tc.unsafe != errors.Is(err, ErrUnsafe) || got != tc.want {
			t.Errorf("cleanName(%q) = %q, %v; want %q unsafe=%v", tc.in, got, err, tc.want, tc.unsafe)
		}
	}
}

func FuzzExtract(f *testing.F) {
	for _, tc := range hostile {
		f.Add(testutil.Tar(f, tc.entries...))
	}
	f.Add(testutil.Tar(f,
		E{Name: "a/", Type: tar.TypeDir}, E{Name: "a/f", Content: []byte("x")},
		E{Name: "a/l", Type: tar.TypeLink, Linkname: "a/f"}, E{Name: "a/.wh.z"},
		E{Name: "a/.wh..wh..opq"}, E{Name: "s", Type: tar.TypeSymlink, Linkname: "a"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSandbox(t)
		Extract(context.Background(), s.layer, bytes.NewReader(data)) //nolint:errcheck // only containment matters
		s.checkContained(t)
	})
}

func TestExtractRejectsSparse(t *testing.T) {
	// A PAX 0.1 sparse file: 1 TiB of holes declared by a few bytes. The
	// tar writer will not produce one, so the blocks are written by hand.
	var buf bytes.Buffer
	pax := paxRecord("GNU.sparse.map", "0,0") + paxRecord("GNU.sparse.realsize", "1099511627776") + paxRecord("GNU.sparse.numblocks", "1")
	buf.Write(ustarHeader("PaxHeaders/sparse", 'x', len(pax)))
	buf.Write(padBlock([]byte(pax)))
	buf.Write(ustarHeader("sparse", '0', 0))
	buf.Write(make([]byte, 1024))
	s := newSandbox(t)
	_, err := Extract(context.Background(), s.layer, &buf)
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "sparse") {
		t.Fatalf("sparse entry: %v, want ErrUnsafe", err)
	}
}

func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec) + 1
	for len(strconv.Itoa(n))+len(rec) != n {
		n++
	}
	return strconv.Itoa(n) + rec
}

func padBlock(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

// ustarHeader builds one 512-byte ustar header block.
func ustarHeader(name string, typ byte, size int) []byte {
	h := make([]byte, 512)
	copy(h[0:], name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", size))
	copy(h[136:], "00000000000\x00")
	h[156] = typ
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	return h
}
