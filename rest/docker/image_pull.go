package docker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/jsonstream"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/errdefs"
)

// pullRef is the reference POST /images/create?fromImage=&tag= names:
// the tag (or digest) given apart, else the one in fromImage, else
// latest.
func pullRef(fromImage, tag string) (string, error) {
	if fromImage == "" {
		return "", invalid("fromImage or fromSrc is required")
	}
	ref := fromImage
	if tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			ref += "@" + tag
		} else {
			ref += ":" + tag
		}
	}
	if _, err := imagestore.ParseReference(ref); err != nil {
		return "", invalid("invalid reference format: %s", ref)
	}
	return ref, nil
}

// progressWriter writes Docker's JSON progress stream, starting the
// response at the first message: an error before it still gets its status
// code.
type progressWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	enc     *json.Encoder
	started bool
	err     error // the first write error: the client left
}

func newProgressWriter(w http.ResponseWriter) *progressWriter {
	return &progressWriter{w: w, enc: json.NewEncoder(w)}
}

// progressMessage is jsonstream.Message with the legacy "error" string,
// which older clients read instead of errorDetail.
type progressMessage struct {
	jsonstream.Message
	ErrorMessage string `json:"error,omitempty"`
}

func (p *progressWriter) send(m jsonstream.Message) { p.sendMessage(progressMessage{Message: m}) }

func (p *progressWriter) sendMessage(m progressMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	if !p.started {
		p.started = true
		p.w.Header().Set("Content-Type", "application/json")
		p.w.WriteHeader(http.StatusOK)
	}
	if p.err = p.enc.Encode(m); p.err == nil {
		flush(p.w)
	}
}

// fail ends a started stream with Docker's error line; before the start it
// returns err for wrap to write with its status.
func (p *progressWriter) fail(err error, msg string) error {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if !started {
		return err
	}
	p.sendMessage(progressMessage{Message: jsonstream.Message{Error: &jsonstream.Error{Message: msg}}, ErrorMessage: msg})
	return nil
}

func (s *server) imageCreate(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("fromSrc") != "" {
		return fmt.Errorf("docker import (fromSrc) is not implemented: load a docker save tarball with docker load instead: %w", errdefs.ErrNotImplemented)
	}
	st, err := s.images()
	if err != nil {
		return err
	}
	ref, err := pullRef(q.Get("fromImage"), q.Get("tag"))
	if err != nil {
		return err
	}
	var platform *v1.Platform
	if p := q.Get("platform"); p != "" {
		if platform, err = v1.ParsePlatform(p); err != nil {
			return invalid("invalid platform %q: %v", p, err)
		}
	}
	parsed, _ := imagestore.ParseReference(ref) // checked by pullRef
	ctx := r.Context()
	before, _ := st.Inspect(ctx, ref) // to tell "up to date" from "newer"
	pw := newProgressWriter(w)
	var once sync.Once
	seen := map[string]bool{}
	progress := func(p imagestore.Progress) {
		once.Do(func() {
			pw.send(jsonstream.Message{Status: "Pulling from " + familiarRepo(parsed), ID: parsed.Identifier()})
		})
		id := shortID(p.Layer)
		if !seen[p.Layer] {
			seen[p.Layer] = true
			if p.Status != imagestore.StatusExists {
				pw.send(jsonstream.Message{Status: "Pulling fs layer", ID: id, Progress: &jsonstream.Progress{}})
			}
		}
		switch p.Status {
		case imagestore.StatusExists:
			pw.send(jsonstream.Message{Status: "Already exists", ID: id, Progress: &jsonstream.Progress{}})
		case imagestore.StatusDownloading:
			pw.send(jsonstream.Message{Status: "Downloading", ID: id, Progress: &jsonstream.Progress{Current: p.Current, Total: p.Total}})
		case imagestore.StatusExtracting:
			pw.send(jsonstream.Message{Status: "Extracting", ID: id, Progress: &jsonstream.Progress{Current: p.Current, Total: p.Total}})
		case imagestore.StatusDone:
			pw.send(jsonstream.Message{Status: "Pull complete", ID: id, Progress: &jsonstream.Progress{}})
		}
	}
	img, err := st.Pull(ctx, ref, imagestore.PullOptions{Platform: platform, Progress: progress})
	if err != nil {
		return pw.fail(err, err.Error())
	}
	once.Do(func() { // nothing was fetched: every layer was there
		pw.send(jsonstream.Message{Status: "Pulling from " + familiarRepo(parsed), ID: parsed.Identifier()})
	})
	pw.send(jsonstream.Message{Status: "Digest: " + img.Digest})
	status := "Downloaded newer image for "
	if before.ID == img.ID {
		status = "Image is up to date for "
	}
	pw.send(jsonstream.Message{Status: "Status: " + status + parsed.Familiar()})
	s.note(ctx, "image", "pull", parsed.Familiar(), map[string]string{"name": parsed.Familiar()})
	return nil
}

// familiarRepo is the repository as Docker's pull names it: library/busybox,
// example.com/app.
func familiarRepo(r imagestore.Reference) string {
	if r.Domain == "docker.io" {
		return r.Path
	}
	return r.Domain + "/" + r.Path
}
