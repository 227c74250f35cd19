package rest

import (
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/raind/condenser/internal/errdefs"
)

// errNoPolicies answers the Raind CLI's policy and netflow calls, which
// Condenser does not serve yet.
var errNoPolicies = &kindError{kind: errdefs.ErrNotImplemented,
	msg: "network policies are not implemented by Condenser yet: no policy chains (RAIND-EW, RAIND-NS-OBS, RAIND-NS-ENF), no north-south mode, no netflow log"}

// policyRoutes registers the Raind CLI's network policy and netflow log
// routes (policy …, logs netflow), each a 501. httprouter keeps a tree per
// method, so POST /v1/policies/commit beside GET /v1/policies/:chain and
// DELETE /v1/policies/:id does not conflict.
func (s *server) policyRoutes(r *httprouter.Router) {
	r.POST("/v1/policies", s.wrap(notImplemented))
	r.GET("/v1/policies/:chain", s.wrap(notImplemented))
	r.POST("/v1/policies/commit", s.wrap(notImplemented))
	r.POST("/v1/policies/revert", s.wrap(notImplemented))
	r.POST("/v1/policies/ns/mode", s.wrap(notImplemented))
	r.DELETE("/v1/policies/:id", s.wrap(notImplemented))
	r.GET("/v1/logs/netflow", s.wrap(notImplemented))
}

func notImplemented(http.ResponseWriter, *http.Request, httprouter.Params) (*reply, error) {
	return nil, errNoPolicies
}
