package backend

import (
	"context"
	"net/netip"

	"github.com/raind/condenser/rest/api"
	"github.com/raind/condenser/supervisor"
)

// This file is the networks' part of the adapter: the networks API, and a
// container's endpoint as its summary (address, forwards) and its detail
// (networkSettings) show it.

func (b *Backend) ListNetworks(ctx context.Context) ([]api.NetworkSummary, error) {
	ns, err := b.sup.Networks(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.NetworkSummary, 0, len(ns))
	for _, n := range ns {
		out = append(out, network(n))
	}
	return out, nil
}

func (b *Backend) InspectNetwork(ctx context.Context, name string) (*api.NetworkSummary, error) {
	n, err := b.sup.Network(ctx, name)
	if err != nil {
		return nil, err
	}
	s := network(n)
	return &s, nil
}

func (b *Backend) CreateNetwork(ctx context.Context, r api.CreateNetworkRequest) (*api.NetworkSummary, error) {
	n, err := b.sup.CreateNetwork(ctx, supervisor.NetworkConfig{Name: r.Name, Subnet: r.Subnet, Gateway: r.Gateway})
	if err != nil {
		return nil, err
	}
	s := network(n)
	return &s, nil
}

func (b *Backend) RemoveNetwork(ctx context.Context, name string) error {
	return b.sup.RemoveNetwork(ctx, name)
}

// network is a network as the REST contract shows it.
func network(n supervisor.Network) api.NetworkSummary {
	s := api.NetworkSummary{Name: n.Name, Driver: n.Driver, Bridge: n.Bridge, Gateway: addr(n.Gateway),
		BuiltIn: n.BuiltIn, Containers: append([]string{}, n.Containers...)}
	if n.Subnet.IsValid() {
		s.Subnet = n.Subnet.String()
	}
	return s
}

// addr is a's text, "" for the zero address.
func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// hostIP is a published port's host address; the zero address (all of
// the host's) is 0.0.0.0.
func hostIP(a netip.Addr) string {
	if !a.IsValid() {
		return "0.0.0.0"
	}
	return a.String()
}

// forwards are the published ports of endpoint e as the summary shows them;
// [] when there is none.
func forwards(e *supervisor.Endpoint) []api.Forward {
	out := []api.Forward{}
	if e == nil {
		return out
	}
	for _, p := range e.Ports {
		f := api.Forward{Source: int(p.HostPort), Destination: int(p.ContainerPort), Protocol: p.Protocol}
		if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
			f.HostIP = p.HostIP.String()
		}
		out = append(out, f)
	}
	return out
}

// networkSettings is endpoint e as the detail shows it; nil without one.
func networkSettings(e *supervisor.Endpoint) *api.NetworkSettings {
	if e == nil {
		return nil
	}
	ns := &api.NetworkSettings{Network: e.Network, Address: addr(e.IP), Gateway: addr(e.Gateway), MAC: e.MAC, Ports: []api.PortBinding{}}
	if e.Prefix.IsValid() {
		ns.PrefixLen = e.Prefix.Bits()
	}
	for _, p := range e.Ports {
		ns.Ports = append(ns.Ports, api.PortBinding{HostIP: hostIP(p.HostIP), HostPort: int(p.HostPort),
			ContainerPort: int(p.ContainerPort), Protocol: p.Protocol})
	}
	return ns
}
