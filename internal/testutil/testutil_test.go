package testutil_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/raind/condenser/internal/testutil"
)

// fakeTB records Fatal and Skip calls instead of acting on the real test.
type fakeTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatal(args ...any) { f.stop(&f.failed, fmt.Sprint(args...)) }

func (f *fakeTB) Fatalf(format string, args ...any) { f.stop(&f.failed, fmt.Sprintf(format, args...)) }

func (f *fakeTB) Skip(args ...any) { f.stop(&f.skipped, fmt.Sprint(args...)) }

func (f *fakeTB) stop(flag *bool, msg string) {
	*flag = true
	f.msg = msg
	runtime.Goexit()
}

// runFake runs fn with a fakeTB on its own goroutine, so Fatal and Skip can
// end it with runtime.Goexit.
func runFake(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "1": true, "": false, "false": false, "yes": false} {
		t.Setenv("CI", v)
		if got := testutil.InCI(); got != want {
			t.Errorf("CI=%q: InCI() = %v, want %v", v, got, want)
		}
	}
}

func TestRequireBinary(t *testing.T) {
	if got := testutil.RequireBinary(t, "sh"); !strings.HasPrefix(got, "/") {
		t.Errorf("RequireBinary(sh) = %q, want an absolute path", got)
	}
	if got := testutil.RequireBinary(t, "/bin/sh"); got != "/bin/sh" {
		t.Errorf("RequireBinary(/bin/sh) = %q", got)
	}

	t.Setenv("CI", "")
	f := runFake(t, func(tb testing.TB) { testutil.RequireBinary(tb, "docker-registry-missing") })
	if !f.skipped || f.failed {
		t.Errorf("missing binary outside CI: skipped=%v failed=%v, want a skip", f.skipped, f.failed)
	}
	f = runFake(t, func(tb testing.TB) { testutil.RequireBinary(tb, "/nonexistent/busybox") })
	if !strings.Contains(f.msg, "busybox-static") {
		t.Errorf("message %q does not name the package busybox-static", f.msg)
	}

	t.Setenv("CI", "true")
	f = runFake(t, func(tb testing.TB) { testutil.RequireBinary(tb, "docker-registry-missing") })
	if !f.failed || f.skipped {
		t.Errorf("missing binary in CI: skipped=%v failed=%v, want a failure", f.skipped, f.failed)
	}
}

func TestRequireRoot(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		f := runFake(t, testutil.RequireRoot)
		switch {
		case os.Geteuid() == 0 && (f.failed || f.skipped):
			t.Errorf("CI=%q as root: RequireRoot stopped the test: %s", ci, f.msg)
		case os.Geteuid() != 0 && ci == "" && !f.skipped:
			t.Errorf("CI=%q as non-root: want a skip, got failed=%v", ci, f.failed)
		case os.Geteuid() != 0 && ci != "" && !f.failed:
			t.Errorf("CI=%q as non-root: want a failure, got skipped=%v", ci, f.skipped)
		}
	}
}

func parseRef(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func digestOf(t *testing.T, x interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func layersOf(t *testing.T, img v1.Image) []v1.Layer {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return layers
}

// readLayer returns the entries of a layer's uncompressed tar stream, with the
// content of regular files.
func readLayer(t *testing.T, l v1.Layer) []testutil.Entry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return readTar(t, rc)
}

func readTar(t *testing.T, r io.Reader) []testutil.Entry {
	t.Helper()
	var entries []testutil.Entry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		e := testutil.Entry{
			Name:     hdr.Name,
			Type:     hdr.Typeflag,
			Mode:     hdr.Mode,
			UID:      hdr.Uid,
			GID:      hdr.Gid,
			Content:  content,
			Linkname: hdr.Linkname,
			Devmajor: hdr.Devmajor,
			Devminor: hdr.Devminor,
			ModTime:  hdr.ModTime.UTC(),
		}
		for k, v := range hdr.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[x] = v
			}
		}
		if len(e.Content) == 0 {
			e.Content = nil
		}
		entries = append(entries, e)
	}
}

func TestRegistryPushPull(t *testing.T) {
	r := testutil.StartRegistry(t)
	img := testutil.BusyboxImage(t)
	ref := r.Ref("test/busybox:latest")
	if want := r.Host + "/test/busybox:latest"; ref != want {
		t.Fatalf("Ref = %q, want %q", ref, want)
	}
	digest := r.Push(t, ref, img)
	if want := digestOf(t, img); digest != want {
		t.Fatalf("Push returned %s, image digest is %s", digest, want)
	}

	pulled, err := remote.Image(parseRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, pulled); got != digest {
		t.Errorf("pulled digest %s, pushed %s", got, digest)
	}
	if mt, err := pulled.MediaType(); err != nil || mt != types.DockerManifestSchema2 {
		t.Errorf("media type %q (%v), want %q", mt, err, types.DockerManifestSchema2)
	}
	m, err := pulled.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != types.DockerConfigJSON {
		t.Errorf("config media type %q", m.Config.MediaType)
	}
	layers := layersOf(t, pulled)
	if len(layers) != 1 {
		t.Fatalf("pulled %d layers, want 1", len(layers))
	}
	cfg, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || !slices.Equal(cfg.Config.Cmd, []string{"/bin/sh"}) ||
		!slices.Equal(cfg.Config.Env, []string{testutil.DefaultPath}) || !cfg.Created.Equal(testutil.DefaultModTime) {
		t.Errorf("unexpected config: %+v", cfg)
	}

	// The busybox layer holds the expected entries.
	var names []string
	for _, e := range readLayer(t, layers[0]) {
		names = append(names, e.Name)
		if e.Name == "bin/busybox" && (e.Mode != 0o755 || len(e.Content) < 100_000) {
			t.Errorf("bin/busybox: mode %o, %d bytes", e.Mode, len(e.Content))
		}
	}
	for _, want := range []string{"bin", "bin/busybox", "bin/sh", "bin/sleep", "etc/passwd", "etc/group", "tmp"} {
		if !slices.Contains(names, want) {
			t.Errorf("busybox layer lacks %s (has %v)", want, names)
		}
	}

	// BlobPath points at the stored blob; corrupting it breaks verification.
	layerDigest := digestOf(t, layers[0])
	blob := r.BlobPath(layerDigest)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("blob file: %v", err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != layerDigest.Hex {
		t.Fatalf("%s does not hold blob %s", blob, layerDigest)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("reading corrupted blob: err = %v, want a checksum error", err)
	}
}

func TestRegistryStop(t *testing.T) {
	r := testutil.StartRegistry(t)
	url := "http://" + r.Host + "/v2/"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	start := time.Now()
	r.Stop(t)
	r.Stop(t) // idempotent
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("stopping took %v; SIGTERM should suffice", d)
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s after Stop succeeded", url)
	}
}

func TestRegistryWithAuth(t *testing.T) {
	const user, password = "tester", "s3cret"
	r := testutil.StartRegistryWithAuth(t, user, password)
	url := "http://" + r.Host + "/v2/"
	get := func(user, password string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get("", ""); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous GET %s: %s (WWW-Authenticate %q), want 401 with a basic challenge", url, resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := get(user, "wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET %s with a wrong password: %s, want 401", url, resp.Status)
	}
	if resp := get(user, password); resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s with credentials: %s, want 200", url, resp.Status)
	}

	// Push and PushIndex authenticate by themselves.
	img := testutil.BusyboxImage(t)
	ref := r.Ref("test/busybox:latest")
	digest := r.Push(t, ref, img)
	idx := testutil.MultiArchIndex(t, v1.Platform{OS: "linux", Architecture: "amd64"})
	idxRef := r.Ref("test/multi:latest")
	idxDigest := r.PushIndex(t, idxRef, idx)

	auth := remote.WithAuth(&authn.Basic{Username: user, Password: password})
	pulled, err := remote.Image(parseRef(t, ref), auth)
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, pulled); got != digest {
		t.Errorf("pulled digest %s, pushed %s", got, digest)
	}
	pulledIdx, err := remote.Index(parseRef(t, idxRef), auth)
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, pulledIdx); got != idxDigest {
		t.Errorf("pulled index digest %s, pushed %s", got, idxDigest)
	}
	var terr *transport.Error
	if _, err := remote.Image(parseRef(t, ref)); !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous pull: %v, want 401", err)
	}
	wrong := remote.WithAuth(&authn.Basic{Username: user, Password: "wrong"})
	if _, err := remote.Image(parseRef(t, ref), wrong); !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Errorf("pull with a wrong password: %v, want 401", err)
	}

	for _, u := range []string{"", "a:b"} {
		if f := runFake(t, func(tb testing.TB) { testutil.StartRegistryWithAuth(tb, u, "x") }); !f.failed {
			t.Errorf("StartRegistryWithAuth accepted user %q", u)
		}
	}
}

func TestTarRoundTrip(t *testing.T) {
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	entries := []testutil.Entry{
		{Name: "dir", Type: tar.TypeDir},
		{Name: "sticky", Type: tar.TypeDir, Mode: 0o1777},
		{Name: "dir/file", Content: []byte("hello"), UID: 1000, GID: 1001, Mode: 0o600, ModTime: mtime},
		{Name: "dir/empty"},
		{Name: "dir/nomode", Mode: testutil.ZeroMode, Content: []byte("secret")},
		{Name: "dir/suid", Mode: 0o4755, Content: []byte("suid")},
		{Name: "dir/sgid", Mode: 0o2755, Content: []byte("sgid")},
		{Name: "dir/symlink", Type: tar.TypeSymlink, Linkname: "../etc/passwd"},
		{Name: "dir/hardlink", Type: tar.TypeLink, Linkname: "dir/file"},
		{Name: "dev/char", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "dev/block", Type: tar.TypeBlock, Mode: 0o660, Devmajor: 7, Devminor: 0},
		{Name: "dev/fifo", Type: tar.TypeFifo},
		{Name: "xattr", Content: []byte("x"), Xattrs: map[string]string{"user.a": "1", "security.capability": "\x01\x00\x00\x02"}},
		{Name: "../escape", Content: []byte("evil")},
		{Name: "/abs/file", Content: []byte("abs")},
		{Name: "a/../../b", Type: tar.TypeSymlink, Linkname: "/etc/shadow"},
		{Name: strings.Repeat("long/", 50) + "name", Content: []byte("long")},
	}
	defaultMode := map[byte]int64{tar.TypeDir: 0o755, tar.TypeSymlink: 0o777}
	want := make([]testutil.Entry, len(entries))
	for i, e := range entries {
		if e.Type == 0 {
			e.Type = tar.TypeReg
		}
		switch e.Mode {
		case 0:
			e.Mode = cmpOr(defaultMode[e.Type], 0o644)
		case testutil.ZeroMode:
			e.Mode = 0
		}
		if e.ModTime.IsZero() {
			e.ModTime = testutil.DefaultModTime
		}
		want[i] = e
	}

	data := testutil.Tar(t, entries...)
	if got := readTar(t, bytes.NewReader(data)); !reflect.DeepEqual(got, want) {
		t.Errorf("Tar round trip mismatch:\n got %+v\nwant %+v", got, want)
	}

	layer := testutil.Layer(t, entries...)
	if mt, err := layer.MediaType(); err != nil || mt != types.DockerLayer {
		t.Errorf("layer media type %q (%v), want %q", mt, err, types.DockerLayer)
	}
	if got := readLayer(t, layer); !reflect.DeepEqual(got, want) {
		t.Errorf("Layer round trip mismatch:\n got %+v\nwant %+v", got, want)
	}
	diffID, err := layer.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); diffID.Hex != hex.EncodeToString(sum[:]) {
		t.Errorf("diff ID %s is not the digest of Tar's output", diffID)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatalf("compressed layer is not gzip: %v", err)
	}
	if raw, err := io.ReadAll(zr); err != nil || !bytes.Equal(raw, data) {
		t.Errorf("gunzipped layer differs from Tar output (err %v)", err)
	}
}

func cmpOr(v ...int64) int64 {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}

func TestTarRejectsContentOnNonRegular(t *testing.T) {
	f := runFake(t, func(tb testing.TB) {
		testutil.Tar(tb, testutil.Entry{Name: "l", Type: tar.TypeSymlink, Linkname: "x", Content: []byte("body")})
	})
	if !f.failed {
		t.Error("Tar accepted content on a symlink")
	}
}

func TestFeatureImage(t *testing.T) {
	r := testutil.StartRegistry(t)
	img := testutil.FeatureImage(t)
	ref := r.Ref("test/feature:v1")
	digest := r.Push(t, ref, img)

	pulled, err := remote.Image(parseRef(t, r.Ref("test/feature@"+digest.String())))
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, pulled); got != digest {
		t.Fatalf("pulled digest %s, pushed %s", got, digest)
	}
	layers := layersOf(t, pulled)
	specs := testutil.FeatureLayers(t)
	if len(layers) != 3 || len(specs) != 3 {
		t.Fatalf("pulled %d layers, FeatureLayers has %d; want 3", len(layers), len(specs))
	}
	for i, l := range layers {
		got := readLayer(t, l)
		if len(got) != len(specs[i]) {
			t.Fatalf("layer %d has %d entries, want %d", i+1, len(got), len(specs[i]))
		}
		for j, e := range got {
			if e.Name != specs[i][j].Name {
				t.Errorf("layer %d entry %d is %q, want %q", i+1, j, e.Name, specs[i][j].Name)
			}
		}
	}

	merged := testutil.MergeLayers(specs...)
	present := map[string]string{ // path -> content of regular files ("" for others)
		"bin/busybox": "", "bin/sh": "", "bin/suid": "suid", "etc/passwd": "", "tmp": "",
		"data/keep/a": "a", "data/keep/b": "b", "data/new.txt": "new", "opq/upper": "upper",
		"hard/orig": "hardlink content", "hard/link": "", "hard3/orig": "hard3 content", "hard3/link": "",
		"links/abs": "", "links/rel": "", "dev/null2": "", "dev/fifo": "", "xattr/file": "xattr", "owned/file": "owned",
	}
	for p, content := range present {
		e, ok := merged[p]
		if !ok {
			t.Errorf("merged view lacks %s", p)
			continue
		}
		if content != "" && string(e.Content) != content {
			t.Errorf("%s: content %q, want %q", p, e.Content, content)
		}
	}
	for _, p := range []string{"data/old.txt", "data/gone", "data/gone/x", "opq/lower1", "opq/lower2"} {
		if _, ok := merged[p]; ok {
			t.Errorf("merged view has %s", p)
		}
	}
	for p := range merged {
		if strings.HasPrefix(path.Base(p), ".wh.") {
			t.Errorf("merged view has whiteout %s", p)
		}
	}
	checks := []struct {
		path string
		ok   func(testutil.Entry) bool
	}{
		{"bin/suid", func(e testutil.Entry) bool { return e.Mode == 0o4755 }},
		{"tmp", func(e testutil.Entry) bool { return e.Type == tar.TypeDir && e.Mode == 0o1777 }},
		{"hard/link", func(e testutil.Entry) bool { return e.Type == tar.TypeLink && e.Linkname == "hard/orig" }},
		{"hard3/link", func(e testutil.Entry) bool { return e.Type == tar.TypeLink && e.Linkname == "hard3/orig" }},
		{"links/abs", func(e testutil.Entry) bool { return e.Type == tar.TypeSymlink && e.Linkname == "/bin/busybox" }},
		{"links/rel", func(e testutil.Entry) bool { return e.Type == tar.TypeSymlink && e.Linkname == "../data/keep/a" }},
		{"dev/null2", func(e testutil.Entry) bool {
			return e.Type == tar.TypeChar && e.Devmajor == 1 && e.Devminor == 3 && e.Mode == 0o666
		}},
		{"dev/fifo", func(e testutil.Entry) bool { return e.Type == tar.TypeFifo }},
		{"xattr/file", func(e testutil.Entry) bool { return e.Xattrs["user.condenser"] == "test" }},
		{"owned/file", func(e testutil.Entry) bool { return e.UID == 1234 && e.GID == 5678 && e.Mode == 0o640 }},
	}
	for _, c := range checks {
		if e, ok := merged[c.path]; !ok || !c.ok(e) {
			t.Errorf("%s: unexpected entry %+v", c.path, e)
		}
	}

	// go-containerregistry's own flattening agrees with MergeLayers.
	flat := readTar(t, mutate.Extract(pulled))
	var flatNames, mergedNames []string
	for _, e := range flat {
		flatNames = append(flatNames, strings.TrimSuffix(e.Name, "/"))
	}
	for p := range merged {
		mergedNames = append(mergedNames, p)
	}
	slices.Sort(flatNames)
	slices.Sort(mergedNames)
	if !slices.Equal(flatNames, mergedNames) {
		t.Errorf("mutate.Extract paths differ from MergeLayers:\n extract %v\n   merge %v", flatNames, mergedNames)
	}
}

func TestMultiArchIndex(t *testing.T) {
	platforms := []v1.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "arm", Variant: "v7"},
	}
	r := testutil.StartRegistry(t)
	idx := testutil.MultiArchIndex(t, platforms...)
	ref := r.Ref("test/multi:latest")
	digest := r.PushIndex(t, ref, idx)
	if want := digestOf(t, idx); digest != want {
		t.Fatalf("PushIndex returned %s, index digest is %s", digest, want)
	}

	pulled, err := remote.Index(parseRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, pulled); got != digest {
		t.Errorf("pulled index digest %s, pushed %s", got, digest)
	}
	if mt, err := pulled.MediaType(); err != nil || mt != types.DockerManifestList {
		t.Errorf("index media type %q (%v), want %q", mt, err, types.DockerManifestList)
	}
	im, err := pulled.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(platforms) {
		t.Fatalf("index has %d manifests, want %d", len(im.Manifests), len(platforms))
	}
	var busyboxLayer v1.Hash
	for i, desc := range im.Manifests {
		want := platforms[i]
		if desc.Platform == nil || !desc.Platform.Equals(want) {
			t.Errorf("manifest %d: platform %v, want %v", i, desc.Platform, want)
		}
		if desc.MediaType != types.DockerManifestSchema2 {
			t.Errorf("manifest %d: media type %q", i, desc.MediaType)
		}
		img, err := pulled.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.OS != want.OS || cfg.Architecture != want.Architecture || cfg.Variant != want.Variant {
			t.Errorf("manifest %d: config platform %s/%s/%s, want %v", i, cfg.OS, cfg.Architecture, cfg.Variant, want)
		}
		layers := layersOf(t, img)
		if len(layers) != 2 {
			t.Fatalf("manifest %d: %d layers, want 2", i, len(layers))
		}
		if i == 0 {
			busyboxLayer = digestOf(t, layers[0])
		} else if got := digestOf(t, layers[0]); got != busyboxLayer {
			t.Errorf("manifest %d: base layer %s, want the shared %s", i, got, busyboxLayer)
		}
		marker := readLayer(t, layers[1])
		if len(marker) != 1 || marker[0].Name != "etc/platform" || string(marker[0].Content) != want.String() {
			t.Errorf("manifest %d: marker layer %+v, want etc/platform = %q", i, marker, want.String())
		}
	}

	// Platform resolution through the registry picks the matching image.
	arm, err := remote.Image(parseRef(t, ref), remote.WithPlatform(platforms[1]))
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, arm); got != im.Manifests[1].Digest {
		t.Errorf("resolved arm64 image %s, want %s", got, im.Manifests[1].Digest)
	}
}

func TestHostFilesImage(t *testing.T) {
	const total, n = 6 << 20, 3
	img := testutil.HostFilesImage(t, total, n)
	layers := layersOf(t, img)
	if len(layers) != n {
		t.Fatalf("%d layers, want %d", len(layers), n)
	}
	var sum int64
	for i, l := range layers {
		if mt, err := l.MediaType(); err != nil || mt != types.DockerLayer {
			t.Errorf("layer %d media type %q (%v)", i+1, mt, err)
		}
		dirs := map[string]bool{}
		var size int64
		for _, e := range readLayer(t, l) {
			if parent := path.Dir(e.Name); parent != "." && !dirs[parent] {
				t.Errorf("layer %d: %s precedes its directory", i+1, e.Name)
			}
			switch e.Type {
			case tar.TypeDir:
				dirs[e.Name] = true
			case tar.TypeReg:
				size += int64(len(e.Content))
			case tar.TypeSymlink:
			default:
				t.Errorf("layer %d: %s has type %q", i+1, e.Name, e.Type)
			}
		}
		if size == 0 || size > 2*total/n {
			t.Errorf("layer %d holds %d bytes, want about %d", i+1, size, total/n)
		}
		sum += size
	}
	if sum < total || sum > total+total/n {
		t.Errorf("image holds %d bytes of files, want about %d", sum, total)
	}
	if again := testutil.HostFilesImage(t, total, n); digestOf(t, again) != digestOf(t, img) {
		t.Error("HostFilesImage is not deterministic")
	}
}

func TestHostFilesImageTooLarge(t *testing.T) {
	f := runFake(t, func(tb testing.TB) { testutil.HostFilesImage(tb, 1<<50, 2) })
	if !f.failed || !strings.Contains(f.msg, "host has only") {
		t.Errorf("want a failure for an impossible size, got failed=%v msg=%q", f.failed, f.msg)
	}
}
