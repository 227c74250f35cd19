package imagestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/raind/condenser/imagestore/archive"
	"github.com/raind/condenser/internal/errdefs"
)

// maxConfigSize bounds an image config read into memory.
const maxConfigSize = 8 << 20

// PullOptions control Pull.
type PullOptions struct {
	// Platform to pull from a multi-platform index; the store's default
	// (the host's) when nil. When set, a single-platform image of another
	// platform is refused.
	Platform *v1.Platform
	// Progress receives per-layer events.
	Progress ProgressFunc
}

// Pull fetches ref from its registry (its mirrors first) and stores and
// unpacks it. Layers already present are not fetched again; concurrent pulls
// of the same layers fetch each once.
func (s *Store) Pull(ctx context.Context, ref string, o PullOptions) (Image, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return Image{}, fmt.Errorf("pull: %w", err)
	}
	platform := s.opts.Platform
	if o.Platform != nil {
		platform = o.Platform
	}
	eps, err := s.reg.endpoints(r)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", r, err)
	}
	s.acquire()
	defer s.release(ctx)
	rep := newReporter(o.Progress)
	img, err := s.pullEndpoints(ctx, r, eps, platform, o.Platform != nil, rep)
	return img, s.storageError(err)
}

// localFault reports whether err is this host's storage failing (full,
// over quota, read-only, I/O error) rather than the registry or the
// network: another mirror cannot help with it.
func localFault(err error) bool {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// storageError gives a full disk (or a quota reached) under the store its
// kind, errdefs.ErrResourceExhausted, and says so: it is neither the
// request's fault nor the registry's, and the user can free space and
// retry. Other errors are returned as they are.
func (s *Store) storageError(err error) error {
	if err == nil || errors.Is(err, errdefs.ErrResourceExhausted) ||
		!errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
		return err
	}
	return fmt.Errorf("the image store (%s) is out of disk space: free some and retry: %w: %w", s.root, errdefs.ErrResourceExhausted, err)
}

func (s *Store) pullEndpoints(ctx context.Context, r Reference, eps []endpoint, platform *v1.Platform, strict bool, rep *reporter) (Image, error) {
	var tried []string
	for _, ep := range eps {
		img, err := s.pullFrom(ctx, r, ep, platform, strict, rep)
		if err == nil {
			return img, nil
		}
		// A local fault (the store's disk full, read-only or failing) is
		// the same whatever the endpoint: stop here and say it, rather
		// than try the next one and report its unrelated failure.
		if ctx.Err() != nil || errors.Is(err, archive.ErrUnsafe) || localFault(err) || len(tried) == len(eps)-1 {
			if len(tried) > 0 {
				return Image{}, fmt.Errorf("pull %s: %w (before: %s)", r, err, strings.Join(tried, "; "))
			}
			return Image{}, fmt.Errorf("pull %s: %w", r, err)
		}
		s.log.Info("registry mirror failed, trying the next endpoint", "ref", r.String(), "endpoint", ep.String(), "error", err)
		tried = append(tried, ep.String()+": "+err.Error())
	}
	panic("unreachable")
}

func (s *Store) pullFrom(ctx context.Context, r Reference, ep endpoint, platform *v1.Platform, strict bool, rep *reporter) (Image, error) {
	sess, err := s.reg.dial(ctx, ep)
	if err != nil {
		return Image{}, fmt.Errorf("%s: %w", ep, err)
	}
	var epRef name.Reference = ep.repo.Tag(r.Tag)
	if r.Digest != "" {
		epRef = ep.repo.Digest(r.Digest)
	}
	desc, err := remote.Get(epRef, sess.opts...)
	if err != nil {
		return Image{}, fmt.Errorf("image %s not found in %s: %w", r.Familiar(), ep, classify(err))
	}
	root := desc
	if desc.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			return Image{}, fmt.Errorf("index %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		child, err := pickPlatform(idx, *platform)
		if err != nil {
			return Image{}, err
		}
		if desc, err = remote.Get(ep.repo.Digest(child.Digest.String()), sess.opts...); err != nil {
			return Image{}, fmt.Errorf("manifest %s for %s in %s: %w", child.Digest, platform.String(), ep, classify(err))
		}
	}
	if !desc.MediaType.IsImage() {
		if desc.MediaType.IsSchema1() {
			return Image{}, fmt.Errorf("%s: Docker schema 1 manifests are not supported (push the image again with a current client): %w", desc.MediaType, errdefs.ErrInvalidArgument)
		}
		return Image{}, fmt.Errorf("unsupported manifest media type %q: %w", desc.MediaType, errdefs.ErrInvalidArgument)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return Image{}, fmt.Errorf("manifest %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	cfgRaw, err := s.fetchSmall(ctx, m.Config.Digest, func(ctx context.Context) (io.ReadCloser, error) {
		return sess.blob(ctx, m.Config.Digest.String())
	})
	if err != nil {
		return Image{}, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return Image{}, fmt.Errorf("config %s: %v: %w", m.Config.Digest, err, errdefs.ErrInvalidArgument)
	}
	if have := (Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}); !platformMatches(cfg.Platform(), *platform) {
		if strict {
			return Image{}, fmt.Errorf("image %s is for %s, not %s: %w", r.Familiar(), have, platform.String(), errdefs.ErrNotFound)
		}
		s.log.Warn("image platform differs from the host's", "ref", r.String(), "image", have, "host", platform.String())
	}
	img, err := s.storeImage(ctx, r.String(), root.Digest, root.Manifest, desc.Digest, desc.Manifest, m, cfgRaw, cfg, func(ctx context.Context, l Layer) blobOpener {
		return func(ctx context.Context) (io.ReadCloser, error) { return sess.blob(ctx, l.Digest) }
	}, rep)
	if err != nil {
		return Image{}, err
	}
	return img, nil
}

// fetchSmall returns a small blob from the content store, or fetches,
// verifies and stores it.
func (s *Store) fetchSmall(ctx context.Context, h v1.Hash, open blobOpener) ([]byte, error) {
	if b, err := s.content.read(h); err == nil {
		return b, nil
	}
	rc, err := open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return nil, classify(err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("larger than %d bytes: %w", maxConfigSize, errdefs.ErrInvalidArgument)
	}
	if err := s.content.put(h, b); err != nil {
		return nil, err
	}
	return b, nil
}

// storeImage stores the manifests and config, makes every layer present
// (opening blobs with open when needed), and commits the image record.
func (s *Store) storeImage(ctx context.Context, nameStr string, rootDigest v1.Hash, rootRaw []byte, manDigest v1.Hash, manRaw []byte,
	m *v1.Manifest, cfgRaw []byte, cfg *v1.ConfigFile, open func(context.Context, Layer) blobOpener, rep *reporter) (Image, error) {
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return Image{}, fmt.Errorf("manifest %s has %d layers but its config %d diffIDs: %w", manDigest, len(m.Layers), len(cfg.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
	}
	if err := s.content.put(m.Config.Digest, cfgRaw); err != nil {
		return Image{}, fmt.Errorf("config: %w", err)
	}
	if err := s.content.put(manDigest, manRaw); err != nil {
		return Image{}, fmt.Errorf("manifest: %w", err)
	}
	if rootDigest != manDigest {
		if err := s.content.put(rootDigest, rootRaw); err != nil {
			return Image{}, fmt.Errorf("index: %w", err)
		}
	}
	if nameStr == "" { // a nameless import of an image the store has: nothing to add
		if imgs, err := s.resolve(ctx, m.Config.Digest.String()); err == nil {
			return imgs[0], nil
		}
	}
	layers := make([]Layer, len(m.Layers))
	for i, ld := range m.Layers {
		if !isLayerType(ld.MediaType) {
			return Image{}, fmt.Errorf("layer %s: unsupported media type %q: %w", ld.Digest, ld.MediaType, errdefs.ErrInvalidArgument)
		}
		layers[i] = Layer{Digest: ld.Digest.String(), DiffID: cfg.RootFS.DiffIDs[i].String(), MediaType: string(ld.MediaType), Size: ld.Size}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Downloads)
	for i := range layers {
		g.Go(func() error {
			n, err := s.ensureLayer(gctx, layers[i], open(gctx, layers[i]), rep)
			layers[i].Unpacked = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Image{}, err
	}
	img := Image{
		Name:      nameStr,
		ID:        m.Config.Digest.String(),
		Digest:    rootDigest.String(),
		Manifest:  manDigest.String(),
		MediaType: string(m.MediaType),
		Platform:  Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant},
		Layers:    layers,
		Created:   cfg.Created.Time,
		Stored:    time.Now().UTC(),
	}
	if img.MediaType == "" {
		img.MediaType = string(types.OCIManifestSchema1)
	}
	if err := s.fillSizes(ctx, &img); err != nil {
		return Image{}, err
	}
	if err := s.put(img); err != nil {
		return Image{}, fmt.Errorf("record image: %w", err)
	}
	return img, nil
}

// fillSizes sets the unpacked size of layers that were already present,
// from another record or, failing that, by walking the layer.
func (s *Store) fillSizes(ctx context.Context, img *Image) error {
	var known map[string]int64
	for i, l := range img.Layers {
		if l.Unpacked >= 0 {
			img.Size += l.Unpacked
			continue
		}
		if known == nil {
			all, err := s.List(ctx)
			if err != nil {
				return err
			}
			known = map[string]int64{}
			for _, o := range all {
				for _, ol := range o.Layers {
					known[ol.DiffID] = ol.Unpacked
				}
			}
		}
		n, ok := known[l.DiffID]
		if !ok {
			var err error
			if n, err = dirSize(s.layers.path(l.DiffID)); err != nil {
				return err
			}
		}
		img.Layers[i].Unpacked = n
		img.Size += n
	}
	return nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	return n, err
}

func isLayerType(mt types.MediaType) bool {
	switch mt {
	case types.DockerLayer, types.DockerUncompressedLayer, types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer,
		types.DockerForeignLayer, types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer:
		return true
	}
	return false
}

// pickPlatform chooses the index entry for want, or says which platforms
// the index offers.
func pickPlatform(idx *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	var avail []string
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" || !d.MediaType.IsImage() {
			continue // attestations and the like
		}
		if platformMatches(d.Platform, want) {
			return d, nil
		}
		avail = append(avail, (d.Platform).String())
	}
	if len(avail) == 0 {
		avail = []string{"none"}
	}
	return v1.Descriptor{}, fmt.Errorf("no image for platform %s in the index (available: %s): %w",
		want.String(), strings.Join(avail, ", "), errdefs.ErrNotFound)
}

func platformMatches(have *v1.Platform, want v1.Platform) bool {
	if have == nil || have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	hv, wv := normVariant(have.Architecture, have.Variant), normVariant(want.Architecture, want.Variant)
	return wv == "" || hv == wv
}

func normVariant(arch, v string) string {
	if arch == "arm64" && v == "v8" {
		return ""
	}
	return v
}
