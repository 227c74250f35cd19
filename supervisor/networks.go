package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/supervisor/oci"
)

// Container networking. A container on a bridge network (raind0, a
// user-defined one, a CNI conflist) gets a network namespace of Condenser's
// own, made before the runtime's create (the spec names it) and connected
// — veth, address, routes, published ports — while the shim creates the
// container; it is torn down with the runtime's container (release), so
// an address is held only while the container is created or running. "host"
// shares the host's; "none" is a namespace with loopback only, the
// runtime's own. At start, Reconcile removes what a killed daemon left.

// Network is a network containers can be on.
type Network struct {
	Name       string
	Driver     string // "bridge" (raind0 and user-defined), "host", "null" (none) or "cni"
	Bridge     string // the Linux bridge ("" for host, none and most CNI networks)
	Subnet     netip.Prefix
	Gateway    netip.Addr
	BuiltIn    bool     // raind0, host and none: cannot be removed
	Containers []string // ids of the containers attached to it
}

// NetworkConfig is a user-defined bridge network to create.
type NetworkConfig struct {
	Name    string
	Subnet  string // CIDR; "" picks a free /24
	Gateway string // "" the subnet's first address
}

// ConnectRequest is what Networks.Connect needs of a container.
type ConnectRequest struct {
	Network  string
	Name     string // the container's name
	Hostname string
	Ports    []PublishedPort
	// External: the runtime makes the namespace and the veth itself
	// (Droplet): Connect allocates the address, makes sure of the bridge
	// and publishes the ports; the Endpoint names the veth to make.
	External bool
}

// dropletNetAnnotation is where Droplet reads the network it sets up
// itself (../shared/reference/networking.md).
const dropletNetAnnotation = "io.raind.net.config"

// droplet tells whether the runtime is Droplet, which makes containers'
// veths itself.
func (s *Supervisor) droplet() bool { return filepath.Base(s.cfg.Runtime) == "droplet" }

// attached tells whether a container on network gets a namespace of
// Condenser's own, connected by Networks.
func attached(network string) bool { return network != "host" && network != "none" }

// networkName is the network a container's request names.
func networkName(r *CreateRequest) string {
	if r.Network == "" {
		return "raind0"
	}
	return r.Network
}

// checkNetwork checks a create request's network and published ports
// against the networks that exist, and returns the ports.
func (s *Supervisor) checkNetwork(ctx context.Context, r *CreateRequest) ([]PublishedPort, error) {
	name := networkName(r)
	if s.cfg.Networks == nil {
		if len(r.Ports) > 0 {
			return nil, fmt.Errorf("port publishing needs networking, which this daemon runs without: %w", errdefs.ErrInvalidArgument)
		}
		return nil, nil
	}
	ports, err := s.cfg.Networks.ParsePorts(r.Ports)
	if err != nil {
		return nil, err
	}
	if len(ports) > 0 && !attached(name) {
		return nil, fmt.Errorf("ports cannot be published on network %q (with \"host\" the container's ports are the host's): %w", name, errdefs.ErrInvalidArgument)
	}
	if !attached(name) && s.droplet() {
		return nil, fmt.Errorf("network %q: Droplet runs containers on a bridge network only (it makes their veth itself): %w", name, errdefs.ErrInvalidArgument)
	}
	if _, err := s.cfg.Networks.Get(ctx, name); err != nil {
		return nil, err
	}
	return ports, nil
}

// joinNetwork gives c its network namespace before the runtime creates
// it: the spec names the namespace's path. The caller connects it
// (connectNetwork), and release tears it down.
func (s *Supervisor) joinNetwork(ctx context.Context, c *Container, spec *specs.Spec) error {
	if s.cfg.Networks == nil || !attached(networkName(&c.Request)) || spec.Linux == nil {
		return nil
	}
	if s.droplet() {
		return s.joinDropletNetwork(ctx, c, spec)
	}
	path, err := s.cfg.Networks.Namespace(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("container %s: its network namespace: %w", c.Name, err)
	}
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			spec.Linux.Namespaces[i].Path = path
		}
	}
	return nil
}

// joinDropletNetwork connects c before Droplet creates it: Droplet makes
// the namespace and the veth itself from the address Condenser allocated,
// named in the spec's io.raind.net.config annotation.
func (s *Supervisor) joinDropletNetwork(ctx context.Context, c *Container, spec *specs.Spec) error {
	ep, err := s.connectNetwork(ctx, c, true)
	if ep != nil {
		c.Endpoint = ep // release disconnects it whatever happens
	}
	if err != nil {
		return err
	}
	var servers []string
	if b, err := os.ReadFile(filepath.Join(s.containerDir(c.ID), "etc", "resolv.conf")); err == nil {
		servers = oci.Nameservers(b)
	}
	type ipv4 struct {
		Address string `json:"address"`
		Gateway string `json:"gateway"`
	}
	type dns struct {
		Servers []string `json:"servers"`
	}
	type iface struct {
		Name string `json:"name"`
		IPv4 ipv4   `json:"ipv4"`
		DNS  dns    `json:"dns"`
	}
	conf, err := json.Marshal(struct {
		HostInterface   string `json:"hostInterface"`
		BridgeInterface string `json:"bridgeInterface"`
		Interface       iface  `json:"interface"`
	}{"eth0", ep.Bridge, iface{ep.Veth, ipv4{netip.PrefixFrom(ep.IP, ep.Prefix.Bits()).String(), ep.Gateway.String()}, dns{servers}}})
	if err != nil {
		return err
	}
	if spec.Annotations == nil {
		spec.Annotations = map[string]string{}
	}
	spec.Annotations[dropletNetAnnotation] = string(conf)
	return nil
}

// connectNetwork connects c's namespace to its network (address, routes,
// published ports) and writes its /etc/hosts; it returns where c is. It
// changes nothing of c (it runs beside the shim's create).
func (s *Supervisor) connectNetwork(ctx context.Context, c *Container, external bool) (*Endpoint, error) {
	name := networkName(&c.Request)
	if s.cfg.Networks == nil || !attached(name) {
		return nil, nil
	}
	ports, err := s.cfg.Networks.ParsePorts(c.Request.Ports)
	if err != nil {
		return nil, err
	}
	hostname := c.Request.Hostname
	if hostname == "" {
		hostname = c.ShortID()
	}
	ep, err := s.cfg.Networks.Connect(ctx, c.ID, ConnectRequest{Network: name, Name: c.Name, Hostname: hostname, Ports: ports, External: external})
	if err != nil {
		return ep, fmt.Errorf("container %s: connect it to network %s: %w", c.Name, name, err)
	}
	return ep, s.join(name, c.ID, member{name: c.Name, hostname: hostname, ip: ep.IP})
}

// member is a container on a network, as its peers' /etc/hosts name it.
type member struct {
	name, hostname string
	ip             netip.Addr
}

// resolvesNames tells whether the containers of a network find each other
// by name (/etc/hosts): on user-defined networks, as on Docker's; not on
// the default one.
func resolvesNames(network string) bool { return network != "raind0" }

// join adds container id to network's members and rewrites the /etc/hosts
// of those it concerns: its own, and its peers' on a network that resolves
// names.
func (s *Supervisor) join(network, id string, m member) error {
	s.hostsMu.Lock()
	defer s.hostsMu.Unlock()
	if s.members[network] == nil {
		s.members[network] = map[string]member{}
	}
	s.members[network][id] = m
	if !resolvesNames(network) {
		return s.writeHosts(network, id)
	}
	return s.writeNetworkHosts(network)
}

// leave removes container id from network's members (and from its peers'
// /etc/hosts).
func (s *Supervisor) leave(network, id string) error {
	s.hostsMu.Lock()
	defer s.hostsMu.Unlock()
	if _, ok := s.members[network][id]; !ok {
		return nil
	}
	delete(s.members[network], id)
	if !resolvesNames(network) {
		return nil
	}
	return s.writeNetworkHosts(network)
}

// writeNetworkHosts rewrites the /etc/hosts of every member of network.
func (s *Supervisor) writeNetworkHosts(network string) error {
	var errs []error
	for id := range s.members[network] {
		errs = append(errs, s.writeHosts(network, id))
	}
	return errors.Join(errs...)
}

// writeHosts rewrites member id's /etc/hosts: its own address and names,
// then its peers' when the network resolves names. In place: a running
// container has it bind-mounted. The caller holds hostsMu.
func (s *Supervisor) writeHosts(network, id string) error {
	self := s.members[network][id]
	names := []string{self.hostname}
	if self.name != self.hostname {
		names = append(names, self.name)
	}
	entries := []oci.Host{{IP: self.ip, Names: names}}
	if resolvesNames(network) {
		peers := make([]string, 0, len(s.members[network]))
		for pid := range s.members[network] {
			if pid != id {
				peers = append(peers, pid)
			}
		}
		slices.Sort(peers)
		for _, pid := range peers {
			p := s.members[network][pid]
			entries = append(entries, oci.Host{IP: p.ip, Names: []string{p.name}})
		}
	}
	path := filepath.Join(s.containerDir(id), "etc", "hosts")
	if err := os.WriteFile(path, []byte(oci.Hosts(self.hostname, entries)), 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// disconnectNetwork undoes joinNetwork and connectNetwork (idempotent).
func (s *Supervisor) disconnectNetwork(ctx context.Context, c *Container) error {
	if s.cfg.Networks == nil {
		return nil
	}
	if err := s.cfg.Networks.Disconnect(ctx, c.ID); err != nil {
		return fmt.Errorf("container %s: disconnect it from its network: %w", c.Name, err)
	}
	if c.Endpoint != nil {
		if err := s.leave(c.Endpoint.Network, c.ID); err != nil {
			s.log.Warn("update the /etc/hosts of a network's containers", "network", c.Endpoint.Network, "error", err)
		}
	}
	c.Endpoint = nil
	return nil
}

// reconcileNetworks removes every namespace, veth, address and rule of a
// container that is not created or running (what a killed daemon left).
func (s *Supervisor) reconcileNetworks(ctx context.Context) {
	if s.cfg.Networks == nil {
		return
	}
	all, err := s.recs.all()
	if err != nil {
		s.log.Error("reconcile networks: read the records", "error", err)
		return
	}
	live := map[string]bool{}
	s.hostsMu.Lock()
	for _, c := range all {
		if c.State == StateCreated || c.State == StateRunning {
			live[c.ID] = true
			if ep := c.Endpoint; ep != nil {
				hostname := c.Request.Hostname
				if hostname == "" {
					hostname = c.ShortID()
				}
				if s.members[ep.Network] == nil {
					s.members[ep.Network] = map[string]member{}
				}
				s.members[ep.Network][c.ID] = member{name: c.Name, hostname: hostname, ip: ep.IP}
			}
		}
	}
	s.hostsMu.Unlock()
	if err := s.cfg.Networks.Reconcile(ctx, func(id string) bool { return live[id] }); err != nil {
		s.log.Error("reconcile networks", "error", err)
	}
}

// Networks lists the networks.
func (s *Supervisor) Networks(ctx context.Context) ([]Network, error) {
	if s.cfg.Networks == nil {
		return nil, errNoNetworking
	}
	nets, err := s.cfg.Networks.List(ctx)
	if err != nil {
		return nil, err
	}
	users := s.networkUsers()
	for i := range nets {
		nets[i].Containers = users[nets[i].Name]
	}
	return nets, nil
}

// networkUsers are the ids of the containers on each network.
func (s *Supervisor) networkUsers() map[string][]string {
	users := map[string][]string{}
	all, _ := s.recs.all()
	for _, c := range all {
		if c.Endpoint != nil {
			users[c.Endpoint.Network] = append(users[c.Endpoint.Network], c.ID)
		}
	}
	for _, ids := range users {
		slices.Sort(ids)
	}
	return users
}

var errNoNetworking = fmt.Errorf("this daemon runs without networking: %w", errdefs.ErrNotImplemented)

// Network returns network name; unknown is errdefs.ErrNotFound.
func (s *Supervisor) Network(ctx context.Context, name string) (Network, error) {
	if s.cfg.Networks == nil {
		return Network{}, errNoNetworking
	}
	n, err := s.cfg.Networks.Get(ctx, name)
	if err != nil {
		return Network{}, err
	}
	n.Containers = s.networkUsers()[n.Name]
	return n, nil
}

// CreateNetwork creates a user-defined bridge network: a taken name is
// errdefs.ErrAlreadyExists, a bad or overlapping subnet
// errdefs.ErrInvalidArgument.
func (s *Supervisor) CreateNetwork(ctx context.Context, cfg NetworkConfig) (Network, error) {
	if s.cfg.Networks == nil {
		return Network{}, errNoNetworking
	}
	return s.cfg.Networks.Create(ctx, cfg)
}

// RemoveNetwork removes a user-defined network: one a container is on is
// errdefs.ErrConflict, a built-in one errdefs.ErrInvalidArgument.
func (s *Supervisor) RemoveNetwork(ctx context.Context, name string) error {
	if s.cfg.Networks == nil {
		return errNoNetworking
	}
	if users := s.networkUsers()[name]; len(users) > 0 {
		return fmt.Errorf("network %s is in use by %d container(s): %w", name, len(users), errdefs.ErrConflict)
	}
	// The network's manager refuses too when a container is attaching to
	// it meanwhile (errdefs.ErrConflict).
	return s.cfg.Networks.Remove(ctx, name)
}
