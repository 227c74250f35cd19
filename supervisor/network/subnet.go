package network

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/raind/condenser/internal/errdefs"
)

// The pure decisions: names, subnets, gateways, the bridge rule. No system
// calls here: subnet_test.go tables them.

// maxNameLength bounds a network's name: it is a file name under
// <root>/networks and <state>/ipam.
const maxNameLength = 64

// validName checks a network's name: CNI's rule, [a-zA-Z0-9][a-zA-Z0-9_.-]*,
// at most 64 characters.
func validName(name string) error {
	if name == "" {
		return fmt.Errorf("network name is empty: %w", errdefs.ErrInvalidArgument)
	}
	if len(name) > maxNameLength {
		return fmt.Errorf("network name %.20q…: longer than %d characters: %w", name, maxNameLength, errdefs.ErrInvalidArgument)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return fmt.Errorf("network name %q: want letters, digits, '_', '.' or '-', starting with a letter or a digit: %w", name, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// defaultBridgeName is a user network's bridge unless one is given: "cn-"
// and the first 8 hex digits of the SHA-256 of the name (11 characters;
// an interface name has at most 15).
func defaultBridgeName(network string) string {
	sum := sha256.Sum256([]byte(network))
	return "cn-" + hex.EncodeToString(sum[:4])
}

// validBridgeName checks an interface name for a bridge: 1 to 15 bytes,
// no '/', ':', white space or NUL (the kernel's rule, dev_valid_name, and
// ':' for aliases), and not the shape of Condenser's veths (vc + 10 hex),
// which Reconcile deletes.
func validBridgeName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("bridge name %q: %s: %w", name, why, errdefs.ErrInvalidArgument)
	}
	switch {
	case name == "":
		return bad("empty")
	case len(name) > 15:
		return bad("longer than 15 characters")
	case name == "." || name == "..":
		return bad("not a name")
	case strings.ContainsAny(name, "/: \t\n\r\x00"):
		return bad("contains '/', ':', white space or NUL")
	case isVethName(name):
		return bad("that is the shape of a container's veth (vc and 10 hex digits)")
	}
	return nil
}

// vethName is the host side of container id's veth: "vc" and the first 10
// hex digits of the id (12 characters).
func vethName(id string) string { return "vc" + id[:10] }

// isVethName tells whether name has the shape vethName makes.
func isVethName(name string) bool {
	if len(name) != 12 || !strings.HasPrefix(name, "vc") {
		return false
	}
	for _, c := range name[2:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// containerMAC is the MAC of a container's eth0: 02:42 and the four bytes
// of its IPv4 address (what Docker did), so that an address given again
// comes with the same MAC and no neighbour keeps a stale entry.
func containerMAC(ip netip.Addr) net.HardwareAddr {
	a := ip.As4()
	return net.HardwareAddr{0x02, 0x42, a[0], a[1], a[2], a[3]}
}

// bridgeMAC is the MAC of a bridge Condenser creates, fixed from its name:
// a bridge without a MAC of its own takes the lowest of its ports', and
// the containers' neighbour entry for the gateway would change as ports
// come and go.
func bridgeMAC(bridge string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("condenser bridge " + bridge))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfe | 0x02 // unicast, locally administered
	return mac
}

// parseSubnet parses a user network's subnet: IPv4 in CIDR notation, the
// network address itself (10.1.2.0/24, not 10.1.2.3/24), from /8 to /30
// (room for a gateway and at least one container).
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("subnet %q: want IPv4 CIDR notation such as 10.167.0.0/24: %w", s, errdefs.ErrInvalidArgument)
	case !p.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("subnet %q: only IPv4 subnets are supported: %w", s, errdefs.ErrInvalidArgument)
	case p.Bits() < 8 || p.Bits() > 30:
		return netip.Prefix{}, fmt.Errorf("subnet %q: want a prefix length from /8 to /30: %w", s, errdefs.ErrInvalidArgument)
	case p.Masked() != p:
		return netip.Prefix{}, fmt.Errorf("subnet %q: not a network address, did you mean %s?: %w", s, p.Masked(), errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// parseGateway parses a user network's gateway in subnet: by default the
// subnet's first host address (.1, as Docker's user-defined networks);
// otherwise a host address of the subnet (not the network or broadcast
// address).
func parseGateway(s string, subnet netip.Prefix) (netip.Addr, error) {
	if s == "" {
		return subnet.Addr().Next(), nil
	}
	gw, err := netip.ParseAddr(s)
	if err != nil || !gw.Is4() {
		return netip.Addr{}, fmt.Errorf("gateway %q: want an IPv4 address: %w", s, errdefs.ErrInvalidArgument)
	}
	if !subnet.Contains(gw) || gw == subnet.Addr() || gw == broadcast(subnet) {
		return netip.Addr{}, fmt.Errorf("gateway %s: not a host address of subnet %s: %w", gw, subnet, errdefs.ErrInvalidArgument)
	}
	return gw, nil
}

// broadcast is the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// userPool is where user networks' subnets come from when none is given:
// the first 10.167.N.0/24 that overlaps nothing taken.
var userPool = netip.MustParsePrefix("10.167.0.0/16")

// freeSubnet returns the first /24 of userPool that overlaps none of taken
// (the other networks' subnets and the host's routes), or
// errdefs.ErrResourceExhausted.
func freeSubnet(taken []netip.Prefix) (netip.Prefix, error) {
	base := userPool.Addr().As4()
next:
	for n := 0; n < 256; n++ {
		base[2] = byte(n)
		p := netip.PrefixFrom(netip.AddrFrom4(base), 24)
		for _, t := range taken {
			if t.Overlaps(p) {
				continue next
			}
		}
		return p, nil
	}
	return netip.Prefix{}, fmt.Errorf("no free subnet left in %s: give one: %w", userPool, errdefs.ErrResourceExhausted)
}

// overlapping returns the first of others that overlaps p and whether
// there is one.
func overlapping(p netip.Prefix, others map[string]netip.Prefix) (string, bool) {
	for name, o := range others {
		if o.IsValid() && o.Overlaps(p) {
			return name, true
		}
	}
	return "", false
}

// adoptAddress decides what a bridge that exists already, with the IPv4
// addresses addrs, is used as: want (gateway/length) when it has it;
// otherwise its first address with a prefix of /24 or larger (the subnet
// is that address's, the gateway that address). A bridge with none of
// these is refused: Condenser never changes a bridge it did not create.
func adoptAddress(bridge string, addrs []netip.Prefix, want netip.Prefix) (netip.Prefix, error) {
	for _, a := range addrs {
		if a == want {
			return a, nil
		}
	}
	for _, a := range addrs {
		if a.Addr().Is4() && a.Bits() <= 24 {
			return a, nil
		}
	}
	have := "no IPv4 address"
	if len(addrs) > 0 {
		s := make([]string, len(addrs))
		for i, a := range addrs {
			s[i] = a.String()
		}
		have = "the address(es) " + strings.Join(s, ", ")
	}
	return netip.Prefix{}, fmt.Errorf("bridge %s exists with %s: want %s or an IPv4 address with a prefix of /24 or larger; "+
		"Condenser does not change a bridge it did not create (give it such an address, or delete it): %w",
		bridge, have, want, errdefs.ErrConflict)
}
