package imagestore

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
)

// openStore opens a store in a temp dir with the given options.
func openStore(t testing.TB, o Options) *Store {
	t.Helper()
	if o.Root == "" {
		o.Root = t.TempDir()
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// events collects progress events.
type events struct {
	mu sync.Mutex
	ev []Progress
}

func (e *events) add(p Progress) { e.mu.Lock(); e.ev = append(e.ev, p); e.mu.Unlock() }

func (e *events) statuses(layer string) []Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Status
	for _, p := range e.ev {
		if p.Layer == layer && (len(out) == 0 || out[len(out)-1] != p.Status) {
			out = append(out, p.Status)
		}
	}
	return out
}

// countingTransport counts blob GETs by digest.
type countingTransport struct {
	mu    sync.Mutex
	blobs map[string]int
	base  http.RoundTripper
}

func newCounting() *countingTransport {
	return &countingTransport{blobs: map[string]int{}, base: http.DefaultTransport.(*http.Transport).Clone()}
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if i := strings.Index(r.URL.Path, "/blobs/"); i >= 0 && r.Method == http.MethodGet {
		c.mu.Lock()
		c.blobs[r.URL.Path[i+len("/blobs/"):]]++
		c.mu.Unlock()
	}
	return c.base.RoundTrip(r)
}

func (c *countingTransport) count(digest string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blobs[digest]
}

// mountLayers mounts the layer dirs (bottom first) read-only with overlayfs
// and returns the merged view.
func mountLayers(t testing.TB, dirs []string) string {
	t.Helper()
	mnt := t.TempDir()
	lower := make([]string, 0, len(dirs)+1)
	for i := len(dirs) - 1; i >= 0; i-- {
		lower = append(lower, dirs[i])
	}
	if len(lower) == 1 { // overlay wants two lower dirs without an upper
		lower = append(lower, t.TempDir())
	}
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lower, ":")); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt
}

// checkMerged compares a merged root filesystem with the model of the layers.
func checkMerged(t *testing.T, root string, want map[string]testutil.Entry) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		seen[rel] = true
		e, ok := want[rel]
		if !ok {
			t.Errorf("%s: in the merged view but not in the image", rel)
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		typ := map[byte]uint32{tar.TypeDir: unix.S_IFDIR, tar.TypeSymlink: unix.S_IFLNK, tar.TypeChar: unix.S_IFCHR, tar.TypeFifo: unix.S_IFIFO, tar.TypeReg: unix.S_IFREG, tar.TypeLink: unix.S_IFREG, 0: unix.S_IFREG}[e.Type]
		if st.Mode&unix.S_IFMT != typ {
			t.Errorf("%s: type %o, want %o", rel, st.Mode&unix.S_IFMT, typ)
		}
		if int(st.Uid) != e.UID || int(st.Gid) != e.GID {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, e.UID, e.GID)
		}
		if e.Mode != 0 && e.Type != tar.TypeSymlink && int64(st.Mode&0o7777) != e.Mode {
			t.Errorf("%s: mode %o, want %o", rel, st.Mode&0o7777, e.Mode)
		}
		switch e.Type {
		case tar.TypeReg, 0:
			if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, e.Content) {
				t.Errorf("%s: content %.40q, want %.40q (%v)", rel, b, e.Content, err)
			}
			if st.Mtim.Sec != testutil.DefaultModTime.Unix() {
				t.Errorf("%s: mtime %d, want %d", rel, st.Mtim.Sec, testutil.DefaultModTime.Unix())
			}
		case tar.TypeSymlink:
			if l, _ := os.Readlink(p); l != e.Linkname {
				t.Errorf("%s: link to %q, want %q", rel, l, e.Linkname)
			}
		case tar.TypeLink:
			var tst unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, e.Linkname), &tst); err != nil || tst.Ino != st.Ino {
				t.Errorf("%s: not a hard link of %s", rel, e.Linkname)
			}
		case tar.TypeChar:
			if st.Rdev != unix.Mkdev(uint32(e.Devmajor), uint32(e.Devminor)) {
				t.Errorf("%s: device %d, want %d:%d", rel, st.Rdev, e.Devmajor, e.Devminor)
			}
		}
		for k, v := range e.Xattrs {
			buf := make([]byte, 256)
			n, err := unix.Lgetxattr(p, k, buf)
			if err != nil || string(buf[:n]) != v {
				t.Errorf("%s: xattr %s = %q (%v), want %q", rel, k, buf[:max(n, 0)], err, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("%s: missing from the merged view", p)
		}
	}
}

// checkClean verifies that the store holds no temp files and that every
// blob's name is its digest.
func checkClean(t *testing.T, s *Store) {
	t.Helper()
	for _, d := range []string{s.content.ingest, s.layers.tmp} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("%s not empty: %d entries", d, len(ents))
		}
	}
	ents, err := os.ReadDir(s.content.blobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.content.blobs, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != e.Name() {
			t.Errorf("blob %s holds other content", e.Name())
		}
	}
}

func countDir(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestPullUnpacksLikeOverlayExpects(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	ref := reg.Ref("test/feature:1")
	digest := reg.Push(t, ref, testutil.FeatureImage(t))
	s := openStore(t, Options{})

	var ev events
	img, err := s.Pull(context.Background(), ref, PullOptions{Progress: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != ref || img.Digest != digest.String() || img.Manifest != digest.String() || len(img.Layers) != 3 {
		t.Fatalf("record %+v", img)
	}
	if img.Platform.String() != "linux/amd64" || img.Size <= 0 || img.Created.IsZero() {
		t.Errorf("record platform %s size %d created %v", img.Platform, img.Size, img.Created)
	}
	for _, l := range img.Layers {
		got := ev.statuses(l.Digest)
		if len(got) != 2 || got[0] != StatusDownloading || got[1] != StatusDone {
			t.Errorf("layer %s: events %v, want [downloading done]", l.Digest, got)
		}
	}
	root := mountLayers(t, s.LayerDirs(img))
	checkMerged(t, root, testutil.MergeLayers(testutil.FeatureLayers(t)...))
	checkClean(t, s)

	// Pulled again: nothing is downloaded, even with the registry's copies
	// of the layers gone.
	for _, l := range img.Layers {
		h, _ := v1.NewHash(l.Digest)
		if err := os.Remove(reg.BlobPath(h)); err != nil {
			t.Fatal(err)
		}
	}
	// An unpacked layer lost: it is unpacked again from the stored blob.
	lost := img.Layers[1]
	if err := os.RemoveAll(s.layers.path(lost.DiffID)); err != nil {
		t.Fatal(err)
	}
	var again events
	if _, err := s.Pull(context.Background(), ref, PullOptions{Progress: again.add}); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.Layers {
		want := []Status{StatusExists}
		if l == lost {
			want = []Status{StatusExtracting, StatusDone}
		}
		if got := again.statuses(l.Digest); !slices.Equal(got, want) {
			t.Errorf("second pull of layer %s: %v, want %v", l.Digest, got, want)
		}
	}
	checkMerged(t, mountLayers(t, s.LayerDirs(img)), testutil.MergeLayers(testutil.FeatureLayers(t)...))
}

func TestPullSharedLayersConcurrently(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	base := testutil.Layer(t, testutil.BusyboxEntries(t)...)
	a := testutil.Image(t, nil, base, testutil.Layer(t, testutil.Entry{Name: "a", Content: []byte("a")}))
	b := testutil.Image(t, nil, base, testutil.Layer(t, testutil.Entry{Name: "b", Content: []byte("b")}))
	refs := []string{reg.Ref("test/a:1"), reg.Ref("test/b:1")}
	reg.Push(t, refs[0], a)
	reg.Push(t, refs[1], b)

	ct := newCounting()
	s := openStore(t, Options{Transport: ct})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Pull(context.Background(), refs[i%2], PullOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	bd, _ := base.Digest()
	if n := ct.count(bd.String()); n != 1 {
		t.Errorf("shared layer downloaded %d times, want 1", n)
	}
	for _, img := range []v1.Image{a, b} {
		ls, _ := img.Layers()
		d, _ := ls[1].Digest()
		if n := ct.count(d.String()); n != 1 {
			t.Errorf("layer %s downloaded %d times, want 1", d, n)
		}
	}
	if n := countDir(t, s.layers.dir); n != 3 {
		t.Errorf("%d unpacked layers, want 3 (the shared one once)", n)
	}
	// 3 layers, 2 configs, 2 manifests.
	if n := countDir(t, s.content.blobs); n != 7 {
		t.Errorf("%d blobs, want 7", n)
	}
	checkClean(t, s)
}

func TestPullMultiArch(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	ref := reg.Ref("test/multi:1")
	platforms := []v1.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "s390x"},
	}
	idxDigest := reg.PushIndex(t, ref, testutil.MultiArchIndex(t, platforms...))
	s := openStore(t, Options{})

	tests := []struct {
		platform *v1.Platform
		want     string
	}{
		{nil, "linux/amd64"}, // the host's
		{&v1.Platform{OS: "linux", Architecture: "arm64"}, "linux/arm64/v8"},
		{&v1.Platform{OS: "linux", Architecture: "s390x"}, "linux/s390x"},
	}
	for _, tc := range tests {
		img, err := s.Pull(context.Background(), ref, PullOptions{Platform: tc.platform})
		if err != nil {
			t.Fatal(err)
		}
		if img.Platform.String() != tc.want || img.Digest != idxDigest.String() || img.Manifest == img.Digest {
			t.Errorf("pulled %+v, want platform %s from index %s", img, tc.want, idxDigest)
		}
		dirs := s.LayerDirs(img)
		if b, err := os.ReadFile(filepath.Join(dirs[len(dirs)-1], "etc/platform")); err != nil || string(b) != tc.want {
			t.Errorf("etc/platform = %q (%v), want %q", b, err, tc.want)
		}
	}
	_, err := s.Pull(context.Background(), ref, PullOptions{Platform: &v1.Platform{OS: "linux", Architecture: "riscv64"}})
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "linux/arm64/v8") || !strings.Contains(err.Error(), "linux/riscv64") {
		t.Errorf("pull for a missing platform: %v; want not found listing the available ones", err)
	}
	// A single-platform image refuses another requested platform.
	single := reg.Ref("test/single:1")
	reg.Push(t, single, testutil.BusyboxImage(t))
	if _, err := s.Pull(context.Background(), single, PullOptions{Platform: &platforms[1]}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("pull of an amd64 image for arm64: %v, want not found", err)
	}
}

// corruptBlob flips the bytes of a blob in the registry's storage, keeping
// its size: the registry serves it under its old digest.
func corruptBlob(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 2; i < len(b)/2+16 && i < len(b); i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPullDigestMismatchLeavesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	img := testutil.FeatureImage(t)
	ref := reg.Ref("test/corrupt:1")
	reg.Push(t, ref, img)
	ls, _ := img.Layers()
	d, _ := ls[1].Digest()
	corruptBlob(t, reg.BlobPath(d))

	s := openStore(t, Options{Downloads: 1})
	_, err := s.Pull(context.Background(), ref, PullOptions{})
	if !errors.Is(err, errdefs.ErrDataLoss) {
		t.Fatalf("pull of a corrupt layer: %v, want ErrDataLoss", err)
	}
	if s.content.has(d) {
		t.Error("the corrupt blob was stored")
	}
	if imgs, _ := s.List(context.Background()); len(imgs) != 0 {
		t.Errorf("image recorded: %+v", imgs)
	}
	checkClean(t, s)
}

func TestPullHostileLayerFailsSafely(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	s := openStore(t, Options{})
	outside := filepath.Join(s.root, "..", "condenser-escape")
	hostile := map[string][]testutil.Entry{
		"dotdot":   {{Name: "../../../condenser-escape", Content: []byte("x")}},
		"absolute": {{Name: outside, Content: []byte("x")}},
		"symlink": {
			{Name: "s", Type: tar.TypeSymlink, Linkname: filepath.Dir(outside)},
			{Name: "s/condenser-escape", Content: []byte("x")}},
		"hardlink": {{Name: "h", Type: tar.TypeLink, Linkname: "../../../../etc/passwd"}},
	}
	for name, entries := range hostile {
		t.Run(name, func(t *testing.T) {
			ref := reg.Ref("test/hostile:" + name)
			reg.Push(t, ref, testutil.Image(t, nil, testutil.Layer(t, testutil.BusyboxEntries(t)...), testutil.Layer(t, entries...)))
			_, err := s.Pull(context.Background(), ref, PullOptions{})
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "unsafe layer") {
				t.Fatalf("pull: %v; want an unsafe layer error", err)
			}
			if _, err := os.Lstat(outside); err == nil {
				t.Fatal("the layer wrote outside the store")
			}
			if imgs, _ := s.List(context.Background()); len(imgs) != 0 {
				t.Errorf("image recorded: %+v", imgs)
			}
			checkClean(t, s)
		})
	}
}

func TestPullErrors(t *testing.T) {
	reg := testutil.StartRegistry(t)
	s := openStore(t, Options{})
	ctx := context.Background()
	tests := []struct {
		ref  string
		kind error
	}{
		{"Invalid:Ref", errdefs.ErrInvalidArgument},
		{reg.Ref("test/absent:1"), errdefs.ErrNotFound},
	}
	for _, tc := range tests {
		if _, err := s.Pull(ctx, tc.ref, PullOptions{}); !errors.Is(err, tc.kind) {
			t.Errorf("pull %s: %v, want %v", tc.ref, err, tc.kind)
		}
	}
	reg.Stop(t)
	if _, err := s.Pull(ctx, reg.Ref("test/absent:1"), PullOptions{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("pull from a stopped registry: %v, want ErrUnavailable", err)
	}
}

func TestPullThroughMirror(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	reg.Push(t, reg.Ref("library/busybox:latest"), testutil.BusyboxImage(t))
	// A dead mirror first: the next one answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := ln.Addr().String()
	ln.Close() // nothing listens there any more
	s := openStore(t, Options{Mirrors: map[string][]string{"docker.io": {"http://" + l, "http://" + reg.Host}}})
	img, err := s.Pull(context.Background(), "busybox", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "docker.io/library/busybox:latest" {
		t.Errorf("name %q", img.Name)
	}
	if got, err := s.Inspect(context.Background(), "busybox:latest"); err != nil || got.ID != img.ID {
		t.Errorf("inspect busybox: %v %v", got.ID, err)
	}
}

func TestInsecureRegistry(t *testing.T) {
	reg := testutil.StartRegistry(t)
	_, port, _ := strings.Cut(reg.Host, ":")
	host := "registry.test:" + port // not loopback by name: HTTPS unless configured
	reg.Push(t, reg.Ref("test/busybox:1"), testutil.BusyboxImage(t))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dial(ctx, network, strings.Replace(addr, "registry.test", "127.0.0.1", 1))
	}
	ref := host + "/test/busybox:1"
	secure := openStore(t, Options{Transport: tr})
	if _, err := secure.Pull(context.Background(), ref, PullOptions{}); err == nil {
		t.Error("pulled over plain HTTP from a registry not configured as insecure")
	}
	testutil.RequireRoot(t)
	insecure := openStore(t, Options{Transport: tr, Insecure: []string{host}})
	if _, err := insecure.Pull(context.Background(), ref, PullOptions{}); err != nil {
		t.Errorf("pull from an insecure registry: %v", err)
	}
}

func TestOptionsInvalid(t *testing.T) {
	for _, o := range []Options{
		{},
		{Root: t.TempDir(), Mirrors: map[string][]string{"docker.io": {"ftp://x"}}},
		{Root: t.TempDir(), Mirrors: map[string][]string{"docker.io": {"http://x/path"}}},
		{Root: t.TempDir(), Insecure: []string{"http://x"}},
	} {
		if _, err := Open(context.Background(), o); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Open(%+v) = %v, want ErrInvalidArgument", o, err)
		}
	}
}

func TestPullZstdAndUncompressedLayers(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	zdata := testutil.Tar(t, testutil.Entry{Name: "z/file", Content: bytes.Repeat([]byte("zstd "), 1000)})
	zl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(zdata)), nil },
		tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	plain := static.NewLayer(testutil.Tar(t, testutil.Entry{Name: "plain/file", Content: []byte("plain")}), types.OCIUncompressedLayer)
	ref := reg.Ref("test/mixed:1")
	reg.Push(t, ref, testutil.Image(t, nil, testutil.Layer(t, testutil.BusyboxEntries(t)...), zl, plain))
	s := openStore(t, Options{})
	img, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Layers[1].MediaType != string(types.OCILayerZStd) || img.Layers[2].MediaType != string(types.OCIUncompressedLayer) {
		t.Errorf("media types %s, %s", img.Layers[1].MediaType, img.Layers[2].MediaType)
	}
	root := mountLayers(t, s.LayerDirs(img))
	for p, want := range map[string]string{"z/file": strings.Repeat("zstd ", 1000), "plain/file": "plain"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s: %.20q %v", p, b, err)
		}
	}
	checkClean(t, s)
}

func TestPullOCIIndexAndManifest(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	data := testutil.Tar(t, testutil.BusyboxEntries(t)...)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), layer)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: mustDiffIDs(t, img)}})
	if err != nil {
		t.Fatal(err)
	}
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	ref := reg.Ref("test/oci:1")
	idxDigest := reg.PushIndex(t, ref, idx)
	manDigest, _ := img.Digest()

	s := openStore(t, Options{})
	got, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.MediaType != string(types.OCIManifestSchema1) || got.Digest != idxDigest.String() || got.Manifest != manDigest.String() || got.Layers[0].MediaType != string(types.OCILayer) {
		t.Errorf("record %+v", got)
	}
	if _, err := os.Stat(filepath.Join(s.LayerDirs(got)[0], "bin/busybox")); err != nil {
		t.Error(err)
	}
}

func mustDiffIDs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range ls {
		d, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}
