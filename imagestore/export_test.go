package imagestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
)

// importFeature stores the feature image as example.com/app:1.
func importFeature(t *testing.T, s *Store) Image {
	t.Helper()
	tag, _ := name.NewTag("example.com/app:1")
	var buf bytes.Buffer
	if err := tarball.Write(tag, testutil.FeatureImage(t), &buf); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.Import(context.Background(), &buf, ImportOptions{})
	if err != nil || len(imgs) != 1 {
		t.Fatalf("import: %v, %v", imgs, err)
	}
	return imgs[0]
}

func TestTag(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	s := openStore(t, Options{})
	img := importFeature(t, s)
	got, err := s.Tag(ctx, "example.com/app:1", "mybox:2")
	if err != nil || got.ID != img.ID || got.Name != "docker.io/library/mybox:2" {
		t.Fatalf("Tag = %+v, %v", got, err)
	}
	if i, err := s.Inspect(ctx, "mybox:2"); err != nil || i.ID != img.ID {
		t.Fatalf("Inspect(mybox:2) = %+v, %v", i, err)
	}
	for _, tc := range []struct{ src, dst string }{
		{"nope", "x:1"},
		{"mybox:2", "x@sha256:" + "0123456789012345678901234567890123456789012345678901234567890123"},
		{"mybox:2", "Bad Name"},
	} {
		if _, err := s.Tag(ctx, tc.src, tc.dst); err == nil {
			t.Errorf("Tag(%s, %s) succeeded", tc.src, tc.dst)
		}
	}
	if _, err := s.Tag(ctx, "nope", "x:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Tag of an unknown image: %v", err)
	}
	// Untagging one name keeps the image.
	if _, err := s.Remove(ctx, "mybox:2", RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Inspect(ctx, img.ID); err != nil {
		t.Fatalf("image gone with one of its names: %v", err)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	s := openStore(t, Options{})
	img := importFeature(t, s)
	var buf bytes.Buffer
	if err := s.Export(ctx, &buf, []string{"example.com/app:1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Export(ctx, &bytes.Buffer{}, []string{"nope"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Export of an unknown image: %v", err)
	}
	// The archive is one go-containerregistry reads as docker save's.
	tag, _ := name.NewTag("example.com/app:1")
	raw := buf.Bytes()
	ti, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if cn, err := ti.ConfigName(); err != nil || cn.String() != img.ID {
		t.Fatalf("archive config %v, %v; want %s", cn, err, img.ID)
	}
	// And the store imports it again, into another store, as it was.
	s2 := openStore(t, Options{})
	imgs, err := s2.Import(ctx, bytes.NewReader(raw), ImportOptions{})
	if err != nil || len(imgs) != 1 || imgs[0].ID != img.ID || imgs[0].Name != img.Name || len(imgs[0].Layers) != len(img.Layers) {
		t.Fatalf("reimport = %+v, %v", imgs, err)
	}
	checkMerged(t, mountLayers(t, s2.LayerDirs(imgs[0])), testutil.MergeLayers(testutil.FeatureLayers(t)...))
}
