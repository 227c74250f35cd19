package imagestore

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/raind/condenser/internal/errdefs"
)

// Export writes the images refs name (any form Inspect accepts) to w as a
// `docker save` tarball: manifest.json, which lists for each image its
// config and layer blobs and the names given, and the blobs under
// blobs/sha256/ as the store keeps them (layers compressed as they were
// distributed; docker load and Import decompress them). An image named by
// ID is written without a name.
func (s *Store) Export(ctx context.Context, w io.Writer, refs []string) error {
	s.acquire() // the blobs stay until the export ends
	defer s.release(ctx)
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	byID := map[string]int{}
	var blobs []v1.Hash
	seen := map[v1.Hash]bool{}
	add := func(d string) (string, error) {
		h, err := v1.NewHash(d)
		if err != nil {
			return "", fmt.Errorf("export: bad digest %q: %w", d, errdefs.ErrDataLoss)
		}
		if !seen[h] {
			seen[h] = true
			blobs = append(blobs, h)
		}
		return path.Join("blobs", h.Algorithm, h.Hex), nil
	}
	for _, ref := range refs {
		img, err := s.Inspect(ctx, ref)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		i, ok := byID[img.ID]
		if !ok {
			e := entry{RepoTags: []string{}}
			if e.Config, err = add(img.ID); err != nil {
				return err
			}
			for _, l := range img.Layers {
				p, err := add(l.Digest)
				if err != nil {
					return err
				}
				e.Layers = append(e.Layers, p)
			}
			i = len(manifest)
			byID[img.ID] = i
			manifest = append(manifest, e)
		}
		// Named by its name (not by ID): the archive keeps the name.
		if r, err := ParseReference(ref); err == nil && r.Digest == "" && img.Name == r.String() {
			manifest[i].RepoTags = append(manifest[i].RepoTags, r.Familiar())
		}
	}
	mb, err := json.Marshal(manifest)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	tw := tar.NewWriter(w)
	now := time.Now()
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: now}); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	for _, h := range blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.exportBlob(tw, h, now); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "manifest.json", Mode: 0o644, Size: int64(len(mb)), ModTime: now}); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := tw.Write(mb); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

func (s *Store) exportBlob(tw *tar.Writer, h v1.Hash, now time.Time) error {
	f, err := os.Open(s.content.path(h))
	if err != nil {
		return fmt.Errorf("export: blob %s: %w: %w", h, errdefs.ErrDataLoss, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("export: blob %s: %w", h, err)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: path.Join("blobs", h.Algorithm, h.Hex), Mode: 0o644, Size: fi.Size(), ModTime: now}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("export: blob %s: %w", h, err)
	}
	return nil
}
