package docker

import "net/http"

// Images is what the images handlers use.
type Images interface{}

func (s *server) imageRoutes(m *http.ServeMux) {}
