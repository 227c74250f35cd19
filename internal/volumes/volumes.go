// Package volumes is the store of named volumes: one directory per volume
// under the store's root, bind-mounted into the containers that name it.
//
// On disk, under the root (<daemon root>/volumes, as Docker's local
// driver lays it out):
//
//	<name>/_data        the volume's content, what containers see
//	<name>/volume.json  its metadata (labels, creation time), written
//	                    atomically and last: a directory without it is a
//	                    volume whose creation did not finish, and is not
//	                    listed (Create completes it)
//
// Names follow Docker's rule, [a-zA-Z0-9][a-zA-Z0-9_.-]+; an anonymous
// volume gets 64 random hex digits.
package volumes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/raind/condenser/internal/atomicfile"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

// Volume is a named volume.
type Volume struct {
	Name       string
	Mountpoint string // the directory bind-mounted into containers
	CreatedAt  time.Time
	Labels     map[string]string
}

// maxNameLength bounds a name: it is one path element.
const maxNameLength = 255

// validName is Docker's rule for volume names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidName checks a volume name.
func ValidName(name string) error {
	if len(name) > maxNameLength || !validName.MatchString(name) {
		return fmt.Errorf("volume name %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed: %w",
			name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// NewName returns a name for an anonymous volume: 64 random hex digits, as
// Docker's.
func NewName() string { return names.NewID() }

// metadata is volume.json.
type metadata struct {
	CreatedAt time.Time         `json:"createdAt"`
	Labels    map[string]string `json:"labels,omitempty"`
}

const metaFile = "volume.json"

// Store is the volume store. It is safe for concurrent use; one daemon
// owns a root.
type Store struct {
	root string
	mu   sync.Mutex // orders creations and removals of one store
}

// New returns the store under root, created on first use.
func New(root string) *Store { return &Store{root: root} }

func (s *Store) dir(name string) string { return filepath.Join(s.root, name) }

// Create creates the volume name, or returns it as it is when it exists
// (docker run -v name:/dir creates it on first use). An empty name makes an
// anonymous volume.
func (s *Store) Create(ctx context.Context, name string, labels map[string]string) (Volume, error) {
	if name == "" {
		name = NewName()
	}
	if err := ValidName(name); err != nil {
		return Volume{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, err := s.get(name); err == nil || !errors.Is(err, errdefs.ErrNotFound) {
		return v, err
	}
	dir := s.dir(name)
	// Containers run as any user: the volume's root is open like Docker's.
	if err := os.MkdirAll(filepath.Join(dir, "_data"), 0o755); err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	m := metadata{CreatedAt: time.Now().UTC().Truncate(time.Second), Labels: maps.Clone(labels)}
	b, err := json.Marshal(m)
	if err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, metaFile), b, 0o600, true); err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	return s.volume(name, m), nil
}

// Get returns the volume name; an unknown one is errdefs.ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (Volume, error) {
	if ValidName(name) != nil {
		return Volume{}, fmt.Errorf("get volume %s: %w", name, errdefs.ErrNotFound)
	}
	return s.get(name)
}

func (s *Store) get(name string) (Volume, error) {
	b, err := os.ReadFile(filepath.Join(s.dir(name), metaFile))
	if errors.Is(err, os.ErrNotExist) {
		return Volume{}, fmt.Errorf("get volume %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return Volume{}, fmt.Errorf("get volume %s: %w", name, err)
	}
	var m metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return Volume{}, fmt.Errorf("volume %s: its metadata: %w: %w", name, errdefs.ErrDataLoss, err)
	}
	return s.volume(name, m), nil
}

func (s *Store) volume(name string, m metadata) Volume {
	return Volume{Name: name, Mountpoint: filepath.Join(s.dir(name), "_data"), CreatedAt: m.CreatedAt, Labels: m.Labels}
}

// List returns the volumes, sorted by name.
func (s *Store) List(ctx context.Context) ([]Volume, error) {
	ents, err := os.ReadDir(s.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []Volume
	for _, e := range ents {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		v, err := s.get(e.Name())
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // a creation that did not finish
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Volume) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

// Remove removes the volume name and its data; an unknown one is
// errdefs.ErrNotFound. Whether a container uses it is the caller's check.
func (s *Store) Remove(ctx context.Context, name string) error {
	if ValidName(name) != nil {
		return fmt.Errorf("remove volume %s: %w", name, errdefs.ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.dir(name)
	// The metadata goes first: a removal that fails half way leaves no
	// listed volume with half its data.
	if err := os.Remove(filepath.Join(dir, metaFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove volume %s: %w", name, errdefs.ErrNotFound)
		}
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// Size returns the bytes of the files in the volume (for docker system
// df); an unreadable file is skipped.
func (s *Store) Size(ctx context.Context, name string) (int64, error) {
	if ValidName(name) != nil {
		return 0, fmt.Errorf("volume %s: %w", name, errdefs.ErrNotFound)
	}
	var n int64
	err := filepath.WalkDir(filepath.Join(s.dir(name), "_data"), func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}
