package docker

import (
	"context"
	"net/http"
	"time"
)

// Volumes is the store of named volumes: directories under the daemon's
// root, bind-mounted where a container's Binds or Mounts name them.
type Volumes interface {
	// Create creates the volume name, or returns it as it is when it
	// exists (docker run -v name:/dir creates it on first use).
	Create(ctx context.Context, name string, labels map[string]string) (Volume, error)
	// Get returns the volume name; an unknown one is ErrNotFound.
	Get(ctx context.Context, name string) (Volume, error)
	List(ctx context.Context) ([]Volume, error)
	// Remove removes the volume name and its data; an unknown one is
	// ErrNotFound. Whether a container uses it is the caller's check.
	Remove(ctx context.Context, name string) error
}

// Volume is a named volume.
type Volume struct {
	Name       string
	Mountpoint string // the directory bind-mounted into containers
	CreatedAt  time.Time
	Labels     map[string]string
}

// volumeRoutes registers /volumes.
func (s *server) volumeRoutes(m *http.ServeMux) {}
