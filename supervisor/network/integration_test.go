package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

func TestNamespace(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	id := names.NewID()
	path, err := e.m.NewNamespace(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(e.cfg.State, "netns", id) || !isNamespace(path) {
		t.Fatalf("NewNamespace = %s (a namespace: %v)", path, isNamespace(path))
	}
	if again, err := e.m.NewNamespace(ctx, id); err != nil || again != path {
		t.Errorf("NewNamespace again = %s, %v", again, err)
	}
	// Loopback is up inside: a connection to 127.0.0.1 there works.
	talk(t, path, netip.MustParseAddr("127.0.0.1"), path)
	ns, h, err := openNamespace(path)
	if err != nil {
		t.Fatal(err)
	}
	links, err := h.LinkList()
	h.Close()
	ns.Close()
	if err != nil || len(links) != 1 || links[0].Attrs().Name != "lo" || links[0].Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("inside: %v, %v; want lo, up, alone", links, err)
	}

	// No thread given to a goroutine is left in a namespace of ours: make
	// some more, then look from many goroutines at once.
	var more []string
	for range 10 {
		p, err := e.m.NewNamespace(ctx, names.NewID())
		if err != nil {
			t.Fatal(err)
		}
		more = append(more, p)
	}
	var wg sync.WaitGroup
	var bad sync.Map
	for range 20 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if l, err := os.Readlink("/proc/thread-self/ns/net"); err != nil || l != host {
				bad.Store(l, err)
			}
		})
	}
	wg.Wait()
	bad.Range(func(k, v any) bool {
		t.Errorf("a goroutine ran in %v (%v), not the host's %s", k, v, host)
		return true
	})

	if err := e.m.RemoveNamespace(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after RemoveNamespace: %v", err)
	}
	if err := e.m.RemoveNamespace(ctx, id); err != nil {
		t.Errorf("RemoveNamespace again: %v", err)
	}
	for _, p := range more {
		if err := e.m.RemoveNamespace(ctx, filepath.Base(p)); err != nil {
			t.Error(err)
		}
	}
	if _, err := e.m.NewNamespace(ctx, "../x"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("NewNamespace(../x): %v", err)
	}
	e.assertClean(t)
}

// checkInside checks a's namespace: eth0 with a's address and MAC, up,
// and a default route through the gateway.
func checkInside(t *testing.T, a *Attachment) {
	t.Helper()
	ns, h, err := openNamespace(a.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth0.Attrs().HardwareAddr.String() != a.MAC || eth0.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("eth0: %s %v; want %s, up", eth0.Attrs().HardwareAddr, eth0.Attrs().Flags, a.MAC)
	}
	addrs, _ := h.AddrList(eth0, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != a.Prefix.String() {
		t.Errorf("eth0's addresses: %v; want %s", addrs, a.Prefix)
	}
	routes, _ := h.RouteList(eth0, netlink.FAMILY_V4)
	def := false
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.String() == a.Gateway.String() {
			def = true
		}
	}
	if !def {
		t.Errorf("no default route via %s: %v", a.Gateway, routes)
	}
}

func TestAttachDefault(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ida, idb := names.NewID(), names.NewID()
	a, err := e.m.Attach(ctx, ida, AttachRequest{Name: "a", Hostname: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.m.Attach(ctx, idb, AttachRequest{Network: Default, Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	subnet := e.addr.Masked()
	first := subnet.Addr().Next()
	if a.IP != first || b.IP != first.Next() || a.Gateway != e.addr.Addr() || a.Prefix != netip.PrefixFrom(first, 24) {
		t.Errorf("addresses: a %s (%s via %s), b %s; want %s, %s via %s", a.IP, a.Prefix, a.Gateway, b.IP, first, first.Next(), e.addr.Addr())
	}
	if a.Network != Default || a.Bridge != e.bridge || a.Veth != "vc"+ida[:10] || a.Namespace != filepath.Join(e.cfg.State, "netns", ida) {
		t.Errorf("attachment: %+v", a)
	}
	checkInside(t, a)
	checkInside(t, b)

	// The bridge: ours, with the address, route_localnet; the veths its
	// ports, hairpin.
	br, err := e.h.LinkByName(e.bridge)
	if err != nil {
		t.Fatal(err)
	}
	if addrs, _ := e.m.addrs(br); len(addrs) != 1 || addrs[0] != e.addr {
		t.Errorf("bridge's addresses: %v", addrs)
	}
	if v, _ := os.ReadFile("/proc/sys/net/ipv4/conf/" + e.bridge + "/route_localnet"); string(v) != "1\n" {
		t.Errorf("route_localnet = %q", v)
	}
	if v, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(v) != "1\n" {
		t.Errorf("ip_forward = %q", v)
	}
	for _, att := range []*Attachment{a, b} {
		v, err := e.h.LinkByName(att.Veth)
		if err != nil {
			t.Fatal(err)
		}
		hairpin, _ := os.ReadFile("/sys/class/net/" + att.Veth + "/brport/hairpin_mode")
		if v.Attrs().MasterIndex != br.Attrs().Index || string(hairpin) != "1\n" || v.Attrs().Alias != e.m.vethAlias(att.ID) {
			t.Errorf("veth %s: master %d (bridge %d), hairpin %q, alias %q", att.Veth, v.Attrs().MasterIndex, br.Attrs().Index, hairpin, v.Attrs().Alias)
		}
	}

	// Traffic: a ↔ b by address, a → the gateway, the host → b.
	talk(t, a.Namespace, a.IP, b.Namespace)
	talk(t, b.Namespace, b.IP, a.Namespace)
	talk(t, "", a.Gateway, a.Namespace)
	talk(t, b.Namespace, b.IP, "")

	if peers := e.m.Peers(Default); len(peers) != 2 || peers[0].Name != "a" || peers[1].Name != "b" {
		t.Errorf("Peers = %+v", peers)
	}
	if got, err := e.m.Attachment(ida); err != nil || got.IP != a.IP {
		t.Errorf("Attachment = %+v, %v", got, err)
	}
	if _, err := e.m.Attach(ctx, ida, AttachRequest{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("a second Attach: %v; want already exists", err)
	}
	for _, n := range []string{Host, None} {
		if _, err := e.m.Attach(ctx, names.NewID(), AttachRequest{Network: n}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Attach to %s: %v; want invalid argument", n, err)
		}
	}
	if _, err := e.m.Attach(ctx, names.NewID(), AttachRequest{Network: "nope"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Attach to an unknown network: %v; want not found", err)
	}

	for _, id := range []string{ida, idb} {
		if err := e.m.Detach(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := e.m.Detach(ctx, id); err != nil {
			t.Errorf("Detach again: %v", err)
		}
	}
	if _, err := e.m.Attachment(ida); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Attachment after Detach: %v", err)
	}
	if len(e.m.Peers(Default)) != 0 {
		t.Error("Peers after Detach")
	}
	e.assertClean(t)
	// The address comes back, with the same MAC.
	c, err := e.m.Attach(ctx, names.NewID(), AttachRequest{})
	if err != nil || c.IP != a.IP || c.MAC != a.MAC {
		t.Errorf("after Detach: %+v, %v; want %s %s again", c, err, a.IP, a.MAC)
	}
	if err := e.m.Detach(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
}

func TestUserNetworks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	subnet := freeTestSubnet(t, e.h, e.addr.Masked())
	name := "web-" + randHex(6)
	bridge := "cnt" + randHex(6)
	e.own(bridge)
	e.own(defaultBridgeName("other"))
	n, err := e.m.CreateNetwork(ctx, NetworkConfig{Name: name, Bridge: bridge, Subnet: subnet.String()})
	if err != nil {
		t.Fatal(err)
	}
	if n.Kind != KindBridge || n.Bridge != bridge || n.Subnet != subnet || n.Gateway != subnet.Addr().Next() || n.BuiltIn {
		t.Errorf("CreateNetwork = %+v", n)
	}
	if br, err := e.h.LinkByName(bridge); err != nil || br.Attrs().Alias != e.m.bridgeAlias(name) {
		t.Fatalf("bridge %s: %v", bridge, err)
	}
	for _, c := range []struct {
		cfg  NetworkConfig
		kind error
	}{
		{NetworkConfig{Name: name, Subnet: freeTestSubnet(t, e.h, subnet, e.addr.Masked()).String()}, errdefs.ErrAlreadyExists},
		{NetworkConfig{Name: Default}, errdefs.ErrAlreadyExists},
		{NetworkConfig{Name: Host}, errdefs.ErrAlreadyExists},
		{NetworkConfig{Name: "other", Subnet: subnet.String()}, errdefs.ErrInvalidArgument},                                       // the same subnet
		{NetworkConfig{Name: "other", Subnet: netip.PrefixFrom(subnet.Addr(), 23).Masked().String()}, errdefs.ErrInvalidArgument}, // over it
		{NetworkConfig{Name: "other", Subnet: e.addr.Masked().String()}, errdefs.ErrInvalidArgument},                              // raind0's
		{NetworkConfig{Name: "other", Subnet: "10.199.0.1/24"}, errdefs.ErrInvalidArgument},
		{NetworkConfig{Name: "other", Subnet: "fd00::/64"}, errdefs.ErrInvalidArgument},
		{NetworkConfig{Name: "other", Bridge: bridge, Subnet: "10.198.0.0/24"}, errdefs.ErrInvalidArgument}, // its bridge
		{NetworkConfig{Name: "other", Bridge: e.bridge, Subnet: "10.198.0.0/24"}, errdefs.ErrInvalidArgument},
		{NetworkConfig{Name: "-bad"}, errdefs.ErrInvalidArgument},
		{NetworkConfig{Name: "other", Bridge: "x234567890123456"}, errdefs.ErrInvalidArgument},
		{NetworkConfig{Name: "other", Subnet: "10.198.0.0/24", Gateway: "10.198.1.1"}, errdefs.ErrInvalidArgument},
		{NetworkConfig{Name: "other", Subnet: "host"}, errdefs.ErrInvalidArgument}, // a route of the host's
	} {
		if c.cfg.Subnet == "host" {
			routes, err := e.m.hostRoutes(bridge)
			if err != nil {
				t.Fatal(err)
			}
			c.cfg.Subnet = ""
			for _, r := range routes {
				// Not a test bridge: it may go while the test runs.
				if r.dst.Bits() >= 8 && r.dst.Bits() <= 30 && !strings.HasPrefix(r.dev, "cnt") && c.cfg.Subnet == "" {
					c.cfg.Subnet = r.dst.String()
				}
			}
			if c.cfg.Subnet == "" {
				t.Log("the host has no route to a subnet to test against")
				continue
			}
		}
		if _, err := e.m.CreateNetwork(ctx, c.cfg); !errors.Is(err, c.kind) {
			t.Errorf("CreateNetwork(%+v): %v; want %v", c.cfg, err, c.kind)
		} else {
			t.Logf("CreateNetwork(%+v): %v", c.cfg, err)
		}
	}
	if _, err := e.h.LinkByName(defaultBridgeName("other")); !isNotFound(err) {
		t.Errorf("a refused network left its bridge: %v", err)
	}

	// It survives a restart.
	m2 := e.open(t)
	if got, err := m2.Network(ctx, name); err != nil || got.Subnet != n.Subnet || got.Bridge != n.Bridge {
		t.Errorf("after a restart: %+v, %v", got, err)
	}
	m2.Close()
	all, err := e.m.Networks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, o := range all {
		listed = append(listed, o.Name+"/"+o.Kind)
	}
	if fmt.Sprint(listed) != fmt.Sprintf("[host/host none/none raind0/bridge %s/bridge]", name) {
		t.Errorf("Networks = %v", listed)
	}

	// Two containers on it reach each other; the gateway is .1.
	a, err := e.m.Attach(ctx, names.NewID(), AttachRequest{Network: name, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.m.Attach(ctx, names.NewID(), AttachRequest{Network: name, Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if a.IP != n.Gateway.Next() || b.IP != n.Gateway.Next().Next() || a.Bridge != bridge {
		t.Errorf("on %s: a %s, b %s, bridge %s", name, a.IP, b.IP, a.Bridge)
	}
	talk(t, b.Namespace, b.IP, a.Namespace)
	talk(t, "", n.Gateway, b.Namespace)
	if p := e.m.Peers(name); len(p) != 2 || len(e.m.Peers(Default)) != 0 {
		t.Errorf("Peers(%s) = %v", name, p)
	}

	for _, c := range []struct {
		name string
		kind error
	}{{name, errdefs.ErrConflict}, {Default, errdefs.ErrInvalidArgument}, {Host, errdefs.ErrInvalidArgument}, {None, errdefs.ErrInvalidArgument}, {"nope", errdefs.ErrNotFound}} {
		if err := e.m.RemoveNetwork(ctx, c.name); !errors.Is(err, c.kind) {
			t.Errorf("RemoveNetwork(%s): %v; want %v", c.name, err, c.kind)
		} else {
			t.Logf("RemoveNetwork(%s): %v", c.name, err)
		}
	}
	for _, att := range []*Attachment{a, b} {
		if err := e.m.Detach(ctx, att.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.m.RemoveNetwork(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.LinkByName(bridge); !isNotFound(err) {
		t.Errorf("the bridge stayed: %v", err)
	}
	if _, err := e.m.Network(ctx, name); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Network after RemoveNetwork: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.Root, "networks", name+".json")); !os.IsNotExist(err) {
		t.Errorf("its file: %v", err)
	}
	e.assertClean(t)
}

// A bridge that is not Condenser's is used as it is, or refused; never
// changed, never deleted.
func TestForeignBridge(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other := freeTestSubnet(t, e.h, e.addr.Masked())
	for _, c := range []struct {
		name string
		addr string // on the bridge; "" none
		ok   bool
	}{
		{"another /24", netip.PrefixFrom(other.Addr().Next(), 24).String(), true},
		{"a /25", netip.PrefixFrom(other.Addr().Next(), 25).String(), false},
		{"no address", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			la := netlink.NewLinkAttrs()
			la.Name, la.Flags = e.bridge, net.FlagUp
			br := &netlink.Bridge{LinkAttrs: la}
			if err := e.h.LinkAdd(br); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.h.LinkDel(br) })
			var want []netip.Prefix
			if c.addr != "" {
				p := netip.MustParsePrefix(c.addr)
				if err := e.h.AddrAdd(br, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
					t.Fatal(err)
				}
				want = []netip.Prefix{p}
			}
			m := e.open(t) // a Manager that has not seen the bridge yet
			a, err := m.Attach(ctx, names.NewID(), AttachRequest{})
			if !c.ok {
				if !errors.Is(err, errdefs.ErrConflict) {
					t.Fatalf("Attach: %v; want a conflict", err)
				}
				t.Log(err)
			} else {
				if err != nil {
					t.Fatal(err)
				}
				p := want[0]
				if a.Gateway != p.Addr() || a.Prefix.Masked() != p.Masked() || a.IP != p.Masked().Addr().Next().Next() {
					t.Errorf("on the bridge with %s: %+v", p, a)
				}
				if n, _ := m.Network(ctx, Default); n.Subnet != p.Masked() || n.Gateway != p.Addr() {
					t.Errorf("Network(raind0) = %+v", n)
				}
				talk(t, "", a.Gateway, a.Namespace)
				if err := m.Detach(ctx, a.ID); err != nil {
					t.Fatal(err)
				}
			}
			if got, _ := m.addrs(br); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("the bridge's addresses became %v, were %v", got, want)
			}
			if err := m.Reconcile(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := e.h.LinkByName(e.bridge); err != nil {
				t.Errorf("the bridge is gone: %v", err)
			}
			if v, _ := os.ReadFile("/proc/sys/net/ipv4/conf/" + e.bridge + "/route_localnet"); string(v) != "0\n" {
				t.Errorf("route_localnet = %q on someone else's bridge", v)
			}
		})
	}
	e.assertClean(t)
}

// A daemon killed at any point: whatever is left goes with Reconcile.
func TestReconcile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	kept, err := e.m.Attach(ctx, names.NewID(), AttachRequest{Name: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := e.m.Attach(ctx, names.NewID(), AttachRequest{Name: "dropped"})
	if err != nil {
		t.Fatal(err)
	}
	// A record lost (the kill came between its removal and the rest of a
	// Detach): veth, namespace, address without a record.
	noRecord, err := e.m.Attach(ctx, names.NewID(), AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(e.m.recordFile(noRecord.ID))
	// A namespace alone (killed after NewNamespace), an address alone,
	// a temporary address file, a veth alone, a namespace file never
	// mounted.
	nsOnly, _ := e.m.NewNamespace(ctx, names.NewID())
	p := e.m.pool(Network{Name: Default, Subnet: e.addr.Masked(), Gateway: e.addr.Addr()})
	if _, err := p.allocate(names.NewID()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.temp(names.NewID()); err != nil {
		t.Fatal(err)
	}
	vethID := names.NewID()
	la := netlink.NewLinkAttrs()
	la.Name = vethName(vethID)
	e.own(la.Name)
	lone := &netlink.Veth{LinkAttrs: la, PeerName: "vp" + vethID[:10], PeerTxQLen: -1}
	if err := e.h.LinkAdd(lone); err != nil {
		t.Fatal(err)
	}
	if err := e.h.LinkSetAlias(lone, e.m.vethAlias(vethID)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.cfg.State, "netns", names.NewID()), nil, 0o444)
	os.WriteFile(filepath.Join(e.cfg.State, "attachments", names.NewID()+".json"), []byte("{"), 0o600)

	// The daemon dies: no Detach, no Close. Another starts.
	m := e.open(t)
	if _, err := m.Attachment(kept.ID); err != nil {
		t.Fatalf("the new Manager does not know the kept attachment: %v", err)
	}
	// The kept one's address file was lost too: Reconcile takes it again.
	os.Remove(filepath.Join(e.cfg.State, "ipam", Default, kept.IP.String()))
	if err := m.Reconcile(ctx, func(id string) bool { return id == kept.ID || id == noRecord.ID }); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attachment(dropped.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("dropped: %v", err)
	}
	for _, gone := range []string{dropped.Namespace, noRecord.Namespace, nsOnly} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("namespace %s: %v", gone, err)
		}
	}
	for _, v := range []string{dropped.Veth, noRecord.Veth, la.Name} {
		if _, err := e.h.LinkByName(v); !isNotFound(err) {
			t.Errorf("veth %s: %v", v, err)
		}
	}
	used, _ := p.list()
	if len(used) != 1 || used[kept.IP] != kept.ID {
		t.Errorf("addresses after Reconcile: %v; want only %s", used, kept.IP)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.cfg.State, "netns")); len(ents) != 1 {
		t.Errorf("namespaces after Reconcile: %d, want 1", len(ents))
	}
	if ents, _ := os.ReadDir(filepath.Join(e.cfg.State, "attachments")); len(ents) != 1 {
		t.Errorf("records after Reconcile: %d, want 1", len(ents))
	}
	// The kept one still works, and its address is not handed out again.
	checkInside(t, kept)
	talk(t, "", kept.Gateway, kept.Namespace)
	again, err := m.Attach(ctx, names.NewID(), AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if again.IP == kept.IP {
		t.Errorf("the kept address was handed out again")
	}
	talk(t, kept.Namespace, kept.IP, again.Namespace)

	// Then nothing is kept: nothing is left.
	m3 := e.open(t)
	if err := m3.Reconcile(ctx, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
}

func TestAttachDetachCycles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n := 200
	if testing.Short() {
		n = 20
	}
	for i := range n {
		id := names.NewID()
		a, err := e.m.Attach(ctx, id, AttachRequest{})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if want := e.addr.Masked().Addr().Next(); a.IP != want {
			t.Fatalf("cycle %d: %s, want %s", i, a.IP, want)
		}
		if err := e.m.Detach(ctx, id); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	e.assertClean(t)
	if _, err := e.h.LinkByName(e.bridge); err != nil {
		t.Errorf("the bridge: %v", err)
	}
}

func TestAttachConcurrent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 24
	var wg sync.WaitGroup
	atts := make([]*Attachment, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { atts[i], errs[i] = e.m.Attach(ctx, names.NewID(), AttachRequest{}) })
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for i, a := range atts {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[a.IP] {
			t.Errorf("%s twice", a.IP)
		}
		seen[a.IP] = true
	}
	if got := e.ports(t, e.bridge); got != n {
		t.Errorf("%d ports, want %d", got, n)
	}
	talk(t, atts[0].Namespace, atts[0].IP, atts[n-1].Namespace)
	for _, a := range atts {
		wg.Go(func() {
			if err := e.m.Detach(ctx, a.ID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	e.assertClean(t)
}

// External: the runtime (Droplet) makes the veth; Condenser gives the
// address and the name.
func TestAttachExternal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := names.NewID()
	a, err := e.m.Attach(ctx, id, AttachRequest{External: true})
	if err != nil {
		t.Fatal(err)
	}
	if a.Namespace != "" || a.MAC != "" || a.Veth != vethName(id) || a.IP != e.addr.Masked().Addr().Next() || a.Bridge != e.bridge {
		t.Errorf("external: %+v", a)
	}
	if _, err := os.Stat(e.m.nsPath(id)); !os.IsNotExist(err) {
		t.Errorf("a namespace was made: %v", err)
	}
	// What Droplet would do: a veth of that name, no alias, on the bridge.
	br, _ := e.h.LinkByName(e.bridge)
	la := netlink.NewLinkAttrs()
	la.Name, la.MasterIndex = a.Veth, br.Attrs().Index
	e.own(la.Name)
	if err := e.h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "vp" + id[:10], PeerTxQLen: -1}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
}

// TestAttachOverAVethWithoutAlias: a daemon killed between a veth's
// creation and its alias leaves a veth of the container's name with no
// alias; the container's next attach takes its place instead of failing
// (found by the chaos test: a start of a stopped container answered 409).
func TestAttachOverAVethWithoutAlias(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	id := names.NewID()
	la := netlink.NewLinkAttrs()
	la.Name = vethName(id)
	e.own(la.Name)
	if err := e.h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "cpt" + id[:8]}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Attach(ctx, id, AttachRequest{}); err != nil {
		t.Fatalf("attach over a crashed attach's veth: %v", err)
	}
	if err := e.m.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.waitVethsGone(t)
	if _, err := e.h.LinkByName(la.Name); err == nil {
		t.Errorf("veth %s left", la.Name)
	}
}
