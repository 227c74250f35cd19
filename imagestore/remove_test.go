package imagestore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
)

type users map[string][]string // image ID → containers

func (u users) ImageUsers(_ context.Context, id string) ([]string, error) { return u[id], nil }

func TestRemoveCollectsUnreferenced(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	base := testutil.Layer(t, testutil.BusyboxEntries(t)...)
	a := testutil.Image(t, nil, base, testutil.Layer(t, testutil.Entry{Name: "a", Content: []byte("a")}))
	b := testutil.Image(t, nil, base, testutil.Layer(t, testutil.Entry{Name: "b", Content: []byte("b")}))
	reg.Push(t, reg.Ref("test/a:1"), a)
	reg.Push(t, reg.Ref("test/b:1"), b)
	s := openStore(t, Options{})
	ctx := context.Background()
	imgA, err := s.Pull(ctx, reg.Ref("test/a:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	imgB, err := s.Pull(ctx, reg.Ref("test/b:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A second name for a.
	if _, err := s.Pull(ctx, reg.Ref("test/a:1"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	u, err := s.DiskUsage(ctx)
	if err != nil || u.Images != 2 || u.Layers != imgA.Size+imgB.Size-imgA.Layers[0].Unpacked || u.Blobs <= 0 {
		t.Errorf("disk usage %+v (%v); images %d+%d bytes", u, err, imgA.Size, imgB.Size)
	}

	// In use: refused, unless forced.
	used := users{imgA.ID: {"web"}}
	if _, err := s.Remove(ctx, reg.Ref("test/a:1"), RemoveOptions{Users: used}); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "web") {
		t.Fatalf("remove of an image in use: %v, want a conflict naming the container", err)
	}
	if _, err := s.Inspect(ctx, reg.Ref("test/a:1")); err != nil {
		t.Fatalf("refused removal removed the image: %v", err)
	}
	removed, err := s.Remove(ctx, reg.Ref("test/a:1"), RemoveOptions{Users: used, Force: true})
	if err != nil || len(removed) != 1 {
		t.Fatalf("forced remove: %v %v", removed, err)
	}
	// Forced while in use: the image stays, nameless, with its layers.
	if got, err := s.Inspect(ctx, imgA.ShortID()); err != nil || got.Name != "" {
		t.Fatalf("dangling image: %+v %v", got, err)
	}
	if !s.layers.has(imgA.Layers[1].DiffID) {
		t.Fatal("layers of an image in use were collected")
	}
	// Once unused, removing it by ID collects its own layer and blobs only.
	if _, err := s.Remove(ctx, imgA.ID, RemoveOptions{Users: users{}}); err != nil {
		t.Fatal(err)
	}
	if s.layers.has(imgA.Layers[1].DiffID) || !s.layers.has(imgA.Layers[0].DiffID) || !s.layers.has(imgB.Layers[1].DiffID) {
		t.Error("collection removed the wrong layers")
	}
	if _, err := s.Remove(ctx, "test/b:1", RemoveOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("remove of a docker.io name never pulled: %v, want not found", err)
	}
	if _, err := s.Remove(ctx, reg.Ref("test/b:1"), RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{s.content.blobs, s.layers.dir} {
		if n := countDir(t, d); n != 0 {
			t.Errorf("%s: %d entries left after removing every image", d, n)
		}
	}
	if imgs, _ := s.List(ctx); len(imgs) != 0 {
		t.Errorf("records left: %+v", imgs)
	}
}

func TestInspect(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testutil.StartRegistry(t)
	ref := reg.Ref("test/busybox:1")
	reg.Push(t, ref, testutil.BusyboxImage(t))
	reg.Push(t, reg.Ref("test/busybox:2"), testutil.BusyboxImage(t))
	s := openStore(t, Options{})
	ctx := context.Background()
	img, err := s.Pull(ctx, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(ctx, reg.Ref("test/busybox:2"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	repo := strings.TrimSuffix(ref, ":1")
	for _, q := range []string{ref, img.ID, img.ShortID(), img.ShortID()[:4], strings.TrimPrefix(img.ID, "sha256:"), repo + "@" + img.Digest} {
		got, err := s.Inspect(ctx, q)
		if err != nil || got.ID != img.ID {
			t.Errorf("Inspect(%q) = %s, %v; want %s", q, got.ID, err, img.ID)
		}
	}
	for q, kind := range map[string]error{
		reg.Ref("test/busybox:3"): errdefs.ErrNotFound,
		"ffffffffffff":            errdefs.ErrNotFound,
		"nothing-here":            errdefs.ErrNotFound,
	} {
		if _, err := s.Inspect(ctx, q); !errors.Is(err, kind) {
			t.Errorf("Inspect(%q) = %v, want %v", q, err, kind)
		}
	}
	// Two names of one image: removing by ID needs force.
	if _, err := s.Remove(ctx, img.ShortID(), RemoveOptions{}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("remove by ID of an image with two names: %v, want conflict", err)
	}
	cfg, err := s.Config(ctx, img)
	if err != nil || len(cfg.Config.Cmd) == 0 || cfg.Config.Cmd[0] != "/bin/sh" {
		t.Errorf("config: %+v %v", cfg, err)
	}
}
