//go:build !linux

package nat

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/raind/condenser/internal/errdefs"
)

// NAT needs Linux's nftables; elsewhere Open says so.
type NAT struct{}

var errNotLinux = fmt.Errorf("nat: nftables needs Linux: %w", errdefs.ErrNotImplemented)

func Open(ctx context.Context, cfg Config) (*NAT, error) {
	_ = cfg.netns // Linux's tests only
	return nil, errNotLinux
}

func (n *NAT) AddNetwork(ctx context.Context, name string, subnet netip.Prefix, bridge string) error {
	return errNotLinux
}
func (n *NAT) RemoveNetwork(ctx context.Context, name string) error { return errNotLinux }
func (n *NAT) ReconcileNetworks(ctx context.Context, keep func(name string) bool) error {
	return errNotLinux
}
func (n *NAT) Publish(ctx context.Context, id string, ip netip.Addr, ports []Port) error {
	return errNotLinux
}
func (n *NAT) Unpublish(ctx context.Context, id string) error                 { return errNotLinux }
func (n *NAT) Reconcile(ctx context.Context, keep func(id string) bool) error { return errNotLinux }
func (n *NAT) Published(id string) []Port                                     { return nil }
func (n *NAT) Close() error                                                   { return nil }
func (n *NAT) Destroy(ctx context.Context) error                              { return errNotLinux }
