package rest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/rest/api"
)

// listNetworks is GET /v1/networks.
func (s *server) listNetworks(_ http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	list, err := s.b.ListNetworks(r.Context())
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []api.NetworkSummary{}
	}
	for i := range list {
		normalizeNetwork(&list[i])
	}
	return &reply{fmt.Sprintf("%d networks", len(list)), list}, nil
}

// createNetwork is POST /v1/networks: a user-defined bridge network. The
// name follows the rule of container names; the subnet and the gateway are
// the backend's to judge.
func (s *server) createNetwork(w http.ResponseWriter, r *http.Request, _ httprouter.Params) (*reply, error) {
	var req api.CreateNetworkRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return nil, err
	}
	if err := validNetworkName(req.Name); err != nil {
		return nil, err
	}
	n, err := s.b.CreateNetwork(r.Context(), req)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, errors.New("backend: CreateNetwork returned neither a network nor an error")
	}
	normalizeNetwork(n)
	return &reply{"network " + n.Name + " created", n}, nil
}

// getNetwork is GET /v1/networks/:name.
func (s *server) getNetwork(_ http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	n, err := s.b.InspectNetwork(r.Context(), p.ByName("name"))
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, errors.New("backend: InspectNetwork returned neither a network nor an error")
	}
	normalizeNetwork(n)
	return &reply{"network " + n.Name, n}, nil
}

// removeNetwork is DELETE /v1/networks/:name.
func (s *server) removeNetwork(w http.ResponseWriter, r *http.Request, p httprouter.Params) (*reply, error) {
	if err := noBody(w, r); err != nil {
		return nil, err
	}
	name := p.ByName("name")
	if err := s.b.RemoveNetwork(r.Context(), name); err != nil {
		return nil, err
	}
	return &reply{"network " + name + " removed", api.NetworkResponse{Name: name}}, nil
}

// validNetworkName checks a new network's name: the rule of container
// names (internal/names), with a message about a network.
func validNetworkName(name string) error {
	if name == "" {
		return invalidf("name is required: the new network's name")
	}
	if err := names.ValidName(name); err != nil {
		msg := strings.TrimSuffix(err.Error(), ": "+errdefs.ErrInvalidArgument.Error())
		return invalidf("network %s", strings.TrimPrefix(msg, "container "))
	}
	return nil
}

// normalizeNetwork sends an empty list of containers as [] rather than null.
func normalizeNetwork(n *api.NetworkSummary) {
	if n.Containers == nil {
		n.Containers = []string{}
	}
}
