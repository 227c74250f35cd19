package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/supervisor"
)

// Images is what the image handlers use of the image store.
type Images interface {
	Pull(ctx context.Context, ref string, o imagestore.PullOptions) (imagestore.Image, error)
	List(ctx context.Context) ([]imagestore.Image, error)
	Inspect(ctx context.Context, ref string) (imagestore.Image, error)
	Config(ctx context.Context, img imagestore.Image) (*v1.ConfigFile, error)
	Remove(ctx context.Context, ref string, o imagestore.RemoveOptions) ([]string, error)
	Tag(ctx context.Context, source, target string) (imagestore.Image, error)
	Import(ctx context.Context, r io.Reader, o imagestore.ImportOptions) ([]imagestore.Image, error)
	Export(ctx context.Context, w io.Writer, refs []string) error
}

func (s *server) imageRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /images/create", s.wrap(s.imageCreate))
	m.HandleFunc("GET /images/json", s.wrap(s.imageList))
	m.HandleFunc("POST /images/load", s.wrap(s.imageLoad))
	m.HandleFunc("GET /images/get", s.wrap(s.imageSaveMany))
	m.HandleFunc("POST /images/prune", s.wrap(s.imagePrune))
	m.HandleFunc("GET /images/search", s.wrap(notImplemented("image search (Condenser has no registry search)")))
	// Image names carry slashes: the name is everything up to the last
	// segment, which says what to do.
	m.HandleFunc("GET /images/{name...}", s.wrap(s.imageGet))
	m.HandleFunc("POST /images/{name...}", s.wrap(s.imagePost))
	m.HandleFunc("DELETE /images/{name...}", s.wrap(s.imageDelete))
}

func notImplemented(what string) handle {
	return func(w http.ResponseWriter, r *http.Request) error {
		return fmt.Errorf("%s is not implemented: %w", what, errdefs.ErrNotImplemented)
	}
}

var errPageNotFound = &httpError{status: http.StatusNotFound, msg: "page not found", err: errdefs.ErrNotFound}

// imageGet dispatches GET /images/{name}/json, /history and /get.
func (s *server) imageGet(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("name")
	if name, ok := strings.CutSuffix(p, "/json"); ok && name != "" {
		return s.imageInspect(w, r, name)
	}
	if name, ok := strings.CutSuffix(p, "/history"); ok && name != "" {
		return s.imageHistory(w, r, name)
	}
	if name, ok := strings.CutSuffix(p, "/get"); ok && name != "" {
		return s.imageSave(w, r, []string{name})
	}
	return errPageNotFound
}

// imagePost dispatches POST /images/{name}/tag and /push.
func (s *server) imagePost(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("name")
	if name, ok := strings.CutSuffix(p, "/tag"); ok && name != "" {
		return s.imageTag(w, r, name)
	}
	if _, ok := strings.CutSuffix(p, "/push"); ok {
		return notImplemented("image push")(w, r)
	}
	return errPageNotFound
}

// images returns the image store, or a 501 when the daemon has none.
func (s *server) images() (Images, error) {
	if s.Images == nil {
		return nil, fmt.Errorf("this daemon has no image store: %w", errdefs.ErrNotImplemented)
	}
	return s.Images, nil
}

// familiarImage is Docker's short form of a canonical reference
// (docker.io/library/busybox:latest is busybox:latest).
func familiarImage(ref string) string {
	r, err := imagestore.ParseReference(ref)
	if err != nil {
		return ref
	}
	return r.Familiar()
}

// imageNames are the RepoTags and RepoDigests of the records of one image.
func imageNames(recs []imagestore.Image) (tags, digests []string) {
	tags, digests = []string{}, []string{}
	for _, rec := range recs {
		if rec.Name == "" {
			continue
		}
		r, err := imagestore.ParseReference(rec.Name)
		if err != nil {
			continue
		}
		if r.Tag != "" {
			tags = append(tags, r.Familiar())
		}
		d := r.Digest
		if d == "" {
			d = rec.Digest
		}
		if d != "" {
			r.Tag, r.Digest = "", d
			if f := r.Familiar(); !slices.Contains(digests, f) {
				digests = append(digests, f)
			}
		}
	}
	slices.Sort(tags)
	slices.Sort(digests)
	return tags, digests
}

// groupImages groups the store's records (one per name) by image ID, in
// the order of the IDs' first records.
func groupImages(recs []imagestore.Image) [][]imagestore.Image {
	idx := map[string]int{}
	var out [][]imagestore.Image
	for _, rec := range recs {
		i, ok := idx[rec.ID]
		if !ok {
			i = len(out)
			idx[rec.ID] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], rec)
	}
	return out
}

// recordsOf returns every record of the image id.
func recordsOf(all []imagestore.Image, id string) []imagestore.Image {
	var out []imagestore.Image
	for _, rec := range all {
		if rec.ID == id {
			out = append(out, rec)
		}
	}
	return out
}

func (s *server) imageList(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := f.validate("dangling", "reference", "label", "label!", "before", "since"); err != nil {
		return err
	}
	st, err := s.images()
	if err != nil {
		return err
	}
	ctx := r.Context()
	all, err := st.List(ctx)
	if err != nil {
		return err
	}
	var before, since *imagestore.Image
	for _, k := range []string{"before", "since"} {
		for v := range f[k] {
			img, err := st.Inspect(ctx, v)
			if err != nil {
				return noSuch("image", v, err)
			}
			if k == "before" {
				before = &img
			} else {
				since = &img
			}
		}
	}
	out := []image.Summary{}
	for _, recs := range groupImages(all) {
		img := recs[0]
		tags, digests := imageNames(recs)
		if f.has("reference") {
			matched := matchReference(f["reference"], recs)
			if len(matched) == 0 {
				continue
			}
			tags, digests = imageNames(matched)
		}
		if f.has("dangling") {
			want := f["dangling"]["true"] || f["dangling"]["1"]
			if (len(tags) == 0) != want {
				continue
			}
		}
		if before != nil && !img.Created.Before(before.Created) || since != nil && !img.Created.After(since.Created) {
			continue
		}
		var labels map[string]string
		if cfg, err := st.Config(ctx, img); err == nil {
			labels = cfg.Config.Labels
		} else {
			s.log.Warn("image config unreadable", "image", img.ID, "err", err)
		}
		if !f.matchLabels(labels) {
			continue
		}
		if labels == nil {
			labels = map[string]string{}
		}
		sum := image.Summary{
			ID: img.ID, RepoTags: tags, RepoDigests: digests, Created: img.Created.Unix(),
			Size: img.Size, SharedSize: -1, Containers: -1, Labels: labels,
		}
		out = append(out, sum)
	}
	// Docker lists the newest first.
	slices.SortStableFunc(out, func(a, b image.Summary) int { return int(b.Created - a.Created) })
	return writeJSON(w, http.StatusOK, out)
}

// matchReference is Docker's reference filter: a pattern (path.Match) on
// the familiar repository, or on repository:tag when it has a tag. It
// returns the records that match: the listing shows their names only.
func matchReference(patterns map[string]bool, recs []imagestore.Image) []imagestore.Image {
	var out []imagestore.Image
	for _, rec := range recs {
		if rec.Name == "" {
			continue
		}
		r, err := imagestore.ParseReference(rec.Name)
		if err != nil {
			continue
		}
		full := r.Familiar()
		repo := full[:len(full)-len(r.Identifier())-1]
		for p := range patterns {
			target := repo
			if i, j := strings.LastIndex(p, ":"), strings.LastIndex(p, "/"); i > j {
				target = full
			}
			ok, _ := path.Match(p, target)
			if !ok {
				ok, _ = path.Match(p, rec.Name) // Docker also accepts the canonical form
			}
			if ok {
				out = append(out, rec)
				break
			}
		}
	}
	return out
}

// imageConfig is the Config of an image inspect, from the image's config
// file.
func imageConfig(c v1.Config) *dockerspec.DockerOCIImageConfig {
	out := &dockerspec.DockerOCIImageConfig{
		ImageConfig: ocispec.ImageConfig{
			User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir,
			Labels: c.Labels, StopSignal: c.StopSignal,
			ExposedPorts: c.ExposedPorts, Volumes: c.Volumes,
		},
		DockerOCIImageConfigExt: dockerspec.DockerOCIImageConfigExt{OnBuild: c.OnBuild, Shell: c.Shell},
	}
	if h := c.Healthcheck; h != nil {
		out.Healthcheck = &dockerspec.HealthcheckConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	return out
}

// imageAndConfig finds image name, with its config and every record (name)
// of the same image.
func (s *server) imageAndConfig(ctx context.Context, name string) (imagestore.Image, []imagestore.Image, *v1.ConfigFile, error) {
	st, err := s.images()
	if err != nil {
		return imagestore.Image{}, nil, nil, err
	}
	img, err := st.Inspect(ctx, name)
	if err != nil {
		return imagestore.Image{}, nil, nil, noSuch("image", name, err)
	}
	all, err := st.List(ctx)
	if err != nil {
		return imagestore.Image{}, nil, nil, err
	}
	cfg, err := st.Config(ctx, img)
	if err != nil {
		return imagestore.Image{}, nil, nil, err
	}
	return img, recordsOf(all, img.ID), cfg, nil
}

func (s *server) imageInspect(w http.ResponseWriter, r *http.Request, name string) error {
	img, records, cfg, err := s.imageAndConfig(r.Context(), name)
	if err != nil {
		return err
	}
	tags, digests := imageNames(records)
	diffIDs := make([]string, len(cfg.RootFS.DiffIDs))
	for i, d := range cfg.RootFS.DiffIDs {
		diffIDs[i] = d.String()
	}
	out := image.InspectResponse{
		ID: img.ID, RepoTags: tags, RepoDigests: digests, Comment: "", Author: cfg.Author,
		Config:       imageConfig(cfg.Config),
		Architecture: cfg.Architecture, Variant: cfg.Variant, Os: cfg.OS, OsVersion: cfg.OSVersion,
		Size:   img.Size,
		RootFS: image.RootFS{Type: "layers", Layers: diffIDs},
	}
	if !cfg.Created.IsZero() {
		out.Created = cfg.Created.UTC().Format(time.RFC3339Nano)
	}
	if !img.Stored.IsZero() {
		out.Metadata.LastTagTime = img.Stored
	}
	if len(cfg.History) > 0 {
		out.Comment = cfg.History[len(cfg.History)-1].Comment
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) imageHistory(w http.ResponseWriter, r *http.Request, name string) error {
	img, records, cfg, err := s.imageAndConfig(r.Context(), name)
	if err != nil {
		return err
	}
	tags, _ := imageNames(records)
	return writeJSON(w, http.StatusOK, history(img, cfg, tags))
}

// history is Docker's image history: the config's history, newest first,
// each step that made a layer with that layer's size; the newest step
// carries the image's ID and tags, the others "<missing>" (their images
// were never stored on their own).
func history(img imagestore.Image, cfg *v1.ConfigFile, tags []string) []image.HistoryResponseItem {
	var out []image.HistoryResponseItem
	layer := 0
	size := func() int64 {
		if layer >= len(img.Layers) {
			return 0
		}
		n := max(img.Layers[layer].Unpacked, 0)
		layer++
		return n
	}
	if len(cfg.History) == 0 {
		for range img.Layers {
			out = append(out, image.HistoryResponseItem{ID: "<missing>", Created: img.Created.Unix(), Size: size(), Tags: nil})
		}
	}
	for _, h := range cfg.History {
		item := image.HistoryResponseItem{ID: "<missing>", Created: h.Created.Unix(), CreatedBy: h.CreatedBy, Comment: h.Comment}
		if !h.EmptyLayer {
			item.Size = size()
		}
		out = append(out, item)
	}
	slices.Reverse(out)
	if len(out) > 0 {
		out[0].ID, out[0].Tags = img.ID, tags
	}
	return out
}

func (s *server) imageTag(w http.ResponseWriter, r *http.Request, name string) error {
	st, err := s.images()
	if err != nil {
		return err
	}
	repo, tag := r.URL.Query().Get("repo"), r.URL.Query().Get("tag")
	if repo == "" {
		return invalid("repository name must have at least one component")
	}
	if tag == "" {
		tag = "latest"
	}
	target := repo + ":" + tag
	if _, err := imagestore.ParseReference(target); err != nil {
		return invalid("invalid reference format: %s", target)
	}
	img, err := st.Tag(r.Context(), name, target)
	if err != nil {
		return noSuch("image", name, err)
	}
	s.note(r.Context(), "image", "tag", img.ID, map[string]string{"name": familiarImage(img.Name)})
	w.WriteHeader(http.StatusCreated)
	return nil
}

// imageUsers are the containers created from the image id.
func imageUsers(cs []*supervisor.Container, id string) []*supervisor.Container {
	var out []*supervisor.Container
	for _, c := range cs {
		if c.ImageID == id {
			out = append(out, c)
		}
	}
	return out
}

// usage answers the store's question (which containers use an image) from
// the records read at the start of a removal.
type usage []*supervisor.Container

func (u usage) ImageUsers(_ context.Context, id string) ([]string, error) {
	var out []string
	for _, c := range imageUsers(u, id) {
		out = append(out, c.ID)
	}
	return out, nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(12, len(id))]
}

func (s *server) imageDelete(w http.ResponseWriter, r *http.Request) error {
	st, err := s.images()
	if err != nil {
		return err
	}
	ctx := r.Context()
	name := r.PathValue("name")
	force := boolQuery(r, "force")
	img, err := st.Inspect(ctx, name)
	if err != nil {
		return noSuch("image", name, err)
	}
	all, err := st.List(ctx)
	if err != nil {
		return err
	}
	recs := recordsOf(all, img.ID)
	named := 0
	for _, rec := range recs {
		if rec.Name != "" {
			named++
		}
	}
	byName := false
	if ref, err := imagestore.ParseReference(name); err == nil && img.Name != "" && img.Name == ref.String() {
		byName = true
	}
	cs, err := s.records(ctx)
	if err != nil {
		return err
	}
	users := imageUsers(cs, img.ID)
	// The last name of an image, or the image itself by ID: Docker refuses
	// while a container uses it, unless forced (and even then, for a
	// running one, when deleting by ID).
	last := !byName || named <= 1
	if last && len(users) > 0 {
		c := users[0]
		switch {
		case byName && !force:
			return conflict("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s",
				name, c.ShortID(), shortID(img.ID))
		case !byName && c.State == supervisor.StateRunning:
			return conflict("conflict: unable to delete %s (cannot be forced) - image is being used by running container %s", shortID(img.ID), c.ShortID())
		case !byName && !force:
			return conflict("conflict: unable to delete %s (must be forced) - image is being used by stopped container %s", shortID(img.ID), c.ShortID())
		}
	}
	if !byName && named > 1 && !force {
		return conflict("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", shortID(img.ID))
	}
	removed, err := st.Remove(ctx, name, imagestore.RemoveOptions{Force: force, Users: usage(cs)})
	if err != nil {
		return noSuch("image", name, err)
	}
	out := []image.DeleteResponse{}
	for _, n := range removed {
		out = append(out, image.DeleteResponse{Untagged: familiarImage(n)})
		s.note(ctx, "image", "untag", img.ID, map[string]string{"name": familiarImage(n)})
	}
	if _, err := st.Inspect(ctx, img.ID); errdefs.Kind(err) == errdefs.ErrNotFound {
		// Gone: its digest references went with it.
		_, digests := imageNames(recs)
		for _, d := range digests {
			out = append(out, image.DeleteResponse{Untagged: d})
		}
		out = append(out, image.DeleteResponse{Deleted: img.ID})
		s.note(ctx, "image", "delete", img.ID, map[string]string{"name": img.ID})
	}
	return writeJSON(w, http.StatusOK, out)
}

// conflict is a 409 with Docker's words.
func conflict(format string, args ...any) error {
	return &httpError{status: http.StatusConflict, msg: fmt.Sprintf(format, args...), err: errdefs.ErrConflict}
}

// imagePrune removes the images without a name (or, with
// dangling=false, every image) that no container uses.
func (s *server) imagePrune(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := f.validate("dangling", "label", "label!", "until"); err != nil {
		return err
	}
	if f.has("until") {
		return fmt.Errorf("the until filter of image prune is not implemented: %w", errdefs.ErrNotImplemented)
	}
	st, err := s.images()
	if err != nil {
		return err
	}
	ctx := r.Context()
	all, err := st.List(ctx)
	if err != nil {
		return err
	}
	cs, err := s.records(ctx)
	if err != nil {
		return err
	}
	onlyDangling := !(f["dangling"]["false"] || f["dangling"]["0"])
	rep := image.PruneReport{ImagesDeleted: []image.DeleteResponse{}}
	for _, recs := range groupImages(all) {
		img := recs[0]
		tags, _ := imageNames(recs)
		if (onlyDangling && len(tags) > 0) || len(imageUsers(cs, img.ID)) > 0 {
			continue
		}
		if f.has("label") || f.has("label!") {
			cfg, err := st.Config(ctx, img)
			if err != nil || !f.matchLabels(cfg.Config.Labels) {
				continue
			}
		}
		removed, err := st.Remove(ctx, img.ID, imagestore.RemoveOptions{Force: true, Users: usage(cs)})
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				continue
			}
			return err
		}
		for _, n := range removed {
			rep.ImagesDeleted = append(rep.ImagesDeleted, image.DeleteResponse{Untagged: familiarImage(n)})
		}
		rep.ImagesDeleted = append(rep.ImagesDeleted, image.DeleteResponse{Deleted: img.ID})
		rep.SpaceReclaimed += uint64(max(img.Size, 0))
	}
	return writeJSON(w, http.StatusOK, rep)
}
