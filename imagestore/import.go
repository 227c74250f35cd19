package imagestore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/raind/condenser/imagestore/archive"
	"github.com/raind/condenser/internal/errdefs"
)

// Annotations naming an image in an OCI image layout.
const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// ImportOptions control Import.
type ImportOptions struct {
	// Repository names images that the archive tags only by tag (an OCI
	// layout's "latest"), e.g. "example.com/app".
	Repository string
	// Platform to take from a multi-platform index (default: the store's).
	Platform *v1.Platform
	// Progress receives per-layer events.
	Progress ProgressFunc
}

// Import stores the images of a `docker save` tarball or of an OCI image
// layout packed as a tar, read from r. Images the archive does not name are
// stored without a name (found by ID).
func (s *Store) Import(ctx context.Context, r io.Reader, o ImportOptions) ([]Image, error) {
	s.acquire()
	defer s.release(ctx)
	// Unpack the archive with the same safe extractor as layers: a hostile
	// archive cannot write outside the temp dir.
	dir, err := os.MkdirTemp(s.content.ingest, "import-")
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer os.RemoveAll(dir)
	if _, err := archive.Extract(ctx, dir, bufio.NewReaderSize(r, 1<<20)); err != nil {
		if localFault(err) {
			return nil, s.storageError(fmt.Errorf("import: %w", err))
		}
		return nil, fmt.Errorf("import: not a docker save or OCI layout tarball: %w", invalid(err))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer root.Close()
	platform := s.opts.Platform
	if o.Platform != nil {
		platform = o.Platform
	}
	imp := &importer{s: s, root: root, rep: newReporter(o.Progress), platform: *platform, repo: o.Repository}
	var imgs []Image
	switch {
	case exists(root, "manifest.json"):
		imgs, err = imp.docker(ctx)
	case exists(root, "index.json"):
		imgs, err = imp.oci(ctx)
	default:
		err = fmt.Errorf("no manifest.json (docker save) or index.json (OCI layout) in the archive: %w", errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, s.storageError(fmt.Errorf("import: %w", err))
	}
	return imgs, nil
}

// invalid marks a tar format error as invalid input (not a failure of the
// store's own disk: that is no fault of the archive).
func invalid(err error) error {
	if errdefs.Kind(err) != nil || errors.Is(err, context.Canceled) || localFault(err) {
		return err
	}
	return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
}

func exists(root *os.Root, name string) bool {
	_, err := root.Stat(name)
	return err == nil
}

type importer struct {
	s        *Store
	root     *os.Root
	rep      *reporter
	platform v1.Platform
	repo     string
}

func (imp *importer) read(name string) ([]byte, error) {
	f, err := imp.root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", name, maxConfigSize, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

func (imp *importer) opener(name string) blobOpener {
	return func(context.Context) (io.ReadCloser, error) {
		f, err := imp.root.Open(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, errdefs.ErrInvalidArgument)
		}
		return f, nil
	}
}

// docker imports a `docker save` archive: manifest.json lists each image's
// config file, tags and layer tars.
func (imp *importer) docker(ctx context.Context) ([]Image, error) {
	raw, err := imp.read("manifest.json")
	if err != nil {
		return nil, err
	}
	var man tarball.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return nil, fmt.Errorf("manifest.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var out []Image
	for _, d := range man {
		cfgRaw, err := imp.read(d.Config)
		if err != nil {
			return nil, err
		}
		cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %w", d.Config, err, errdefs.ErrInvalidArgument)
		}
		// docker save has no manifest: build the one that describes the
		// layer files as they are.
		m := &v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.DockerManifestSchema2,
			Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(cfgRaw)), Digest: digestOf(cfgRaw)},
		}
		files := map[string]string{} // blob digest → file
		for _, lf := range d.Layers {
			desc, err := imp.describeLayer(lf)
			if err != nil {
				return nil, err
			}
			files[desc.Digest.String()] = lf
			m.Layers = append(m.Layers, desc)
		}
		manRaw, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		manDigest := digestOf(manRaw)
		names := d.RepoTags
		if len(names) == 0 {
			names = []string{""}
		}
		for _, n := range names {
			if n != "" {
				ref, err := ParseReference(n)
				if err != nil {
					return nil, err
				}
				n = ref.String()
			}
			img, err := imp.s.storeImage(ctx, n, manDigest, manRaw, manDigest, manRaw, m, cfgRaw, cfg,
				func(_ context.Context, l Layer) blobOpener { return imp.opener(files[l.Digest]) }, imp.rep)
			if err != nil {
				return nil, err
			}
			out = append(out, img)
		}
	}
	return out, nil
}

// describeLayer returns the descriptor of a layer file: its digest, size and
// media type as told by its magic bytes.
func (imp *importer) describeLayer(name string) (v1.Descriptor, error) {
	f, err := imp.root.Open(name)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("layer %s: %w", name, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	h := sha256.New()
	br := bufio.NewReaderSize(f, 64<<10)
	magic, _ := br.Peek(4)
	n, err := io.Copy(h, br)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("layer %s: %w", name, err)
	}
	mt := types.DockerUncompressedLayer
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		mt = types.DockerLayer
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		mt = types.OCILayerZStd
	}
	return v1.Descriptor{MediaType: mt, Size: n, Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}}, nil
}

// oci imports an OCI image layout: index.json names manifests (or nested
// indexes) stored under blobs/<alg>/<hex>.
func (imp *importer) oci(ctx context.Context) ([]Image, error) {
	raw, err := imp.read("index.json")
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("index.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var out []Image
	for _, d := range idx.Manifests {
		name, err := imp.ociName(d)
		if err != nil {
			return nil, err
		}
		img, err := imp.ociImage(ctx, name, d)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("index.json lists no image: %w", errdefs.ErrInvalidArgument)
	}
	return out, nil
}

func (imp *importer) ociName(d v1.Descriptor) (string, error) {
	n := d.Annotations[annotationContainerdName]
	if n == "" {
		n = d.Annotations[annotationRefName]
	}
	if n == "" {
		return "", nil
	}
	if !strings.ContainsAny(n, "/:@") { // a bare tag
		if imp.repo == "" {
			return "", nil
		}
		n = imp.repo + ":" + n
	}
	ref, err := ParseReference(n)
	if err != nil {
		return "", err
	}
	return ref.String(), nil
}

func blobPath(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

func (imp *importer) blob(h v1.Hash) ([]byte, error) {
	b, err := imp.read(blobPath(h))
	if err != nil {
		return nil, err
	}
	if got := digestOf(b); got != h {
		return nil, fmt.Errorf("blob %s: content is %s: %w", h, got, errdefs.ErrDataLoss)
	}
	return b, nil
}

func (imp *importer) ociImage(ctx context.Context, name string, d v1.Descriptor) (Image, error) {
	rootRaw, err := imp.blob(d.Digest)
	if err != nil {
		return Image{}, err
	}
	root, manRaw, manDigest := d.Digest, rootRaw, d.Digest
	if d.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(rootRaw))
		if err != nil {
			return Image{}, fmt.Errorf("index %s: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
		}
		child, err := pickPlatform(idx, imp.platform)
		if err != nil {
			return Image{}, err
		}
		if manRaw, err = imp.blob(child.Digest); err != nil {
			return Image{}, err
		}
		manDigest = child.Digest
	}
	m, err := v1.ParseManifest(bytes.NewReader(manRaw))
	if err != nil {
		return Image{}, fmt.Errorf("manifest %s: %v: %w", manDigest, err, errdefs.ErrInvalidArgument)
	}
	cfgRaw, err := imp.blob(m.Config.Digest)
	if err != nil {
		return Image{}, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return Image{}, fmt.Errorf("config %s: %v: %w", m.Config.Digest, err, errdefs.ErrInvalidArgument)
	}
	return imp.s.storeImage(ctx, name, root, rootRaw, manDigest, manRaw, m, cfgRaw, cfg,
		func(_ context.Context, l Layer) blobOpener {
			h, _ := v1.NewHash(l.Digest)
			return imp.opener(blobPath(h))
		}, imp.rep)
}
