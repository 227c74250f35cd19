package rest

import (
	"net/http"
	"runtime"

	"github.com/julienschmidt/httprouter"

	"github.com/raind/condenser/rest/api"
)

// ping is GET (and HEAD) /v1/_ping: a plain "OK", not enveloped.
func (s *server) ping(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Api-Version", api.Version)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("OK"))
	}
}

func (s *server) version(_ http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	v := s.b.Version(r.Context())
	v.APIVersion = api.Version
	if v.GoVersion == "" {
		v.GoVersion = runtime.Version()
	}
	if v.OS == "" {
		v.OS = runtime.GOOS
	}
	if v.Arch == "" {
		v.Arch = runtime.GOARCH
	}
	return &reply{"condenser " + v.Version, v}, nil
}

func (s *server) info(_ http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	info, err := s.b.Info(r.Context())
	if err != nil {
		return nil, err
	}
	return &reply{"system info", info}, nil
}

// events is GET /v1/events: NDJSON, one Event per line, from now until the
// client goes away. The headers go out at once; events may be rare.
func (s *server) events(w http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	st := newStream(w, "application/x-ndjson")
	if err := st.begin(); err != nil {
		st.close()
		return nil, err
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	err := s.b.Events(ctx, func(e api.Event) error { return st.writeJSON(e) })
	st.close()
	if err != nil && s.endedByShutdown(r) {
		return nil, nil // the stream's proper end: the client reads EOF
	}
	return nil, err
}
