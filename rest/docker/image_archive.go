package docker

import (
	"net/http"

	"github.com/moby/moby/api/types/jsonstream"

	"github.com/raind/condenser/imagestore"
)

// imageLoad is docker load: the body is a `docker save` tarball (or an
// OCI layout as a tar); the answer names what was loaded, as JSON lines.
func (s *server) imageLoad(w http.ResponseWriter, r *http.Request) error {
	st, err := s.images()
	if err != nil {
		return err
	}
	ctx := r.Context()
	imgs, err := st.Import(ctx, r.Body, imagestore.ImportOptions{})
	if err != nil {
		return err
	}
	pw := newProgressWriter(w)
	for _, img := range imgs {
		line := "Loaded image ID: " + img.ID + "\n"
		name := img.ID
		if img.Name != "" {
			name = familiarImage(img.Name)
			line = "Loaded image: " + name + "\n"
		}
		pw.send(jsonstream.Message{Stream: line})
		s.note(ctx, "image", "load", img.ID, map[string]string{"name": name})
	}
	if len(imgs) == 0 {
		pw.send(jsonstream.Message{Stream: "No images loaded\n"})
	}
	return nil
}

// imageSaveMany is GET /images/get?names=a&names=b.
func (s *server) imageSaveMany(w http.ResponseWriter, r *http.Request) error {
	names := r.URL.Query()["names"]
	if len(names) == 0 {
		return invalid("no images named: want ?names=")
	}
	return s.imageSave(w, r, names)
}

// imageSave is docker save: a tarball of the images, streamed.
func (s *server) imageSave(w http.ResponseWriter, r *http.Request, names []string) error {
	st, err := s.images()
	if err != nil {
		return err
	}
	ctx := r.Context()
	// Unknown names are refused before the stream starts (a 404 the
	// client reads) rather than cutting it.
	for _, n := range names {
		if _, err := st.Inspect(ctx, n); err != nil {
			return noSuch("image", n, err)
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	return st.Export(ctx, w, names)
}
