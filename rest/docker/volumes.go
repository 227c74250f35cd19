package docker

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/types/volume"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/volumes"
	"github.com/raind/condenser/supervisor"
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

// Volume is a named volume (internal/volumes' type, so that its store
// satisfies Volumes as it is).
type Volume = volumes.Volume

// volumeSizer is what docker system df asks of the volume store when it
// can tell.
type volumeSizer interface {
	Size(ctx context.Context, name string) (int64, error)
}

// containerRecords is what the volume, image, network and system handlers
// read of the containers: the supervisor's records. It is found on
// whichever dependency has it (the supervisor fills several fields).
type containerRecords interface {
	List(ctx context.Context) ([]*supervisor.Container, error)
}

// records returns the container records, or none when no dependency has
// them (a daemon without containers, a test).
func (s *server) records(ctx context.Context) ([]*supervisor.Container, error) {
	for _, d := range []any{s.Containers, s.Streams, s.Networks} {
		if c, ok := d.(containerRecords); ok {
			return c.List(ctx)
		}
	}
	return nil, nil
}

// volumeRoutes registers /volumes.
func (s *server) volumeRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /volumes", s.wrap(s.volumeList))
	m.HandleFunc("POST /volumes/create", s.wrap(s.volumeCreate))
	m.HandleFunc("POST /volumes/prune", s.wrap(s.volumePrune))
	m.HandleFunc("GET /volumes/{name}", s.wrap(s.volumeInspect))
	m.HandleFunc("DELETE /volumes/{name}", s.wrap(s.volumeRemove))
}

var errNoVolumes = fmt.Errorf("named volumes are not available on this daemon: %w", errdefs.ErrNotImplemented)

func (s *server) volumes() (Volumes, error) {
	if s.Volumes == nil {
		return nil, errNoVolumes
	}
	return s.Volumes, nil
}

// dockerVolume is Docker's form of v.
func dockerVolume(v Volume) volume.Volume {
	labels := v.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	out := volume.Volume{
		Name: v.Name, Driver: "local", Mountpoint: v.Mountpoint, Labels: labels,
		Options: map[string]string{}, Scope: "local",
	}
	if !v.CreatedAt.IsZero() {
		out.CreatedAt = v.CreatedAt.Format(time.RFC3339)
	}
	return out
}

// volumeUsers returns the ids of the containers whose binds use v: a bind
// whose source is the volume's directory or is inside it.
func volumeUsers(v Volume, cs []*supervisor.Container) []string {
	var ids []string
	dir := filepath.Dir(v.Mountpoint) // <root>/<name>: _data and what is beside it
	for _, c := range cs {
		for _, b := range c.Request.Mounts {
			src, _, _ := strings.Cut(b, ":")
			src = filepath.Clean(src)
			if src == dir || strings.HasPrefix(src, dir+string(filepath.Separator)) {
				ids = append(ids, c.ID)
				break
			}
		}
	}
	return ids
}

func (s *server) volumeList(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := f.validate("name", "label", "label!", "dangling", "driver"); err != nil {
		return err
	}
	vs, err := s.volumes()
	if err != nil {
		return err
	}
	list, err := vs.List(r.Context())
	if err != nil {
		return err
	}
	var cs []*supervisor.Container
	if f.has("dangling") {
		if cs, err = s.records(r.Context()); err != nil {
			return err
		}
	}
	out := volume.ListResponse{Volumes: []volume.Volume{}, Warnings: []string{}}
	for _, v := range list {
		if !matchVolume(f, v, cs) {
			continue
		}
		out.Volumes = append(out.Volumes, dockerVolume(v))
	}
	return writeJSON(w, http.StatusOK, out)
}

// matchVolume applies the volume list filters: name (a substring, as
// Docker), label, dangling (no container uses it), driver (local only).
func matchVolume(f filters, v Volume, cs []*supervisor.Container) bool {
	if f.has("name") {
		ok := false
		for n := range f["name"] {
			ok = ok || strings.Contains(v.Name, n)
		}
		if !ok {
			return false
		}
	}
	if !f.allow("driver", "local") || !f.matchLabels(v.Labels) {
		return false
	}
	if f.has("dangling") {
		dangling := len(volumeUsers(v, cs)) == 0
		want := f["dangling"]["true"] || f["dangling"]["1"]
		if dangling != want {
			return false
		}
	}
	return true
}

func (s *server) volumeCreate(w http.ResponseWriter, r *http.Request) error {
	var req volume.CreateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Driver != "" && req.Driver != "local" {
		return invalid("volume driver %q is not supported: only \"local\"", req.Driver)
	}
	if len(req.DriverOpts) > 0 {
		// Options of the local driver mount a device or an NFS share:
		// refused rather than ignored.
		return fmt.Errorf("volume driver options are not supported: %w", errdefs.ErrNotImplemented)
	}
	vs, err := s.volumes()
	if err != nil {
		return err
	}
	v, err := vs.Create(r.Context(), req.Name, req.Labels)
	if err != nil {
		return err
	}
	s.note(r.Context(), "volume", "create", v.Name, map[string]string{"driver": "local"})
	return writeJSON(w, http.StatusCreated, dockerVolume(v))
}

func (s *server) volumeInspect(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.volumes()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	v, err := vs.Get(r.Context(), name)
	if err != nil {
		return noSuch("volume", name, err)
	}
	return writeJSON(w, http.StatusOK, dockerVolume(v))
}

func (s *server) volumeRemove(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.volumes()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	v, err := vs.Get(r.Context(), name)
	if err != nil {
		if boolQuery(r, "force") && errdefs.Kind(err) == errdefs.ErrNotFound {
			return noContent(w) // Docker: force ignores a missing volume
		}
		return noSuch("volume", name, err)
	}
	cs, err := s.records(r.Context())
	if err != nil {
		return err
	}
	// Docker refuses even with force: the data would go under a running
	// container.
	if ids := volumeUsers(v, cs); len(ids) > 0 {
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("remove %s: volume is in use - [%s]", name, strings.Join(ids, ", ")),
			err: errdefs.ErrConflict}
	}
	if err := vs.Remove(r.Context(), name); err != nil {
		return noSuch("volume", name, err)
	}
	s.note(r.Context(), "volume", "destroy", name, map[string]string{"driver": "local"})
	return noContent(w)
}

func (s *server) volumePrune(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := f.validate("label", "label!", "all"); err != nil {
		return err
	}
	vs, err := s.volumes()
	if err != nil {
		return err
	}
	list, err := vs.List(r.Context())
	if err != nil {
		return err
	}
	cs, err := s.records(r.Context())
	if err != nil {
		return err
	}
	// Docker (API ≥ 1.42) prunes only anonymous volumes unless all=true;
	// an anonymous volume is one named by 64 hex digits here.
	all := f["all"]["true"] || f["all"]["1"] || !versionAtLeast(r, "1.42")
	rep := volume.PruneReport{VolumesDeleted: []string{}}
	for _, v := range list {
		if !f.matchLabels(v.Labels) || len(volumeUsers(v, cs)) > 0 || (!all && !anonymousVolume(v.Name)) {
			continue
		}
		var size int64
		if sz, ok := vs.(volumeSizer); ok {
			size, _ = sz.Size(r.Context(), v.Name)
		}
		if err := vs.Remove(r.Context(), v.Name); err != nil {
			return err
		}
		s.note(r.Context(), "volume", "destroy", v.Name, map[string]string{"driver": "local"})
		rep.VolumesDeleted = append(rep.VolumesDeleted, v.Name)
		rep.SpaceReclaimed += uint64(max(size, 0))
	}
	return writeJSON(w, http.StatusOK, rep)
}

// anonymousVolume tells a volume made without a name (64 hex digits).
func anonymousVolume(name string) bool {
	return len(name) == 64 && isLowerHex(name)
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
