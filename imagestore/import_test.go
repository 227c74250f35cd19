package imagestore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
)

func TestImportDockerSave(t *testing.T) {
	testutil.RequireRoot(t)
	img := testutil.FeatureImage(t)
	tag, _ := name.NewTag("example.com/app:1")
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, Options{})
	var ev events
	imgs, err := s.Import(context.Background(), &buf, ImportOptions{Progress: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "example.com/app:1" || len(imgs[0].Layers) != 3 {
		t.Fatalf("imported %+v", imgs)
	}
	cfg, _ := img.ConfigName()
	if imgs[0].ID != cfg.String() {
		t.Errorf("ID %s, want the config digest %s", imgs[0].ID, cfg)
	}
	if len(ev.statuses(imgs[0].Layers[0].Digest)) == 0 {
		t.Error("no progress reported")
	}
	checkMerged(t, mountLayers(t, s.LayerDirs(imgs[0])), testutil.MergeLayers(testutil.FeatureLayers(t)...))
	checkClean(t, s)
}

func TestImportOCILayout(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	idx := testutil.MultiArchIndex(t, v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationRefName: "2"})); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(testutil.BusyboxImage(t), layout.WithAnnotations(map[string]string{annotationRefName: "example.com/busybox:1"})); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, Options{})
	imgs, err := s.Import(context.Background(), bytes.NewReader(tarDir(t, dir)), ImportOptions{
		Repository: "example.com/multi",
		Platform:   &v1.Platform{OS: "linux", Architecture: "arm64"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || imgs[0].Name != "example.com/multi:2" || imgs[0].Platform.String() != "linux/arm64/v8" || imgs[1].Name != "example.com/busybox:1" {
		t.Fatalf("imported %+v", imgs)
	}
	dirs := s.LayerDirs(imgs[0])
	if b, err := os.ReadFile(filepath.Join(dirs[len(dirs)-1], "etc/platform")); err != nil || string(b) != "linux/arm64/v8" {
		t.Errorf("etc/platform = %q, %v", b, err)
	}
	checkClean(t, s)
}

func TestImportRejectsGarbage(t *testing.T) {
	testutil.RequireRoot(t)
	s := openStore(t, Options{})
	for name, data := range map[string][]byte{
		"not a tar":    []byte("hello"),
		"no manifest":  testutil.Tar(t, testutil.Entry{Name: "x", Content: []byte("x")}),
		"escaping":     testutil.Tar(t, testutil.Entry{Name: "../x", Content: []byte("x")}),
		"bad manifest": testutil.Tar(t, testutil.Entry{Name: "manifest.json", Content: []byte(`[{"Config":"../../etc/passwd"}]`)}),
	} {
		if _, err := s.Import(context.Background(), bytes.NewReader(data), ImportOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	checkClean(t, s)
}

// tarDir packs a directory as a tar stream.
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}
