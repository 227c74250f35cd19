package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"

	"github.com/raind/condenser/internal/atomicfile"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/supervisor"
)

// Networks is what the network handlers use of the supervisor.
type Networks interface {
	Networks(ctx context.Context) ([]supervisor.Network, error)
	Network(ctx context.Context, name string) (supervisor.Network, error)
	CreateNetwork(ctx context.Context, cfg supervisor.NetworkConfig) (supervisor.Network, error)
	RemoveNetwork(ctx context.Context, name string) error
}

// Docker's default network is "bridge"; Condenser's is raind0, the same
// thing: the Docker API shows and accepts it as "bridge".
const (
	dockerBridge  = "bridge"
	condenserNet0 = "raind0"
)

// dockerNetworkName is the name Docker clients see for a Condenser network.
func dockerNetworkName(name string) string {
	if name == condenserNet0 {
		return dockerBridge
	}
	return name
}

// condenserNetworkName is the Condenser network a Docker client's name
// designates (bridge is raind0).
func condenserNetworkName(name string) string {
	if name == dockerBridge {
		return condenserNet0
	}
	return name
}

// networkID is a network's Docker id: Condenser's networks have names
// only, so the id is derived from the name, stable across restarts.
func networkID(name string) string {
	sum := sha256.Sum256([]byte("condenser network\x00" + name))
	return hex.EncodeToString(sum[:])
}

func (s *server) networkRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /networks", s.wrap(s.networkList))
	m.HandleFunc("POST /networks/create", s.wrap(s.networkCreate))
	m.HandleFunc("POST /networks/prune", s.wrap(s.networkPrune))
	m.HandleFunc("GET /networks/{id}", s.wrap(s.networkInspect))
	m.HandleFunc("DELETE /networks/{id}", s.wrap(s.networkRemove))
	m.HandleFunc("POST /networks/{id}/connect", s.wrap(notImplemented("connecting a created container to another network (give it at create: docker run --network)")))
	m.HandleFunc("POST /networks/{id}/disconnect", s.wrap(notImplemented("disconnecting a container from its network")))
}

func (s *server) networks() (Networks, error) {
	if s.Networks == nil {
		return nil, fmt.Errorf("this daemon has no networking: %w", errdefs.ErrNotImplemented)
	}
	return s.Networks, nil
}

// networkMeta is what Docker keeps of a network that Condenser's network
// manager does not: labels, options and the creation time, in
// <root>/docker/networks/<name>.json.
type networkMeta struct {
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

func (s *server) networkMetaPath(name string) string {
	if s.System.Root == "" {
		return ""
	}
	return filepath.Join(s.System.Root, "docker", "networks", name+".json")
}

func (s *server) readNetworkMeta(name string) networkMeta {
	var m networkMeta
	if p := s.networkMetaPath(name); p != "" {
		if b, err := os.ReadFile(p); err == nil {
			if err := json.Unmarshal(b, &m); err != nil {
				s.log.Warn("network metadata unreadable", "network", name, "err", err)
			}
		}
	}
	return m
}

func (s *server) writeNetworkMeta(name string, m networkMeta) error {
	p := s.networkMetaPath(name)
	if p == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, b, 0o600, true)
}

// findNetwork resolves a Docker client's reference to a network: its
// name (bridge for raind0), its id, or a unique id prefix.
func (s *server) findNetwork(ctx context.Context, ref string) (supervisor.Network, error) {
	nets, err := s.networks()
	if err != nil {
		return supervisor.Network{}, err
	}
	n, err := nets.Network(ctx, condenserNetworkName(ref))
	if err == nil {
		return n, nil
	}
	if errdefs.Kind(err) != errdefs.ErrNotFound {
		return supervisor.Network{}, err
	}
	all, lerr := nets.Networks(ctx)
	if lerr != nil {
		return supervisor.Network{}, lerr
	}
	var match []supervisor.Network
	for _, n := range all {
		if len(ref) > 0 && strings.HasPrefix(networkID(n.Name), ref) {
			match = append(match, n)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return supervisor.Network{}, &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("network %s not found", ref), err: err}
	}
	return supervisor.Network{}, invalid("network %s is ambiguous (%d matches found on name)", ref, len(match))
}

// inspectNetwork is Docker's form of n; with containers, the containers on
// it as inspect shows them.
func (s *server) inspectNetwork(n supervisor.Network, cs []*supervisor.Container) network.Inspect {
	meta := s.readNetworkMeta(n.Name)
	driver := n.Driver
	if driver == "" {
		driver = "bridge"
	}
	out := network.Inspect{Network: network.Network{
		Name: dockerNetworkName(n.Name), ID: networkID(n.Name), Created: meta.Created, Scope: "local",
		Driver: driver, EnableIPv4: driver == "bridge", IPAM: network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{}},
		Options: map[string]string{}, Labels: map[string]string{},
	}, Containers: map[string]network.EndpointResource{}}
	if n.Subnet.IsValid() {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{Subnet: n.Subnet, Gateway: n.Gateway})
	}
	if n.Bridge != "" {
		out.Options["com.docker.network.bridge.name"] = n.Bridge
	}
	for k, v := range meta.Options {
		out.Options[k] = v
	}
	for k, v := range meta.Labels {
		out.Labels[k] = v
	}
	if n.Name == condenserNet0 {
		out.Options["com.docker.network.bridge.default_bridge"] = "true"
	}
	byID := map[string]*supervisor.Container{}
	for _, c := range cs {
		byID[c.ID] = c
	}
	for _, id := range n.Containers {
		ep := network.EndpointResource{}
		if c := byID[id]; c != nil {
			ep.Name = c.Name
			if e := c.Endpoint; e != nil {
				ep.EndpointID = networkID("endpoint\x00" + c.ID)
				if e.IP.IsValid() {
					ep.IPv4Address = netip.PrefixFrom(e.IP, e.Prefix.Bits())
				}
				if mac, err := net.ParseMAC(e.MAC); err == nil {
					ep.MacAddress = network.HardwareAddr(mac)
				}
			}
		}
		out.Containers[id] = ep
	}
	return out
}

func (s *server) networkList(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := f.validate("name", "id", "driver", "type", "label", "label!", "scope", "dangling"); err != nil {
		return err
	}
	nets, err := s.networks()
	if err != nil {
		return err
	}
	all, err := nets.Networks(r.Context())
	if err != nil {
		return err
	}
	cs, err := s.records(r.Context())
	if err != nil {
		return err
	}
	out := []network.Inspect{}
	for _, n := range all {
		d := s.inspectNetwork(n, cs)
		if !matchNetwork(f, d, n) {
			continue
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b network.Inspect) int { return strings.Compare(a.Name, b.Name) })
	return writeJSON(w, http.StatusOK, out)
}

// matchNetwork applies Docker's network filters: name and id match
// substrings and prefixes, type is builtin or custom.
func matchNetwork(f filters, d network.Inspect, n supervisor.Network) bool {
	if f.has("name") {
		ok := false
		for v := range f["name"] {
			ok = ok || strings.Contains(d.Name, v)
		}
		if !ok {
			return false
		}
	}
	if f.has("id") {
		ok := false
		for v := range f["id"] {
			ok = ok || strings.HasPrefix(d.ID, v)
		}
		if !ok {
			return false
		}
	}
	typ := "custom"
	if n.BuiltIn {
		typ = "builtin"
	}
	if !f.allow("driver", d.Driver) || !f.allow("type", typ) || !f.allow("scope", "local") || !f.matchLabels(d.Labels) {
		return false
	}
	if f.has("dangling") {
		want := f["dangling"]["true"] || f["dangling"]["1"]
		if (len(n.Containers) == 0 && !n.BuiltIn) != want {
			return false
		}
	}
	return true
}

func (s *server) networkInspect(w http.ResponseWriter, r *http.Request) error {
	n, err := s.findNetwork(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	cs, err := s.records(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.inspectNetwork(n, cs))
}

// networkCreateRequest is the body of POST /networks/create.
type networkCreateRequest struct {
	Name       string
	Driver     string
	Scope      string
	Internal   bool
	Attachable bool
	Ingress    bool
	ConfigOnly bool
	EnableIPv6 *bool
	IPAM       *network.IPAM
	Options    map[string]string
	Labels     map[string]string
}

func (s *server) networkCreate(w http.ResponseWriter, r *http.Request) error {
	var req networkCreateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return invalid("network name is required")
	}
	if req.Name == dockerBridge || req.Name == "host" || req.Name == "none" || req.Name == condenserNet0 {
		return &httpError{status: http.StatusForbidden, msg: fmt.Sprintf("%s is a pre-defined network and cannot be created", req.Name), err: errdefs.ErrPermissionDenied}
	}
	if req.Driver != "" && req.Driver != "bridge" {
		return invalid("network driver %q is not supported: only \"bridge\"", req.Driver)
	}
	// What Condenser's bridges cannot do is refused, never ignored.
	switch {
	case req.Internal:
		return fmt.Errorf("internal networks are not implemented: %w", errdefs.ErrNotImplemented)
	case req.EnableIPv6 != nil && *req.EnableIPv6:
		return fmt.Errorf("IPv6 networks are not implemented: %w", errdefs.ErrNotImplemented)
	case req.Ingress || req.ConfigOnly || (req.Scope != "" && req.Scope != "local"):
		return fmt.Errorf("swarm networks are not implemented: %w", errdefs.ErrNotImplemented)
	}
	cfg := supervisor.NetworkConfig{Name: req.Name}
	if req.IPAM != nil {
		if req.IPAM.Driver != "" && req.IPAM.Driver != "default" {
			return invalid("IPAM driver %q is not supported", req.IPAM.Driver)
		}
		switch len(req.IPAM.Config) {
		case 0:
		case 1:
			c := req.IPAM.Config[0]
			if c.IPRange.IsValid() || len(c.AuxAddress) > 0 {
				return fmt.Errorf("IPAM ip ranges and auxiliary addresses are not implemented: %w", errdefs.ErrNotImplemented)
			}
			if c.Subnet.IsValid() {
				cfg.Subnet = c.Subnet.String()
			}
			if c.Gateway.IsValid() {
				cfg.Gateway = c.Gateway.String()
			}
		default:
			return fmt.Errorf("a network with several subnets is not implemented: %w", errdefs.ErrNotImplemented)
		}
	}
	nets, err := s.networks()
	if err != nil {
		return err
	}
	n, err := nets.CreateNetwork(r.Context(), cfg)
	if err != nil {
		if errdefs.Kind(err) == errdefs.ErrAlreadyExists {
			return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("network with name %s already exists", req.Name), err: err}
		}
		return err
	}
	meta := networkMeta{Created: time.Now().UTC(), Labels: req.Labels, Options: req.Options}
	if err := s.writeNetworkMeta(n.Name, meta); err != nil {
		s.log.Warn("network metadata not written", "network", n.Name, "err", err)
	}
	id := networkID(n.Name)
	s.note(r.Context(), "network", "create", id, map[string]string{"name": n.Name, "type": "bridge"})
	return writeJSON(w, http.StatusCreated, network.CreateResponse{ID: id, Warning: ""})
}

func (s *server) networkRemove(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	n, err := s.findNetwork(r.Context(), ref)
	if err != nil {
		return err
	}
	if n.BuiltIn {
		return &httpError{status: http.StatusForbidden, msg: fmt.Sprintf("%s is a pre-defined network and cannot be removed", dockerNetworkName(n.Name)),
			err: errdefs.ErrPermissionDenied}
	}
	if err := s.removeNetwork(r.Context(), n); err != nil {
		return err
	}
	return noContent(w)
}

func (s *server) removeNetwork(ctx context.Context, n supervisor.Network) error {
	nets, err := s.networks()
	if err != nil {
		return err
	}
	if err := nets.RemoveNetwork(ctx, n.Name); err != nil {
		if errdefs.Kind(err) == errdefs.ErrConflict {
			return &httpError{status: http.StatusConflict,
				msg: fmt.Sprintf("error while removing network: network %s id %s has active endpoints", n.Name, networkID(n.Name)), err: err}
		}
		return err
	}
	if p := s.networkMetaPath(n.Name); p != "" {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("network metadata not removed", "network", n.Name, "err", err)
		}
	}
	s.note(ctx, "network", "destroy", networkID(n.Name), map[string]string{"name": n.Name, "type": "bridge"})
	return nil
}

func (s *server) networkPrune(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	if err := f.validate("label", "label!", "until"); err != nil {
		return err
	}
	if f.has("until") {
		return fmt.Errorf("the until filter of network prune is not implemented: %w", errdefs.ErrNotImplemented)
	}
	nets, err := s.networks()
	if err != nil {
		return err
	}
	all, err := nets.Networks(r.Context())
	if err != nil {
		return err
	}
	rep := network.PruneReport{NetworksDeleted: []string{}}
	for _, n := range all {
		if n.BuiltIn || len(n.Containers) > 0 || !f.matchLabels(s.readNetworkMeta(n.Name).Labels) {
			continue
		}
		if err := s.removeNetwork(r.Context(), n); err != nil {
			if errdefs.Kind(err) == errdefs.ErrConflict || errdefs.Kind(err) == errdefs.ErrNotFound {
				continue // a container joined it meanwhile
			}
			return err
		}
		rep.NetworksDeleted = append(rep.NetworksDeleted, n.Name)
	}
	return writeJSON(w, http.StatusOK, rep)
}
