package docker

import "net/http"

// Containers is what the containers handlers use.
type Containers interface{}

func (s *server) containerRoutes(m *http.ServeMux) {}
