package docker

import (
	"net/http"
	"runtime"

	"github.com/moby/moby/api/types/system"
)

// System is what the daemon tells of itself: fixed facts given at start.
type System struct {
	Version       string // the daemon's version
	Runtime       string // the OCI runtime's path
	Root, State   string // the daemon's directories
	StorageDriver string // "overlay2", …
	CgroupVersion string // "1" or "2"
	KernelVersion string
}

// systemRoutes registers the version negotiation (ping, version) and the
// rest of /info, /events, /system/df.
func (s *server) systemRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /_ping", s.ping)
	m.HandleFunc("HEAD /_ping", s.ping)
	m.HandleFunc("GET /version", s.wrap(s.version))
	s.infoRoutes(m)
}

// ping answers the CLI's first request: it reads Api-Version (set by
// ServeHTTP on every response) and Ostype.
func (s *server) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Docker-Experimental", "false")
	h.Set("Builder-Version", "")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("OK"))
	}
}

func (s *server) version(w http.ResponseWriter, r *http.Request) error {
	v := system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "Condenser"},
		Version:       s.System.Version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		GoVersion:     runtime.Version(),
		KernelVersion: s.System.KernelVersion,
		Components: []system.ComponentVersion{
			{Name: "Engine", Version: s.System.Version, Details: map[string]string{
				"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "Os": runtime.GOOS, "Arch": runtime.GOARCH,
				"GoVersion": runtime.Version(), "KernelVersion": s.System.KernelVersion,
			}},
			{Name: "runtime", Version: s.System.Runtime},
		},
	}
	return writeJSON(w, http.StatusOK, v)
}
