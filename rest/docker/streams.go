package docker

import "net/http"

// Streams is what the streams handlers use.
type Streams interface{}

func (s *server) streamRoutes(m *http.ServeMux) {}
