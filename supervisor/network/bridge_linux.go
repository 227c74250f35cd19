package network

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
)

// bridgeState is what ensureBridge found: the bridge's index and the
// address (gateway/length) it is used with.
type bridgeState struct {
	index int
	addr  netip.Prefix
	want  netip.Prefix // what it was ensured for
}

// bridgeAlias and vethAlias are the aliases (IFLA_IFALIAS) Condenser gives
// the interfaces it creates: "condenser:<tag>:…", tag naming the state
// directory. They say who owns an interface — RemoveNetwork deletes only
// its own bridges, Reconcile only its own veths, so that two daemons (or
// test runs) with different state directories never take each other's —
// and, for a veth, the whole container id its 10-hex name cannot.
func (m *Manager) bridgeAlias(network string) string {
	return "condenser:" + m.tag + ":network:" + network
}
func (m *Manager) vethAlias(id string) string { return "condenser:" + m.tag + ":" + id }

// vethOwner returns the container id in a veth alias of this Manager's.
func (m *Manager) vethOwner(alias string) (string, bool) {
	id, ok := strings.CutPrefix(alias, "condenser:"+m.tag+":")
	return id, ok && !strings.HasPrefix(id, "network:")
}

// bridgeOwner returns the network in a bridge alias of this Manager's.
func (m *Manager) bridgeOwner(alias string) (string, bool) {
	return strings.CutPrefix(alias, "condenser:"+m.tag+":network:")
}

// ensureBridge makes sure that the bridge of network exists with the
// address want (the gateway and the subnet's length) and returns it. A
// bridge that is missing is created (with its alias, a fixed MAC, the
// address, up; route_localnet=1 on it and net.ipv4.ip_forward=1). A bridge
// that exists is used as it is when it has want; with adopt (raind0), when
// it has an IPv4 address of /24 or larger, which is returned; otherwise it
// is refused — unless it is Condenser's own and has no IPv4 address (a
// crash between its creation and its address), then want is added.
func (m *Manager) ensureBridge(network, name string, want netip.Prefix, adopt bool) (bridgeState, error) {
	link, err := m.h.LinkByName(name)
	if err != nil && !isNotFound(err) {
		return bridgeState{}, fmt.Errorf("bridge %s: %w", name, err)
	}
	m.brMu.Lock()
	defer m.brMu.Unlock()
	if link != nil {
		if st, ok := m.bridges[name]; ok && st.index == link.Attrs().Index && st.want == want {
			return st, nil // as found before
		}
	} else if link, err = m.h.LinkByName(name); err != nil && !isNotFound(err) { // created meanwhile?
		return bridgeState{}, fmt.Errorf("bridge %s: %w", name, err)
	}
	if link == nil {
		return m.createBridge(network, name, want)
	}
	if link.Type() != "bridge" {
		return bridgeState{}, fmt.Errorf("%s exists and is a %s, not a bridge: %w", name, link.Type(), errdefs.ErrConflict)
	}
	addrs, err := m.addrs(link)
	if err != nil {
		return bridgeState{}, err
	}
	owner, ours := m.bridgeOwner(link.Attrs().Alias)
	ours = ours && owner == network
	st := bridgeState{index: link.Attrs().Index, addr: want, want: want}
	switch {
	case ours && len(addrs) == 0:
		if err := m.h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(want)}); err != nil {
			return bridgeState{}, fmt.Errorf("bridge %s: add %s: %w", name, want, err)
		}
	case adopt:
		if st.addr, err = adoptAddress(name, addrs, want); err != nil {
			return bridgeState{}, err
		}
	default:
		if !containsPrefix(addrs, want) {
			return bridgeState{}, fmt.Errorf("bridge %s exists with %v, not %s: Condenser does not change a bridge it did not create: %w",
				name, addrs, want, errdefs.ErrConflict)
		}
	}
	if ours {
		if link.Attrs().Flags&net.FlagUp == 0 {
			if err := m.h.LinkSetUp(link); err != nil {
				return bridgeState{}, fmt.Errorf("bridge %s: up: %w", name, err)
			}
		}
		if err := m.bridgeSysctls(name); err != nil {
			return bridgeState{}, err
		}
	}
	m.bridges[name] = st
	return st, nil
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// createBridge creates the bridge name of network with the address want.
// Called with brMu held.
func (m *Manager) createBridge(network, name string, want netip.Prefix) (bridgeState, error) {
	la := netlink.NewLinkAttrs()
	la.Name, la.HardwareAddr, la.Flags = name, bridgeMAC(name), net.FlagUp
	br := &netlink.Bridge{LinkAttrs: la}
	if err := m.h.LinkAdd(br); err != nil {
		return bridgeState{}, fmt.Errorf("create bridge %s: %w", name, err)
	}
	// The alias first (the kernel takes none at creation), then the
	// address: a bridge of Condenser's without an address is one a crash
	// interrupted, and gets it when next ensured.
	err := m.h.LinkSetAlias(br, m.bridgeAlias(network))
	if err != nil {
		err = fmt.Errorf("bridge %s: alias: %w", name, err)
	} else if err = m.h.AddrAdd(br, &netlink.Addr{IPNet: ipNet(want)}); err != nil {
		err = fmt.Errorf("bridge %s: add %s: %w", name, want, err)
	} else {
		err = m.bridgeSysctls(name)
	}
	if err != nil {
		if derr := m.h.LinkDel(br); derr != nil {
			m.log.Warn("network: delete a bridge half made", "bridge", name, "error", derr)
		}
		return bridgeState{}, err
	}
	m.log.Info("bridge created", "bridge", name, "network", network, "address", want)
	st := bridgeState{index: br.Index, addr: want, want: want}
	m.bridges[name] = st
	return st, nil
}

// bridgeSysctls sets route_localnet=1 on a bridge of Condenser's (a
// published port reached through 127.0.0.1 is DNATed to a container: the
// packet keeps its 127.0.0.1 source and would be dropped as a martian on
// the way out of the bridge without it) and net.ipv4.ip_forward=1, which
// outbound traffic needs (Docker sets it too).
func (m *Manager) bridgeSysctls(bridge string) error {
	if err := setSysctl(filepath.Join("/proc/sys/net/ipv4/conf", bridge, "route_localnet"), "1"); err != nil {
		return err
	}
	if err := setSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	return nil
}

// setSysctl writes v to the file p unless it holds it already.
func setSysctl(p, v string) error {
	b, err := os.ReadFile(p)
	if err == nil && strings.TrimSpace(string(b)) == v {
		return nil
	}
	if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", strings.TrimPrefix(p, "/proc/sys/"), v, err)
	}
	return nil
}

// deleteBridge deletes network's bridge name if Condenser created it for
// network; a bridge that is missing or someone else's is no error.
func (m *Manager) deleteBridge(network, name string) error {
	m.brMu.Lock()
	defer m.brMu.Unlock()
	delete(m.bridges, name)
	link, err := m.h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if owner, ok := m.bridgeOwner(link.Attrs().Alias); !ok || owner != network {
		m.log.Info("network: leaving a bridge Condenser did not create", "bridge", name, "network", network)
		return nil
	}
	if err := m.h.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	m.log.Info("bridge deleted", "bridge", name, "network", network)
	return nil
}

// linkList lists the host's interfaces. A dump that the kernel says was
// interrupted (an interface came or went meanwhile: namespaces die
// asynchronously, taking their veths) is done again.
func (m *Manager) linkList() ([]netlink.Link, error) {
	var err error
	for range 10 {
		var links []netlink.Link
		if links, err = m.h.LinkList(); err == nil {
			return links, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("the host's interfaces: %w", err)
}

// addrs returns the IPv4 addresses of link.
func (m *Manager) addrs(link netlink.Link) ([]netip.Prefix, error) {
	as, err := m.h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", link.Attrs().Name, err)
	}
	out := make([]netip.Prefix, 0, len(as))
	for _, a := range as {
		if p, ok := toPrefix(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

type hostRoute struct {
	dst netip.Prefix
	dev string
}

// hostRoutes returns the host's IPv4 routes to a subnet (not the default
// route), but those through the bridge except.
func (m *Manager) hostRoutes(except string) ([]hostRoute, error) {
	rs, err := m.h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("the host's routes: %w", err)
	}
	links, err := m.linkList()
	if err != nil {
		return nil, err
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var out []hostRoute
	for _, r := range rs {
		p, ok := toPrefix(r.Dst)
		if !ok || p.Bits() == 0 {
			continue
		}
		dev := names[r.LinkIndex]
		if dev == except && except != "" {
			continue
		}
		out = append(out, hostRoute{dst: p.Masked(), dev: dev})
	}
	return out, nil
}

func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// isNotFound tells whether a netlink error says the link is missing.
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOENT)
}
