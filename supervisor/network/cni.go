package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/raind/condenser/internal/errdefs"
)

// cniNet is a network of a conflist in Config.CNIConfDir.
type cniNet struct {
	file string
	list *libcni.NetworkConfigList
}

// network describes l, with what its bridge and host-local plugins say of
// its bridge and subnet.
func (l cniNet) network() Network {
	n := Network{Name: l.list.Name, Kind: KindCNI, ConfigFile: l.file}
	for _, p := range l.list.Plugins {
		var c struct {
			Bridge string `json:"bridge"`
			IPAM   struct {
				Subnet  string `json:"subnet"`
				Gateway string `json:"gateway"`
				Ranges  [][]struct {
					Subnet  string `json:"subnet"`
					Gateway string `json:"gateway"`
				} `json:"ranges"`
			} `json:"ipam"`
		}
		if json.Unmarshal(p.Bytes, &c) != nil {
			continue
		}
		if n.Bridge == "" && p.Network.Type == "bridge" {
			n.Bridge = c.Bridge
			if n.Bridge == "" {
				n.Bridge = "cni0" // the bridge plugin's default
			}
		}
		subnet, gw := c.IPAM.Subnet, c.IPAM.Gateway
		for _, set := range c.IPAM.Ranges {
			for _, r := range set {
				if s, err := netip.ParsePrefix(r.Subnet); subnet == "" && err == nil && s.Addr().Is4() {
					subnet, gw = r.Subnet, r.Gateway
				}
			}
		}
		if s, err := netip.ParsePrefix(subnet); err == nil && !n.Subnet.IsValid() {
			n.Subnet = s.Masked()
			if g, err := netip.ParseAddr(gw); err == nil {
				n.Gateway = g
			} else if s.Addr().Is4() {
				n.Gateway = n.Subnet.Addr().Next() // host-local's default
			}
		}
	}
	return n
}

// cniLists reads the conflists of Config.CNIConfDir, by file name; of two
// with the same network name the first is used, and one whose name is a
// built-in or user-defined network's is ignored.
func (m *Manager) cniLists(ctx context.Context) ([]cniNet, error) {
	if m.cniConfDir == "" {
		return nil, nil
	}
	files, err := libcni.ConfFiles(m.cniConfDir, []string{".conflist"})
	if err != nil {
		return nil, fmt.Errorf("CNI configuration: %w", err)
	}
	slices.Sort(files)
	var out []cniNet
	seen := map[string]bool{}
	for _, f := range files {
		l, err := libcni.NetworkConfFromFile(f)
		if err == nil {
			err = validName(l.Name)
		}
		if err != nil {
			m.log.Warn("network: ignoring a CNI conflist", "file", f, "error", err)
			continue
		}
		if seen[l.Name] || m.taken(l.Name) {
			m.log.Warn("network: ignoring a CNI conflist whose network name is taken", "file", f, "network", l.Name)
			continue
		}
		seen[l.Name] = true
		out = append(out, cniNet{file: f, list: l})
	}
	return out, nil
}

// cniList returns the CNI network name; none wraps errdefs.ErrNotFound.
func (m *Manager) cniList(ctx context.Context, name string) (cniNet, error) {
	lists, err := m.cniLists(ctx)
	if err != nil {
		return cniNet{}, err
	}
	for _, l := range lists {
		if l.list.Name == name {
			return l, nil
		}
	}
	return cniNet{}, fmt.Errorf("network %s: %w", name, errdefs.ErrNotFound)
}

func (m *Manager) runtimeConf(id, netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0"}
}

// attachCNI runs the plugins of l (ADD) for container id in its namespace.
// The record is written first, pending: a crash during ADD leaves what
// Detach and Reconcile need to run DEL.
func (m *Manager) attachCNI(ctx context.Context, id string, req AttachRequest, l cniNet) (_ *Attachment, err error) {
	path := m.nsPath(id)
	if !isNamespace(path) {
		ns, h, err := createNamespace(path)
		if err != nil {
			return nil, err
		}
		h.Close()
		ns.Close()
		defer func() {
			if err != nil {
				if rerr := removeNamespace(path); rerr != nil {
					m.log.Warn("network: undo a failed attach", "container", id, "error", rerr)
				}
			}
		}()
	}
	r := &record{Kind: KindCNI, Pending: true, Attachment: Attachment{
		ID: id, Network: l.list.Name, Name: req.Name, Hostname: req.Hostname, Namespace: path,
	}}
	if err := m.writeRecord(r); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.records[id] = r
	m.mu.Unlock()
	defer func() {
		if err == nil {
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := m.cni.DelNetworkList(dctx, l.list, m.runtimeConf(id, path)); derr != nil {
			m.log.Warn("network: undo a failed CNI attach (DEL)", "container", id, "network", l.list.Name, "error", derr)
			return // the pending record stays for Reconcile
		}
		if rerr := m.removeRecord(id); rerr != nil {
			m.log.Warn("network: undo a failed attach", "container", id, "error", rerr)
		}
		m.mu.Lock()
		delete(m.records, id)
		m.mu.Unlock()
	}()
	res, err := m.cni.AddNetworkList(ctx, l.list, m.runtimeConf(id, path))
	if err != nil {
		return nil, fmt.Errorf("CNI ADD: %w", err)
	}
	a, err := fromResult(r.Attachment, res, l.network().Bridge)
	if err != nil {
		return nil, err
	}
	done := &record{Kind: KindCNI, Attachment: a}
	if err := m.writeRecord(done); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.records[id] = done
	m.mu.Unlock()
	return &a, nil
}

// fromResult fills a from a CNI result: the first IPv4 address of the
// container's interface, its gateway and MAC, the bridge and the host's
// veth.
func fromResult(a Attachment, res types.Result, bridge string) (Attachment, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return a, fmt.Errorf("CNI result: %w", err)
	}
	for _, ifc := range r.Interfaces {
		switch {
		case ifc.Sandbox != "":
			a.MAC = ifc.Mac
		case ifc.Name == bridge:
			a.Bridge = ifc.Name
		default:
			a.Veth = ifc.Name
		}
	}
	for _, ip := range r.IPs {
		addr, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok || !addr.Unmap().Is4() {
			continue
		}
		if ip.Interface != nil && *ip.Interface < len(r.Interfaces) && r.Interfaces[*ip.Interface].Sandbox == "" {
			continue
		}
		ones, _ := ip.Address.Mask.Size()
		a.IP = addr.Unmap()
		a.Prefix = netip.PrefixFrom(a.IP, ones)
		if gw, ok := netip.AddrFromSlice(ip.Gateway); ok {
			a.Gateway = gw.Unmap()
		}
		return a, nil
	}
	return a, fmt.Errorf("CNI result: no IPv4 address for the container: %w", errdefs.ErrInvalidArgument)
}

// delCNI runs the plugins' DEL for r, with the conflist as it is or, when
// it is gone, as libcni cached it at ADD.
func (m *Manager) delCNI(ctx context.Context, r *record) error {
	if m.cni == nil {
		m.log.Warn("network: no CNI configuration directory: cannot run DEL", "container", r.ID, "network", r.Network)
		return nil
	}
	ns := r.Namespace
	if !isNamespace(ns) {
		ns = ""
	}
	rt := m.runtimeConf(r.ID, ns)
	var list *libcni.NetworkConfigList
	if l, err := m.cniList(ctx, r.Network); err == nil {
		list = l.list
	} else if b, _, cerr := m.cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: r.Network}, rt); cerr == nil && b != nil {
		if list, err = libcni.NetworkConfFromBytes(b); err != nil {
			list = nil
		}
	}
	if list == nil {
		m.log.Warn("network: the CNI network is gone: cannot run DEL", "container", r.ID, "network", r.Network)
		return nil
	}
	if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("CNI DEL on network %s: %w", r.Network, err)
	}
	return nil
}

// gcCNI runs libcni's GC on every CNI network: DEL for the attachments it
// cached that are not in valid, and the plugins' GC (spec ≥ 1.1.0).
func (m *Manager) gcCNI(ctx context.Context, valid []types.GCAttachment) error {
	if m.cni == nil {
		return nil
	}
	lists, err := m.cniLists(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range lists {
		if err := m.cni.GCNetworkList(ctx, l.list, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
			errs = append(errs, fmt.Errorf("CNI GC of network %s: %w", l.list.Name, err))
		}
	}
	return errors.Join(errs...)
}
