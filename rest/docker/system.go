package docker

import "net/http"

// infoRoutes registers /info, /events and /system/df.
func (s *server) infoRoutes(m *http.ServeMux) {}
