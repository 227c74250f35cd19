package rest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/raind/condenser/rest/api"
)

// pullImage is POST /v1/images. With Accept: application/x-ndjson the
// response is a stream of PullProgress lines ending with the envelope as its
// last line; if the pull fails before any progress, or without that header,
// it is an ordinary enveloped response with the error's status code.
func (s *server) pullImage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	var req api.PullImageRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Image) == "" {
		return nil, invalidf("image is required")
	}
	progress, done := s.progress(w, r)
	res, err := s.b.PullImage(r.Context(), req.Image, req.OS, req.Arch, progress)
	done()
	if err != nil {
		return nil, err
	}
	if res == nil {
		res = &api.PullResult{Image: req.Image, OS: req.OS, Arch: req.Arch}
	}
	return &reply{"pulled " + res.Image, res}, nil
}

// importImage is POST /v1/images/import: the body is a `docker save` or OCI
// image-layout tarball, streamed to the backend without a size limit (the
// client going away ends it). Progress streams as for a pull.
func (s *server) importImage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	// Progress lines are written while the body is still being read; HTTP/1
	// needs to be told that this is fine.
	_ = http.NewResponseController(w).EnableFullDuplex()
	progress, done := s.progress(w, r)
	images, err := s.b.ImportImage(r.Context(), r.Body, progress)
	// The importer stops at the archive's end marker (or at its first
	// error), before the body's end: close it here, while the handler runs.
	// In full-duplex mode net/http would otherwise drain it only after the
	// handler returns, which starts its background read of the connection
	// while it is about to read the next request itself — "invalid
	// concurrent Body.Read call", a panic (golang/go#68560).
	_ = r.Body.Close()
	done()
	if err != nil {
		return nil, err
	}
	if images == nil {
		images = []api.ImageSummary{}
	}
	return &reply{fmt.Sprintf("imported %d images", len(images)), images}, nil
}

// progress returns the progress callback of a pull or an import — an NDJSON
// stream when the client asked for one, else a no-op — and the function
// that ends it, to be called when the backend returns.
func (s *server) progress(w http.ResponseWriter, r *http.Request) (func(api.PullProgress), func()) {
	if !wantsNDJSON(r) {
		return func(api.PullProgress) {}, func() {}
	}
	st := newStream(w, "application/x-ndjson").envelopeLast()
	return func(p api.PullProgress) { _ = st.writeJSON(p) }, func() { st.close() }
}

func (s *server) listImages(_ http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	images, err := s.b.ListImages(r.Context())
	if err != nil {
		return nil, err
	}
	if images == nil {
		images = []api.ImageSummary{}
	}
	return &reply{fmt.Sprintf("%d images", len(images)), images}, nil
}

// removeImage is DELETE /v1/images with {"image": …} (or, as an extension,
// ?image=) and ?force=1.
func (s *server) removeImage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	var req api.RemoveImageRequest
	if err := decodeBody(w, r, &req, true); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	if req.Image == "" {
		req.Image = q.Get("image")
	}
	if strings.TrimSpace(req.Image) == "" {
		return nil, invalidf("image is required: {\"image\": \"alpine:latest\"}")
	}
	force, err := queryBool(q, "force", false)
	if err != nil {
		return nil, err
	}
	if err := s.b.RemoveImage(r.Context(), req.Image, force); err != nil {
		return nil, err
	}
	//lint:ignore S1016 a request and a response that happen to have the same fields
	return &reply{"image removed", api.ImageResponse{Image: req.Image}}, nil
}

func (s *server) imageStatus(_ http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	image := r.URL.Query().Get("image")
	if strings.TrimSpace(image) == "" {
		return nil, invalidf("query parameter image is required: /v1/images/status?image=alpine:latest")
	}
	st, err := s.b.ImageStatus(r.Context(), image)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errors.New("backend: ImageStatus returned neither a status nor an error")
	}
	if st.RepoTags == nil {
		st.RepoTags = []string{}
	}
	if st.RepoDigests == nil {
		st.RepoDigests = []string{}
	}
	return &reply{"image " + image, st}, nil
}

func (s *server) imagesFS(_ http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	used, err := s.b.ImagesFS(r.Context())
	if err != nil {
		return nil, err
	}
	return &reply{"image store usage", api.ImagesFSResponse{UsedBytes: used}}, nil
}
