package volumes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"data", true},
		{"my_vol.1-a", true},
		{"a", false}, // Docker's rule wants two characters at least
		{"", false},
		{"-x", false},
		{".x", false},
		{"a/b", false},
		{"..", false},
		{"a b", false},
		{string(make([]byte, 300)), false},
	} {
		if err := ValidName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		} else if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ValidName(%q): kind of %v", tc.name, err)
		}
	}
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "volumes")
	s := New(root)
	if vs, err := s.List(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("List of a new store = %v, %v", vs, err)
	}
	v, err := s.Create(ctx, "data", map[string]string{"a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Mountpoint != filepath.Join(root, "data", "_data") || v.Labels["a"] != "b" || v.CreatedAt.IsZero() {
		t.Fatalf("created %+v", v)
	}
	if fi, err := os.Stat(v.Mountpoint); err != nil || !fi.IsDir() {
		t.Fatalf("mountpoint: %v", err)
	}
	// A second create returns the volume as it is.
	again, err := s.Create(ctx, "data", map[string]string{"c": "d"})
	if err != nil || again.Labels["a"] != "b" || again.Labels["c"] != "" {
		t.Fatalf("create again = %+v, %v", again, err)
	}
	anon, err := s.Create(ctx, "", nil)
	if err != nil || len(anon.Name) != 64 {
		t.Fatalf("anonymous = %+v, %v", anon, err)
	}
	if _, err := s.Create(ctx, "bad/name", nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad name: %v", err)
	}
	// A directory without metadata (a creation cut short) is not listed.
	if err := os.MkdirAll(filepath.Join(root, "partial", "_data"), 0o755); err != nil {
		t.Fatal(err)
	}
	vs, err := s.List(ctx)
	if err != nil || len(vs) != 2 {
		t.Fatalf("List = %+v, %v", vs, err)
	}
	if err := os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Size(ctx, "data"); err != nil || n != 5 {
		t.Fatalf("Size = %d, %v", n, err)
	}
	got, err := s.Get(ctx, "data")
	if err != nil || got.Name != "data" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	for _, name := range []string{"nope", "../x", "partial"} {
		if _, err := s.Get(ctx, name); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Get(%q): %v", name, err)
		}
		if err := s.Remove(ctx, name); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Remove(%q): %v", name, err)
		}
	}
	if err := s.Remove(ctx, "data"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "data")); !os.IsNotExist(err) {
		t.Fatalf("data left: %v", err)
	}
	if _, err := s.Get(ctx, "data"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"data", "a", "../..", "x/y", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		// A valid name is one path element inside the root.
		if filepath.Base(name) != name || name == "." || name == ".." || filepath.Clean(name) != name {
			t.Fatalf("valid name %q is not one path element", name)
		}
	})
}
