package network

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

// Attach attaches container id to req.Network and returns where: for a
// bridge network it ensures the bridge, allocates the lowest free address,
// makes the namespace (unless NewNamespace did) and a veth pair — the host
// side "vc" + 10 hex digits of the id, a hairpin port of the bridge, the
// peer made inside the namespace as eth0 with the address, up, and a
// default route through the gateway — and records it all; for a CNI
// network it runs the conflist's plugins (ADD). Everything is undone when
// it fails.
//
// A container attached already wraps errdefs.ErrAlreadyExists; host and
// none (no attachment) errdefs.ErrInvalidArgument; an unknown network
// errdefs.ErrNotFound; a full subnet errdefs.ErrResourceExhausted.
func (m *Manager) Attach(ctx context.Context, id string, req AttachRequest) (_ *Attachment, err error) {
	if err := names.ValidID(id); err != nil {
		return nil, err
	}
	if req.Network == "" {
		req.Network = Default
	}
	switch req.Network {
	case Host, None:
		return nil, fmt.Errorf("network %s: built in, nothing to attach to: %w", req.Network, errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.op.RLock()
	defer m.op.RUnlock()
	unlock := m.lockID(id)
	defer unlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("attach container %s to network %s: %w", names.ShortID(id), req.Network, err)
		}
	}()

	m.mu.Lock()
	r, ok := m.records[id]
	m.mu.Unlock()
	if ok && !r.Pending {
		return nil, fmt.Errorf("attached already, to %s: %w", r.Network, errdefs.ErrAlreadyExists)
	}
	if ok { // a CNI attach that failed and whose DEL failed too: again
		if err := m.detach(ctx, id); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	n, user := m.networks[req.Network]
	m.inFlight[req.Network]++ // RemoveNetwork waits for it
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.inFlight[req.Network]--; m.inFlight[req.Network] <= 0 {
			delete(m.inFlight, req.Network)
		}
		m.mu.Unlock()
	}()

	switch {
	case user:
	case req.Network == Default:
		n = Network{Name: Default, Kind: KindBridge, Bridge: m.defBridge, BuiltIn: true, Subnet: m.defAddr.Masked(), Gateway: m.defAddr.Addr()}
	default:
		list, err := m.cniList(ctx, req.Network)
		if err != nil {
			return nil, err
		}
		if req.External {
			return nil, fmt.Errorf("a CNI network cannot be set up by the runtime: %w", errdefs.ErrInvalidArgument)
		}
		return m.attachCNI(ctx, id, req, list)
	}
	return m.attachBridge(id, req, n)
}

func (m *Manager) attachBridge(id string, req AttachRequest, n Network) (_ *Attachment, err error) {
	var undo []func() error
	defer func() {
		if err == nil {
			return
		}
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](); uerr != nil {
				m.log.Warn("network: undo a failed attach", "container", id, "error", uerr)
			}
		}
	}()

	br, err := m.ensureBridge(n.Name, n.Bridge, netip.PrefixFrom(n.Gateway, n.Subnet.Bits()), n.Name == Default)
	if err != nil {
		return nil, err
	}
	n.Subnet, n.Gateway = br.addr.Masked(), br.addr.Addr() // raind0 may have another
	p := m.pool(n)
	ip, err := p.allocate(id)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() error { return p.release(ip, id) })
	a := Attachment{
		ID: id, Network: n.Name, Name: req.Name, Hostname: req.Hostname,
		IP: ip, Prefix: netip.PrefixFrom(ip, n.Subnet.Bits()), Gateway: n.Gateway,
		Bridge: n.Bridge, Veth: vethName(id), External: req.External,
	}
	if !req.External {
		path := m.nsPath(id)
		var ns netns.NsHandle
		var nh *netlink.Handle
		if isNamespace(path) {
			ns, nh, err = openNamespace(path)
		} else {
			ns, nh, err = createNamespace(path)
			if err == nil {
				undo = append(undo, func() error { return removeNamespace(path) })
			}
		}
		if err != nil {
			return nil, err
		}
		defer ns.Close()
		defer nh.Close()
		mac := containerMAC(ip)
		undo = append(undo, func() error { return m.deleteVeth(id, false) })
		if err := m.addVeth(id, br.index, ns, mac); err != nil {
			return nil, err
		}
		if err := configure(nh, a.Prefix, a.Gateway); err != nil {
			return nil, err
		}
		a.MAC, a.Namespace = mac.String(), path
	}
	r := &record{Kind: KindBridge, Attachment: a}
	if err := m.writeRecord(r); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.records[id] = r
	m.mu.Unlock()
	m.log.Debug("attached", "container", id, "network", n.Name, "ip", ip, "veth", a.Veth)
	return &a, nil
}

// addVeth makes container id's veth pair: the host side on the bridge
// bridgeIndex, up, hairpin; the peer eth0 in the namespace ns with mac.
func (m *Manager) addVeth(id string, bridgeIndex int, ns netns.NsHandle, mac net.HardwareAddr) error {
	la := netlink.NewLinkAttrs()
	la.Name, la.MasterIndex, la.Flags = vethName(id), bridgeIndex, net.FlagUp
	alias := m.vethAlias(id)
	v := netlink.NewVeth(la)
	v.PeerName, v.PeerHardwareAddr, v.PeerNamespace = "eth0", mac, netlink.NsFd(ns)
	err := m.h.LinkAdd(v)
	if errors.Is(err, unix.EEXIST) {
		// A veth of the same name: left by an earlier attempt for id (gone
		// with deleteVeth), another container's whose id starts with the
		// same 10 digits, or someone else's.
		if derr := m.deleteVeth(id, false); derr != nil {
			return derr
		}
		if err = m.h.LinkAdd(v); errors.Is(err, unix.EEXIST) {
			if l, lerr := m.h.LinkByName(la.Name); lerr == nil {
				return fmt.Errorf("veth %s exists (alias %q): %w", la.Name, l.Attrs().Alias, errdefs.ErrConflict)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("veth %s: %w", la.Name, err)
	}
	// The kernel takes no alias at creation. Until it has one, the veth
	// is known only by its peer in the namespace, which takes the pair
	// with it when Reconcile removes a namespace without a record.
	if err := m.h.LinkSetAlias(v, alias); err != nil {
		return fmt.Errorf("veth %s: alias: %w", la.Name, err)
	}
	// A container reaches its own published ports through the bridge.
	if err := m.h.LinkSetHairpin(v, true); err != nil {
		return fmt.Errorf("veth %s: hairpin: %w", la.Name, err)
	}
	return nil
}

// configure gives the namespace's eth0 (through the netlink socket nh in
// it) the address addr, up, and a default route through gw.
func configure(nh *netlink.Handle, addr netip.Prefix, gw netip.Addr) error {
	eth0, err := nh.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	if err := nh.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return fmt.Errorf("eth0: address %s: %w", addr, err)
	}
	if err := nh.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("eth0: up: %w", err)
	}
	def := &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
	if err := nh.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: def, Gw: gw.AsSlice()}); err != nil {
		return fmt.Errorf("eth0: default route via %s: %w", gw, err)
	}
	return nil
}

// Detach undoes container id's attachment: it takes the veth off the
// bridge, frees the address, removes the record and the namespace; for a
// CNI network it runs the plugins' DEL first. It works from whatever is
// left — a record, or only a namespace, an address or a veth that a crash
// left without one — and nothing left is no error.
//
// The veth is taken off the bridge at once, so that its address can be
// given again at once, and deleted in the background: deleting a network
// interface waits for RCU, 20–40 ms here, and Close waits for it. (Left
// to the namespace, it would live as long as the namespace does: as long
// as an orphaned TCP socket of the container retransmits, minutes.) A
// crash before it is deleted leaves it to Reconcile.
func (m *Manager) Detach(ctx context.Context, id string) error {
	if err := names.ValidID(id); err != nil {
		return err
	}
	m.op.RLock()
	defer m.op.RUnlock()
	unlock := m.lockID(id)
	defer unlock()
	if err := m.detach(ctx, id); err != nil {
		return fmt.Errorf("detach container %s: %w", names.ShortID(id), err)
	}
	return nil
}

// detach is Detach with the id's lock held.
func (m *Manager) detach(ctx context.Context, id string) error {
	m.mu.Lock()
	r := m.records[id]
	m.mu.Unlock()
	if r != nil && r.Kind == KindCNI {
		// The record stays until DEL succeeds: it is what DEL needs.
		if err := m.delCNI(ctx, r); err != nil {
			return err
		}
	}
	// The record goes first: whatever a crash leaves after it has no
	// record, and Reconcile removes that whatever it keeps.
	if err := m.removeRecord(id); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.records, id)
	m.mu.Unlock()
	var errs []error
	if err := m.unplugVeth(id, r != nil && r.External); err != nil {
		errs = append(errs, err)
	}
	if r != nil && r.Kind == KindBridge {
		p := pool{dir: filepath.Join(m.state, "ipam", r.Network)}
		if err := p.release(r.IP, id); err != nil {
			errs = append(errs, err)
		}
	} else if err := m.releaseAll(id); err != nil {
		errs = append(errs, err)
	}
	if err := removeNamespace(m.nsPath(id)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ownVeth returns container id's veth when it is this Manager's for id —
// or when it has no alias: the runtime made it (external), or a daemon
// killed between its creation and its alias left it (its name is id's) —
// and nil when there is none.
func (m *Manager) ownVeth(id string, external bool) (netlink.Link, error) {
	l, err := m.h.LinkByName(vethName(id))
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("veth %s: %w", vethName(id), err)
	}
	owner, ours := m.vethOwner(l.Attrs().Alias)
	if l.Type() != "veth" || !(ours && owner == id || l.Attrs().Alias == "") {
		return nil, nil
	}
	return l, nil
}

// unplugVeth takes container id's veth off its bridge and deletes it in
// the background (by its index, which no other interface gets meanwhile).
func (m *Manager) unplugVeth(id string, external bool) error {
	l, err := m.ownVeth(id, external)
	if l == nil || err != nil {
		return err
	}
	if l.Attrs().MasterIndex != 0 {
		if err := m.h.LinkSetNoMaster(l); err != nil && !isNotFound(err) {
			return fmt.Errorf("veth %s: off the bridge: %w", l.Attrs().Name, err)
		}
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		// A handle of its own: a request holds its socket until answered.
		if err := m.hDel.LinkDel(l); err != nil && !isNotFound(err) {
			m.log.Warn("network: delete a veth", "veth", l.Attrs().Name, "error", err)
		}
	}()
	return nil
}

// deleteVeth deletes container id's veth (and so its peer).
func (m *Manager) deleteVeth(id string, external bool) error {
	l, err := m.ownVeth(id, external)
	if l == nil || err != nil {
		return err
	}
	if err := m.h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete veth %s: %w", l.Attrs().Name, err)
	}
	return nil
}

// releaseAll frees every address id holds, in every network.
func (m *Manager) releaseAll(id string) error {
	dirs, err := os.ReadDir(filepath.Join(m.state, "ipam"))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dirs {
		p := pool{dir: filepath.Join(m.state, "ipam", d.Name())}
		used, err := p.list()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for a, holder := range used {
			if holder == id {
				if err := os.Remove(filepath.Join(p.dir, a.String())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}
