package testutil

import (
	"archive/tar"
	"debug/elf"
	"fmt"
	"os"
	"path"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultPath is the PATH in the environment of images built by this package.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// busyboxPath is where busybox-static installs the static busybox.
const busyboxPath = "/bin/busybox"

// busyboxApplets are the applets BusyboxEntries links into bin/.
var busyboxApplets = []string{"sh", "ls", "cat", "echo", "id", "true", "false", "sleep"}

// BusyboxEntries returns the entries of a minimal root filesystem around the
// host's static busybox: dirs bin, etc and tmp (mode 01777), bin/busybox (mode
// 0755), symlinks bin/{sh,ls,cat,echo,id,true,false,sleep} -> busybox, and
// etc/passwd and etc/group with root (0) and nobody (65534) entries. Names are
// relative ("bin/busybox"). The test is skipped (failed in CI) when the host has
// no static busybox.
func BusyboxEntries(t testing.TB) []Entry {
	t.Helper()
	bin := RequireBinary(t, busyboxPath)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("reading %s: %v", bin, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			f.Close()
			skipOrFail(t, bin+" is dynamically linked; install it with: apt-get install busybox-static")
		}
	}
	f.Close()
	content, err := os.ReadFile(bin)
	if err != nil {
		t.Fatalf("reading %s: %v", bin, err)
	}

	entries := []Entry{
		{Name: "bin", Type: tar.TypeDir},
		{Name: "bin/busybox", Mode: 0o755, Content: content},
	}
	for _, applet := range busyboxApplets {
		entries = append(entries, Entry{Name: "bin/" + applet, Type: tar.TypeSymlink, Linkname: "busybox"})
	}
	return append(entries,
		Entry{Name: "etc", Type: tar.TypeDir},
		Entry{Name: "etc/passwd", Content: []byte(
			"root:x:0:0:root:/root:/bin/sh\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		Entry{Name: "etc/group", Content: []byte(
			"root:x:0:\n" +
				"nobody:x:65534:\n")},
		Entry{Name: "tmp", Type: tar.TypeDir, Mode: 0o1777},
	)
}

// Image builds an image (Docker schema2 manifest and config media types) on
// empty.Image from layers. Its config has OS, Architecture, Variant, OSVersion
// and OSFeatures from platform (linux/amd64 when nil), Cmd ["/bin/sh"],
// Env [DefaultPath], Created DefaultModTime, and one history entry per layer.
func Image(t testing.TB, platform *v1.Platform, layers ...v1.Layer) v1.Image {
	t.Helper()
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	if platform != nil {
		p = *platform
	}
	base, err := empty.Image.ConfigFile()
	if err != nil {
		t.Fatalf("empty image config: %v", err)
	}
	cfg := base.DeepCopy()
	cfg.OS = p.OS
	cfg.Architecture = p.Architecture
	cfg.Variant = p.Variant
	cfg.OSVersion = p.OSVersion
	cfg.OSFeatures = p.OSFeatures
	cfg.Created = v1.Time{Time: DefaultModTime}
	cfg.Config = v1.Config{
		Cmd: []string{"/bin/sh"},
		Env: []string{DefaultPath},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		t.Fatalf("setting image config: %v", err)
	}

	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{
			Layer: l,
			History: v1.History{
				Created:   v1.Time{Time: DefaultModTime},
				CreatedBy: fmt.Sprintf("testutil: layer %d", i+1),
			},
		}
	}
	img, err = mutate.Append(img, adds...)
	if err != nil {
		t.Fatalf("appending layers: %v", err)
	}
	img = mutate.MediaType(img, types.DockerManifestSchema2)
	return mutate.ConfigMediaType(img, types.DockerConfigJSON)
}

// BusyboxImage returns Image(t, nil, Layer(t, BusyboxEntries(t)...)).
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	return Image(t, nil, Layer(t, BusyboxEntries(t)...))
}

// FeatureLayers returns the entries of the three layers of FeatureImage.
func FeatureLayers(t testing.TB) [][]Entry {
	t.Helper()
	dir := func(name string) Entry { return Entry{Name: name, Type: tar.TypeDir} }
	file := func(name, content string) Entry { return Entry{Name: name, Content: []byte(content)} }

	layer1 := append(BusyboxEntries(t),
		dir("data"),
		dir("data/keep"),
		file("data/keep/a", "a"),
		dir("data/gone"),
		file("data/gone/x", "x"),
		file("data/old.txt", "old"),
		dir("opq"),
		file("opq/lower1", "lower1"),
		file("opq/lower2", "lower2"),
		dir("hard"),
		file("hard/orig", "hardlink content"),
		Entry{Name: "hard/link", Type: tar.TypeLink, Linkname: "hard/orig"},
		dir("links"),
		Entry{Name: "links/abs", Type: tar.TypeSymlink, Linkname: "/bin/busybox"},
		Entry{Name: "links/rel", Type: tar.TypeSymlink, Linkname: "../data/keep/a"},
		Entry{Name: "bin/suid", Mode: 0o4755, Content: []byte("suid")},
		dir("dev"),
		Entry{Name: "dev/null2", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		Entry{Name: "dev/fifo", Type: tar.TypeFifo},
		dir("xattr"),
		Entry{Name: "xattr/file", Content: []byte("xattr"), Xattrs: map[string]string{"user.condenser": "test"}},
		dir("owned"),
		Entry{Name: "owned/file", Mode: 0o640, UID: 1234, GID: 5678, Content: []byte("owned")},
	)
	layer2 := []Entry{
		dir("data"),
		file("data/.wh.old.txt", ""),
		file("data/.wh.gone", ""),
		file("data/new.txt", "new"),
		dir("opq"),
		file("opq/.wh..wh..opq", ""),
		file("opq/upper", "upper"),
	}
	layer3 := []Entry{
		dir("data"),
		dir("data/keep"),
		file("data/keep/b", "b"),
		dir("hard3"),
		file("hard3/orig", "hard3 content"),
		Entry{Name: "hard3/link", Type: tar.TypeLink, Linkname: "hard3/orig"},
	}
	return [][]Entry{layer1, layer2, layer3}
}

// FeatureImage returns a linux/amd64 image of three layers (FeatureLayers)
// exercising the unpacker. Every entry has mtime DefaultModTime and, unless
// noted, uid/gid 0 and default modes. The merged root filesystem is:
//
//	bin/ etc/ tmp/(01777)          BusyboxEntries
//	bin/suid                       regular, mode 04755, "suid"
//	data/keep/a                    "a"             (layer 1)
//	data/keep/b                    "b"             (layer 3, dir data/keep merged)
//	data/new.txt                   "new"           (layer 2)
//	opq/upper                      "upper"         (layer 2; opq is opaque)
//	hard/orig, hard/link           one inode, "hardlink content" (layer 1)
//	hard3/orig, hard3/link         one inode, "hard3 content"    (layer 3)
//	links/abs                      symlink -> /bin/busybox
//	links/rel                      symlink -> ../data/keep/a
//	dev/null2                      char device 1:3, mode 0666
//	dev/fifo                       fifo, mode 0644
//	xattr/file                     "xattr", xattr user.condenser=test
//	owned/file                     "owned", uid 1234, gid 5678, mode 0640
//
// and must not contain data/old.txt (whited out by data/.wh.old.txt),
// data/gone and data/gone/x (whited out by data/.wh.gone), opq/lower1 and
// opq/lower2 (hidden by opq/.wh..wh..opq), nor any ".wh." entry.
// MergeLayers(FeatureLayers(t)...) computes this view.
func FeatureImage(t testing.TB) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for _, entries := range FeatureLayers(t) {
		layers = append(layers, Layer(t, entries...))
	}
	return Image(t, nil, layers...)
}

// MergeLayers is a reference model of applying layers in order with the OCI
// whiteout rules: it returns the merged file system keyed by cleaned relative
// path. ".wh.NAME" removes NAME (and everything below it) from lower layers,
// ".wh..wh..opq" removes everything below its directory from lower layers,
// and a non-directory replacing a directory removes the directory's contents.
// Hard links stay TypeLink entries. Names are cleaned for keying only; it is
// meant for well-formed layers, not hostile ones.
func MergeLayers(layers ...[]Entry) map[string]Entry {
	merged := map[string]Entry{}
	removeBelow := func(dir string) {
		for p := range merged {
			if strings.HasPrefix(p, dir+"/") {
				delete(merged, p)
			}
		}
	}
	key := func(name string) string {
		return strings.TrimPrefix(path.Clean("/"+name), "/")
	}
	for _, layer := range layers {
		// Whiteouts apply to lower layers only, so handle them first.
		for _, e := range layer {
			p := key(e.Name)
			dir, base := path.Split(p)
			dir = strings.TrimSuffix(dir, "/")
			switch {
			case base == ".wh..wh..opq":
				removeBelow(dir)
			case strings.HasPrefix(base, ".wh."):
				target := path.Join(dir, strings.TrimPrefix(base, ".wh."))
				delete(merged, target)
				removeBelow(target)
			}
		}
		for _, e := range layer {
			p := key(e.Name)
			if strings.HasPrefix(path.Base(p), ".wh.") {
				continue
			}
			if old, ok := merged[p]; ok && old.Type == tar.TypeDir && e.Type != tar.TypeDir {
				removeBelow(p)
			}
			merged[p] = e
		}
	}
	return merged
}

// MultiArchIndex returns an image index with the Docker manifest list media
// type holding one image per platform, each descriptor carrying its platform.
// Each image has two layers: the busybox layer (shared by all images) and a
// layer with the file etc/platform whose content is platform.String(), e.g.
// "linux/arm64/v8". Its config has the matching os/architecture/variant.
func MultiArchIndex(t testing.TB, platforms ...v1.Platform) v1.ImageIndex {
	t.Helper()
	if len(platforms) == 0 {
		t.Fatal("MultiArchIndex: no platforms given")
	}
	busybox := Layer(t, BusyboxEntries(t)...)
	adds := make([]mutate.IndexAddendum, 0, len(platforms))
	for _, p := range platforms {
		marker := Layer(t, Entry{Name: "etc/platform", Content: []byte(p.String())})
		img := Image(t, &p, busybox, marker)
		adds = append(adds, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	return mutate.AppendManifests(idx, adds...)
}
