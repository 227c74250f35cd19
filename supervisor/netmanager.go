package supervisor

import (
	"context"
	"errors"
	"net/netip"
	"sync"

	"github.com/raind/condenser/supervisor/network"
	"github.com/raind/condenser/supervisor/network/nat"
)

// NetworkManager is the daemon's Networks: namespaces, bridges, veths and
// addresses from supervisor/network, masquerading and published ports from
// supervisor/network/nat.
type NetworkManager struct {
	Net *network.Manager
	NAT *nat.NAT

	mu    sync.Mutex
	added map[string]netip.Prefix // networks whose NAT rules this process made sure of
}

var _ Networks = (*NetworkManager)(nil)

var drivers = map[string]string{network.KindBridge: "bridge", network.KindHost: "host", network.KindNone: "null", network.KindCNI: "cni"}

func fromNetwork(n network.Network) Network {
	return Network{Name: n.Name, Driver: drivers[n.Kind], Bridge: n.Bridge, Subnet: n.Subnet, Gateway: n.Gateway, BuiltIn: n.BuiltIn}
}

func (m *NetworkManager) List(ctx context.Context) ([]Network, error) {
	nets, err := m.Net.Networks(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Network, len(nets))
	for i, n := range nets {
		out[i] = fromNetwork(n)
	}
	return out, nil
}

func (m *NetworkManager) Get(ctx context.Context, name string) (Network, error) {
	n, err := m.Net.Network(ctx, name)
	if err != nil {
		return Network{}, err
	}
	return fromNetwork(n), nil
}

func (m *NetworkManager) Create(ctx context.Context, cfg NetworkConfig) (Network, error) {
	n, err := m.Net.CreateNetwork(ctx, network.NetworkConfig{Name: cfg.Name, Subnet: cfg.Subnet, Gateway: cfg.Gateway})
	if err != nil {
		return Network{}, err
	}
	return fromNetwork(n), nil
}

func (m *NetworkManager) Remove(ctx context.Context, name string) error {
	if err := m.Net.RemoveNetwork(ctx, name); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.added, name)
	m.mu.Unlock()
	return m.NAT.RemoveNetwork(ctx, name)
}

func (m *NetworkManager) ParsePorts(specs []string) ([]PublishedPort, error) {
	var out []PublishedPort
	for _, s := range specs {
		p, err := nat.ParsePort(s)
		if err != nil {
			return nil, err
		}
		out = append(out, PublishedPort{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
	}
	return out, nil
}

func (m *NetworkManager) Namespace(ctx context.Context, id string) (string, error) {
	return m.Net.NewNamespace(ctx, id)
}

func (m *NetworkManager) Connect(ctx context.Context, id string, r ConnectRequest) (*Endpoint, error) {
	a, err := m.Net.Attach(ctx, id, network.AttachRequest{Network: r.Network, Name: r.Name, Hostname: r.Hostname, External: r.External})
	if err != nil {
		return nil, err
	}
	ep := &Endpoint{Network: a.Network, IP: a.IP, Prefix: a.Prefix.Masked(), Gateway: a.Gateway, MAC: a.MAC, Bridge: a.Bridge, Veth: a.Veth}
	if a.Bridge != "" {
		if err := m.addNetwork(ctx, a.Network, ep.Prefix, a.Bridge); err != nil {
			return ep, err
		}
	}
	ports := make([]nat.Port, len(r.Ports))
	for i, p := range r.Ports {
		ports[i] = nat.Port{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol}
	}
	if len(ports) > 0 {
		if err := m.NAT.Publish(ctx, id, a.IP, ports); err != nil {
			return ep, err
		}
	}
	ep.Ports = r.Ports
	return ep, nil
}

// addNetwork makes sure of network's masquerade and isolation rules, once
// per process and network (the rules outlive the daemon: a new one adds
// them again, idempotently, at its first container on the network).
func (m *NetworkManager) addNetwork(ctx context.Context, name string, subnet netip.Prefix, bridge string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.added[name] == subnet {
		return nil
	}
	if err := m.NAT.AddNetwork(ctx, name, subnet, bridge); err != nil {
		return err
	}
	if m.added == nil {
		m.added = map[string]netip.Prefix{}
	}
	m.added[name] = subnet
	return nil
}

func (m *NetworkManager) Disconnect(ctx context.Context, id string) error {
	return errors.Join(m.NAT.Unpublish(ctx, id), m.Net.Detach(ctx, id))
}

func (m *NetworkManager) Reconcile(ctx context.Context, keep func(id string) bool) error {
	err := errors.Join(m.NAT.Reconcile(ctx, keep), m.Net.Reconcile(ctx, keep))
	nets, lerr := m.Net.Networks(ctx)
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	exists := map[string]bool{}
	for _, n := range nets {
		exists[n.Name] = true
	}
	return errors.Join(err, m.NAT.ReconcileNetworks(ctx, func(name string) bool { return exists[name] }))
}
