package docker

import "net/http"

// Networks is what the networks handlers use.
type Networks interface{}

func (s *server) networkRoutes(m *http.ServeMux) {}
