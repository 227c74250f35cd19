package supervisor

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/raind/condenser/internal/errdefs"
)

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

// Networks lists the networks.
func (s *Supervisor) Networks(ctx context.Context) ([]Network, error) {
	return nil, fmt.Errorf("networks: %w", errdefs.ErrNotImplemented)
}

// Network returns network name; unknown is errdefs.ErrNotFound.
func (s *Supervisor) Network(ctx context.Context, name string) (Network, error) {
	return Network{}, fmt.Errorf("networks: %w", errdefs.ErrNotImplemented)
}

// CreateNetwork creates a user-defined bridge network: a taken name is
// errdefs.ErrAlreadyExists, a bad or overlapping subnet
// errdefs.ErrInvalidArgument.
func (s *Supervisor) CreateNetwork(ctx context.Context, cfg NetworkConfig) (Network, error) {
	return Network{}, fmt.Errorf("networks: %w", errdefs.ErrNotImplemented)
}

// RemoveNetwork removes a user-defined network: one a container is on is
// errdefs.ErrConflict, a built-in one errdefs.ErrInvalidArgument.
func (s *Supervisor) RemoveNetwork(ctx context.Context, name string) error {
	return fmt.Errorf("networks: %w", errdefs.ErrNotImplemented)
}
