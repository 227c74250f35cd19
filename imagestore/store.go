// Package imagestore is Condenser's image store: it pulls images from
// Docker/OCI registries into a content-addressed blob store, unpacks their
// layers for overlayfs, keeps image metadata in bbolt, and removes what no
// image references any more.
//
// On disk, under the root:
//
//	meta.db                      bbolt: image records by name
//	content/blobs/sha256/<hex>   manifests, indexes, configs, layer blobs
//	content/ingest/              partial blobs, never visible as blobs
//	layers/sha256/<diffid>/      unpacked layers, whiteouts in overlayfs form
//	layers/tmp/                  layers being unpacked (chattr +T: see spreadDirs)
//
// A blob or layer becomes visible only by an atomic rename after it has been
// verified, and an image only by its bbolt record, written last; whatever a
// crash leaves unreferenced is removed when the store is opened.
package imagestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/raind/condenser/internal/errdefs"
)

var bucketImages = []byte("images")

// Options configure a Store.
type Options struct {
	// Root is the store's directory, e.g. /var/lib/condenser.
	Root string
	// Mirrors maps a registry ("docker.io") to mirror endpoints
	// ("http://127.0.0.1:5000"), tried in order before the registry itself.
	Mirrors map[string][]string
	// Insecure lists registries (host[:port]) reached over plain HTTP.
	Insecure []string
	// Platform is the default platform for pulls; the host's when nil.
	Platform *v1.Platform
	// Downloads bounds concurrent layer downloads of one pull (default 3).
	Downloads int
	// Keychain provides registry credentials (default: Docker's config.json).
	Keychain authn.Keychain
	// Transport is the base HTTP transport (default: a clone of
	// http.DefaultTransport).
	Transport http.RoundTripper
	// UserAgent is sent to registries.
	UserAgent string
	// Logger receives the store's logs (default: slog.Default()).
	Logger *slog.Logger
}

// Store is an image store. It is safe for concurrent use; one process owns a
// root at a time (the second Open waits for the bbolt file lock and fails).
type Store struct {
	root    string
	db      *bolt.DB
	content *content
	layers  *layerStore
	reg     *registries
	opts    Options
	log     *slog.Logger

	// gc excludes garbage collection (writer) from pulls and imports
	// (readers) so that nothing a pull is about to reference is collected.
	gc        sync.RWMutex
	gcMu      sync.Mutex
	gcPending bool
}

// Open opens (creating if needed) the store at opts.Root and removes what an
// earlier crash left behind: partial downloads, half-unpacked layers, and
// blobs and layers that no image references.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Root == "" {
		return nil, fmt.Errorf("image store: no root directory: %w", errdefs.ErrInvalidArgument)
	}
	if opts.Downloads <= 0 {
		opts.Downloads = 3
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Platform == nil {
		p := HostPlatform()
		opts.Platform = &p
	}
	reg, err := newRegistries(opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Root, 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	c, err := newContent(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	ls, err := newLayerStore(opts.Root, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(opts.Root, "meta.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("image store: open %s: %w", filepath.Join(opts.Root, "meta.db"), err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketImages)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("image store: %w", err)
	}
	s := &Store{root: opts.Root, db: db, content: c, layers: ls, reg: reg, opts: opts, log: opts.Logger}
	if _, err := s.GC(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the metadata database.
func (s *Store) Close() error { return s.db.Close() }

// HostPlatform is the platform of this machine, as image indexes name it.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// Platform is an image's platform.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Layer is one layer of an image.
type Layer struct {
	Digest    string `json:"digest"`    // of the blob as distributed
	DiffID    string `json:"diffID"`    // of the uncompressed tar
	MediaType string `json:"mediaType"` // of the blob
	Size      int64  `json:"size"`      // of the blob
	Unpacked  int64  `json:"unpacked"`  // bytes of file content unpacked
}

// Image is the record of one image name.
type Image struct {
	Name      string    `json:"name"`      // canonical reference, docker.io/library/alpine:latest; "" once untagged while in use
	ID        string    `json:"id"`        // config digest
	Digest    string    `json:"digest"`    // what the name resolved to at the registry (index or manifest)
	Manifest  string    `json:"manifest"`  // image manifest digest
	MediaType string    `json:"mediaType"` // of the manifest
	Platform  Platform  `json:"platform"`
	Layers    []Layer   `json:"layers"` // bottom first
	Size      int64     `json:"size"`   // unpacked bytes of all layers
	Created   time.Time `json:"created"`
	Stored    time.Time `json:"stored"`
}

// Reference returns the parsed Name.
func (i Image) Reference() Reference {
	r, _ := ParseReference(i.Name) // records hold canonical names
	return r
}

// ShortID is the first 12 hex digits of the ID, as Docker prints it.
func (i Image) ShortID() string {
	h := strings.TrimPrefix(i.ID, "sha256:")
	return h[:min(12, len(h))]
}

// List returns every image record, sorted by name.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	var out []Image
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(_, v []byte) error {
			var img Image
			if err := json.Unmarshal(v, &img); err != nil {
				return err
			}
			out = append(out, img)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Inspect finds one image by name (any form Docker accepts), by ID or ID
// prefix (with or without "sha256:"), or by digest. Several names of one
// image are the same image: a name resolves to its own record.
func (s *Store) Inspect(ctx context.Context, ref string) (Image, error) {
	imgs, err := s.resolve(ctx, ref)
	if err != nil {
		return Image{}, err
	}
	return imgs[0], nil
}

// resolve returns the records ref designates: the one record of a name, or
// every name of the image an ID or digest designates.
func (s *Store) resolve(ctx context.Context, ref string) ([]Image, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	if r, perr := ParseReference(ref); perr == nil {
		for _, img := range all {
			if img.Name == r.String() {
				return []Image{img}, nil
			}
		}
		if r.Digest != "" { // repo@digest of an image pulled by tag
			var match []Image
			for _, img := range all {
				if img.Reference().Repository() == r.Repository() && (img.Digest == r.Digest || img.Manifest == r.Digest) {
					match = append(match, img)
				}
			}
			if len(match) > 0 {
				return match, nil
			}
		}
	}
	hex := strings.TrimPrefix(ref, "sha256:")
	if len(hex) >= 4 && isHex(hex) {
		ids := map[string]bool{}
		var match []Image
		for _, img := range all {
			for _, d := range []string{img.ID, img.Digest, img.Manifest} {
				if strings.HasPrefix(strings.TrimPrefix(d, "sha256:"), hex) {
					match = append(match, img)
					ids[img.ID] = true
					break
				}
			}
		}
		if len(ids) > 1 {
			return nil, fmt.Errorf("image %q: ambiguous, matches %d images: %w", ref, len(ids), errdefs.ErrInvalidArgument)
		}
		if len(match) > 0 {
			return match, nil
		}
	}
	return nil, fmt.Errorf("no such image: %s: %w", ref, errdefs.ErrNotFound)
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// UsageChecker tells which containers use an image. The store's caller
// provides it; the store knows nothing of containers.
type UsageChecker interface {
	ImageUsers(ctx context.Context, imageID string) ([]string, error)
}

// RemoveOptions control Remove.
type RemoveOptions struct {
	// Force removes every name of an image given by ID, and removes an image
	// that containers use (they keep their already-mounted layers until
	// they are deleted, as with Docker).
	Force bool
	// Users, when set, is asked before the last name of an image goes.
	Users UsageChecker
}

// Remove untags ref. When no name of the image remains, its blobs and
// layers that no other image references are removed. It returns the names
// removed.
func (s *Store) Remove(ctx context.Context, ref string, opts RemoveOptions) ([]string, error) {
	imgs, err := s.resolve(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("remove image: %w", err)
	}
	if len(imgs) > 1 && !opts.Force {
		names := make([]string, len(imgs))
		for i, img := range imgs {
			names[i] = img.Reference().Familiar()
		}
		return nil, fmt.Errorf("remove image %s: referenced by several names (%s); remove them by name or force: %w",
			ref, strings.Join(names, ", "), errdefs.ErrConflict)
	}
	id := imgs[0].ID
	var removed []string
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		for _, img := range imgs {
			if err := b.Delete(img.key()); err != nil {
				return err
			}
			if img.Name != "" {
				removed = append(removed, img.Name)
			}
		}
		last := true
		err := b.ForEach(func(_, v []byte) error {
			var other Image
			if err := json.Unmarshal(v, &other); err != nil {
				return err
			}
			last = last && other.ID != id
			return nil
		})
		if err != nil || !last || opts.Users == nil {
			return err
		}
		// The last name goes: the image must not be in use.
		users, err := opts.Users.ImageUsers(ctx, id)
		if err != nil || len(users) == 0 {
			return err
		}
		if !opts.Force {
			return fmt.Errorf("image is in use by container %s (remove it first, or force): %w",
				strings.Join(users, ", "), errdefs.ErrConflict)
		}
		// Forced: the image stays, nameless, for the containers that
		// use it, like Docker's dangling images.
		img := imgs[0]
		img.Name = ""
		v, err := json.Marshal(img)
		if err != nil {
			return err
		}
		return b.Put(img.key(), v)
	})
	if err != nil {
		return nil, fmt.Errorf("remove image %s: %w", ref, err)
	}
	if _, err := s.tryGC(ctx); err != nil {
		s.log.Warn("garbage collection after image removal", "error", err)
	}
	return removed, nil
}

func (s *Store) put(img Image) error {
	v, err := json.Marshal(img)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).Put(img.key(), v)
	})
}

// key is the record's bbolt key: its name, or its ID once it has none.
func (i Image) key() []byte {
	if i.Name == "" {
		return []byte(i.ID)
	}
	return []byte(i.Name)
}

// LayerDirs returns the unpacked layer directories of img, bottom first.
func (s *Store) LayerDirs(img Image) []string {
	dirs := make([]string, len(img.Layers))
	for i, l := range img.Layers {
		dirs[i] = s.layers.path(l.DiffID)
	}
	return dirs
}

// Config returns the image's configuration (the OCI image config).
func (s *Store) Config(ctx context.Context, img Image) (*v1.ConfigFile, error) {
	h, err := v1.NewHash(img.ID)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Name, err)
	}
	b, err := s.content.read(h)
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.Name, err)
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.Name, err)
	}
	return &cfg, nil
}

// Usage is the store's disk usage.
type Usage struct {
	Images int   `json:"images"`
	Blobs  int64 `json:"blobs"`  // bytes of stored blobs
	Layers int64 `json:"layers"` // bytes of unpacked file content
	Total  int64 `json:"total"`
}

// DiskUsage adds up the blobs and unpacked layers of the store.
func (s *Store) DiskUsage(ctx context.Context) (Usage, error) {
	imgs, err := s.List(ctx)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Images: len(imgs)}
	layers := map[string]bool{}
	for _, img := range imgs {
		for _, l := range img.Layers {
			if !layers[l.DiffID] {
				layers[l.DiffID] = true
				u.Layers += l.Unpacked
			}
		}
	}
	ents, err := os.ReadDir(s.content.blobs)
	if err != nil {
		return Usage{}, err
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			u.Blobs += fi.Size()
		}
	}
	u.Total = u.Blobs + u.Layers
	return u, nil
}

// GCStats says what a garbage collection removed.
type GCStats struct {
	Blobs, Layers, Temps int
}

// tryGC collects garbage now, or, when a pull or import is running, marks it
// pending for when the last one ends.
func (s *Store) tryGC(ctx context.Context) (GCStats, error) {
	if !s.gc.TryLock() {
		s.gcMu.Lock()
		s.gcPending = true
		s.gcMu.Unlock()
		return GCStats{}, nil
	}
	defer s.gc.Unlock()
	return s.collect(ctx)
}

// GC removes temp files, and blobs and layers no image references. It waits
// for running pulls and imports.
func (s *Store) GC(ctx context.Context) (GCStats, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	return s.collect(ctx)
}

// acquire marks a pull or import as running; release ends it and runs a
// garbage collection that was requested meanwhile.
func (s *Store) acquire() { s.gc.RLock() }

func (s *Store) release(ctx context.Context) {
	s.gc.RUnlock()
	s.gcMu.Lock()
	pending := s.gcPending
	s.gcMu.Unlock()
	if !pending || !s.gc.TryLock() {
		return
	}
	defer s.gc.Unlock()
	s.gcMu.Lock()
	s.gcPending = false
	s.gcMu.Unlock()
	if _, err := s.collect(context.WithoutCancel(ctx)); err != nil {
		s.log.Warn("deferred garbage collection", "error", err)
	}
}

// collect is GC with s.gc held for writing.
func (s *Store) collect(ctx context.Context) (GCStats, error) {
	var st GCStats
	imgs, err := s.List(ctx)
	if err != nil {
		return st, err
	}
	blobs := map[string]bool{}
	layers := map[string]bool{}
	for _, img := range imgs {
		for _, d := range []string{img.ID, img.Digest, img.Manifest} {
			blobs[strings.TrimPrefix(d, "sha256:")] = true
		}
		for _, l := range img.Layers {
			blobs[strings.TrimPrefix(l.Digest, "sha256:")] = true
			layers[strings.TrimPrefix(l.DiffID, "sha256:")] = true
		}
	}
	var errs []error
	sweep := func(dir string, keep map[string]bool, count *int) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			return
		}
		for _, e := range ents {
			if keep != nil && keep[e.Name()] {
				continue
			}
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
				continue
			}
			*count++
		}
	}
	sweep(s.content.ingest, nil, &st.Temps)
	sweep(s.layers.tmp, nil, &st.Temps)
	sweep(s.content.blobs, blobs, &st.Blobs)
	sweep(s.layers.dir, layers, &st.Layers)
	if st != (GCStats{}) {
		s.log.Info("image store garbage collected", "blobs", st.Blobs, "layers", st.Layers, "temps", st.Temps)
	}
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("image store garbage collection: %w", err)
	}
	return st, nil
}
