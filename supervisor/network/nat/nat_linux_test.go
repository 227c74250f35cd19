package nat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/testutil"
)

// tcpPort and udpPort are published ports on every host address.
func tcpPort(host, ctr uint16) Port {
	return Port{HostIP: netip.IPv4Unspecified(), HostPort: host, ContainerPort: ctr, Protocol: "tcp"}
}

func udpPort(host, ctr uint16) Port {
	return Port{HostIP: netip.IPv4Unspecified(), HostPort: host, ContainerPort: ctr, Protocol: "udp"}
}

func mustFetch(t *testing.T, nsPath, addr, wantPrefix string) {
	t.Helper()
	got, err := fetch(nsPath, addr)
	if err != nil {
		t.Fatalf("fetch %s from %s: %v", addr, where(nsPath), err)
	}
	if !strings.HasPrefix(got, wantPrefix) {
		t.Fatalf("fetch %s from %s: %q, want %q…", addr, where(nsPath), got, wantPrefix)
	}
}

func mustNotFetch(t *testing.T, nsPath, addr string) {
	t.Helper()
	if got, err := fetch(nsPath, addr); err == nil {
		t.Fatalf("fetch %s from %s: %q, want a failure", addr, where(nsPath), got)
	}
}

func where(nsPath string) string {
	if nsPath == "" {
		return "the host"
	}
	return nsPath
}

func addr(ip netip.Addr, port uint16) string {
	return netip.AddrPortFrom(ip, port).String()
}

var localhost = netip.MustParseAddr("127.0.0.1")

// tags returns the comments of the rules of a chain of n's table.
func tags(t *testing.T, n *NAT, chain string) []string {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	rules, err := n.rules(chain)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rules {
		c, _ := ruleComment(r.UserData)
		out = append(out, c)
	}
	return out
}

func count(tags []string, tag string) int {
	k := 0
	for _, s := range tags {
		if s == tag {
			k++
		}
	}
	return k
}

// TestPublish publishes a TCP and a UDP port of container a and reaches
// them the ways a user would: from the host through 127.0.0.1 and its
// other addresses, from another container and from the container itself
// through the host's address (hairpin), and from another host through the
// uplink. Then conflicts, and Unpublish.
func TestPublish(t *testing.T) {
	checkHost(t)
	tp := newTopo(t)
	n := openNAT(t, Config{})
	ctx := context.Background()
	if err := n.AddNetwork(ctx, "test", tp.subnet, tp.bridge); err != nil {
		t.Fatal(err)
	}
	serveTCP(t, tp.a, "a", 80)
	serveTCP(t, tp.b, "b", 80)
	serveUDP(t, tp.a, "a", 53)
	web, dns := freePort(t, "tcp"), freePort(t, "udp")
	if err := n.Publish(ctx, "ctr-a", tp.a.ip, []Port{tcpPort(web, 80), udpPort(dns, 53)}); err != nil {
		t.Fatal(err)
	}
	gwSeen := "a sees " + tp.gw.String() + ":"

	t.Run("HostLoopback", func(t *testing.T) {
		// DNAT in output, then masquerade of 127.0.0.1 to the bridge's
		// address (route_localnet lets it leave by the bridge).
		mustFetch(t, "", addr(localhost, web), gwSeen)
	})
	t.Run("HostBridgeAddress", func(t *testing.T) {
		mustFetch(t, "", addr(tp.gw, web), gwSeen)
	})
	t.Run("HostOtherAddress", func(t *testing.T) {
		mustFetch(t, "", addr(tp.upAddr, web), "a sees "+tp.upAddr.String()+":")
	})
	t.Run("OtherContainer", func(t *testing.T) {
		// DNAT in prerouting on the bridge, and the hairpin masquerade:
		// without it a would answer b directly, from the wrong address.
		mustFetch(t, tp.b.path, addr(tp.gw, web), gwSeen)
		mustFetch(t, tp.b.path, addr(tp.upAddr, web), gwSeen)
	})
	t.Run("SameContainer", func(t *testing.T) {
		mustFetch(t, tp.a.path, addr(tp.gw, web), gwSeen)
	})
	t.Run("OtherHost", func(t *testing.T) {
		// From outside the client's address is kept.
		mustFetch(t, tp.out.path, addr(tp.upAddr, web), "a sees "+tp.out.ip.String()+":")
	})
	t.Run("UDP", func(t *testing.T) {
		got, err := echo(addr(localhost, dns), "ping")
		if err != nil {
			t.Fatal(err)
		}
		if want := "a echoes ping from " + tp.gw.String() + ":"; !strings.HasPrefix(got, want) {
			t.Fatalf("echo: %q, want %q…", got, want)
		}
	})
	t.Run("Tagged", func(t *testing.T) {
		got := tags(t, n, chainPublished)
		if len(got) != 2 || count(got, "container=ctr-a") != 2 {
			t.Fatalf("published chain: %q, want two rules of ctr-a", got)
		}
		if ps := n.Published("ctr-a"); len(ps) != 2 {
			t.Fatalf("Published: %v", ps)
		}
	})
	t.Run("ConflictWithContainer", func(t *testing.T) {
		for _, p := range []Port{
			tcpPort(web, 8080),
			{HostIP: localhost, HostPort: web, ContainerPort: 80, Protocol: "tcp"},
			udpPort(dns, 53),
		} {
			err := n.Publish(ctx, "ctr-b", tp.b.ip, []Port{p})
			if !errors.Is(err, errdefs.ErrConflict) {
				t.Fatalf("Publish %s: %v, want a conflict", p, err)
			}
			if want := "is already published by container ctr-a"; !strings.Contains(err.Error(), want) {
				t.Fatalf("Publish %s: %v, want it to say %q", p, err, want)
			}
		}
		if got := tags(t, n, chainPublished); len(got) != 2 {
			t.Fatalf("a refused Publish left rules: %q", got)
		}
	})
	t.Run("ConflictWithHost", func(t *testing.T) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		for _, p := range []Port{
			tcpPort(uint16(ln.Addr().(*net.TCPAddr).Port), 80),
			{HostIP: localhost, HostPort: uint16(ln.Addr().(*net.TCPAddr).Port), ContainerPort: 80, Protocol: "tcp"},
			udpPort(uint16(pc.LocalAddr().(*net.UDPAddr).Port), 53),
		} {
			err := n.Publish(ctx, "ctr-b", tp.b.ip, []Port{tcpPort(freePort(t, "tcp"), 80), p})
			if !errors.Is(err, errdefs.ErrConflict) {
				t.Fatalf("Publish %s: %v, want a conflict", p, err)
			}
			if want := fmt.Sprintf("port %s is in use on the host", hostPortString(p)); !strings.Contains(err.Error(), want) {
				t.Fatalf("Publish %s: %v, want it to say %q", p, err, want)
			}
		}
		if got := tags(t, n, chainPublished); len(got) != 2 {
			t.Fatalf("a refused Publish left rules: %q", got)
		}
	})
	t.Run("NotAHostAddress", func(t *testing.T) {
		p := Port{HostIP: netip.MustParseAddr("192.0.2.253"), HostPort: freePort(t, "tcp"), ContainerPort: 80, Protocol: "tcp"}
		if err := n.Publish(ctx, "ctr-b", tp.b.ip, []Port{p}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("Publish %s: %v, want an invalid argument", p, err)
		}
	})
	t.Run("GivenTwice", func(t *testing.T) {
		p := tcpPort(freePort(t, "tcp"), 80)
		q := p
		q.ContainerPort = 81
		if err := n.Publish(ctx, "ctr-b", tp.b.ip, []Port{p, q}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("Publish %s and %s: %v, want an invalid argument", p, q, err)
		}
	})
	t.Run("Unpublish", func(t *testing.T) {
		if err := n.Unpublish(ctx, "ctr-a"); err != nil {
			t.Fatal(err)
		}
		mustNotFetch(t, "", addr(localhost, web))
		mustNotFetch(t, tp.b.path, addr(tp.gw, web))
		if got := tags(t, n, chainPublished); len(got) != 0 {
			t.Fatalf("published chain after Unpublish: %q", got)
		}
		if err := n.Unpublish(ctx, "ctr-a"); err != nil {
			t.Fatalf("second Unpublish: %v", err)
		}
		// The port is free for another container.
		if err := n.Publish(ctx, "ctr-b", tp.b.ip, []Port{tcpPort(web, 80)}); err != nil {
			t.Fatal(err)
		}
		mustFetch(t, "", addr(localhost, web), "b sees "+tp.gw.String()+":")
	})
}

// TestPublishAgain: a second Publish for an id replaces its ports.
func TestPublishAgain(t *testing.T) {
	testutil.RequireRoot(t)
	checkHost(t)
	n := openNAT(t, Config{})
	ctx := context.Background()
	ip := netip.MustParseAddr("10.198.0.9")
	p1, p2 := tcpPort(freePort(t, "tcp"), 80), tcpPort(freePort(t, "tcp"), 81)
	if err := n.Publish(ctx, "c", ip, []Port{p1}); err != nil {
		t.Fatal(err)
	}
	if err := n.Publish(ctx, "c", ip, []Port{p1, p2}); err != nil {
		t.Fatal(err)
	}
	if got := tags(t, n, chainPublished); count(got, "container=c") != 2 || len(got) != 2 {
		t.Fatalf("published chain: %q", got)
	}
	if err := n.Publish(ctx, "c", ip, nil); err != nil {
		t.Fatal(err)
	}
	if got := tags(t, n, chainPublished); len(got) != 0 {
		t.Fatalf("published chain: %q", got)
	}
}

// TestPublishConcurrent: of many containers publishing one port at once,
// exactly one gets it.
func TestPublishConcurrent(t *testing.T) {
	testutil.RequireRoot(t)
	checkHost(t)
	n := openNAT(t, Config{})
	port := tcpPort(freePort(t, "tcp"), 80)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Publish(context.Background(), fmt.Sprintf("c%d", i), netip.AddrFrom4([4]byte{10, 198, 0, byte(i + 1)}), []Port{port})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, errdefs.ErrConflict):
			t.Errorf("Publish: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d containers got the port: %v", won, errs)
	}
	if got := tags(t, n, chainPublished); len(got) != 1 {
		t.Fatalf("published chain: %q", got)
	}
}

// TestReconcile plays a daemon killed -9 and started again: the new
// daemon's Open finds the table and its published ports, and Reconcile
// removes the ports of the containers that are gone.
func TestReconcile(t *testing.T) {
	testutil.RequireRoot(t)
	checkHost(t)
	ctx := context.Background()
	table := newName(t) + "_nat"
	old := openNAT(t, Config{Table: table})
	ip := netip.MustParseAddr("10.198.0.9")
	kept, gone := tcpPort(freePort(t, "tcp"), 80), udpPort(freePort(t, "udp"), 53)
	if err := old.Publish(ctx, "kept", ip, []Port{kept}); err != nil {
		t.Fatal(err)
	}
	if err := old.Publish(ctx, "gone", ip, []Port{gone, tcpPort(freePort(t, "tcp"), 81)}); err != nil {
		t.Fatal(err)
	}
	if err := old.AddNetwork(ctx, "net", netip.MustParsePrefix("10.198.0.0/24"), "cdtnone"); err != nil {
		t.Fatal(err)
	}
	// No Close: the daemon died. The next one opens the same table.
	n := openNAT(t, Config{Table: table})
	for _, c := range []string{chainPrerouting, chainOutput} {
		if got := tags(t, n, c); len(got) != 1 {
			t.Fatalf("chain %s after a second Open: %d rules, want 1", c, len(got))
		}
	}
	if got := n.Published("kept"); len(got) != 1 || got[0] != kept {
		t.Fatalf("Published(kept) after Open: %v, want [%v]", got, kept)
	}
	if got := n.Published("gone"); len(got) != 2 {
		t.Fatalf("Published(gone) after Open: %v", got)
	}
	// The index read back from the table refuses a port of "kept".
	if err := n.Publish(ctx, "new", ip, []Port{kept}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("Publish of a port of kept: %v, want a conflict", err)
	}

	if err := n.Reconcile(ctx, func(id string) bool { return id == "kept" }); err != nil {
		t.Fatal(err)
	}
	if got := tags(t, n, chainPublished); len(got) != 1 || got[0] != "container=kept" {
		t.Fatalf("published chain after Reconcile: %q", got)
	}
	if got := n.Published("gone"); len(got) != 0 {
		t.Fatalf("Published(gone) after Reconcile: %v", got)
	}
	// gone's port is free again.
	if err := n.Publish(ctx, "new", ip, []Port{gone}); err != nil {
		t.Fatal(err)
	}

	if err := n.ReconcileNetworks(ctx, func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if got := tags(t, n, chainPostrouting); count(got, "network=net") != 3 {
		t.Fatalf("postrouting after ReconcileNetworks keeping all: %q", got)
	}
	if err := n.ReconcileNetworks(ctx, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if got := append(tags(t, n, chainPostrouting), tags(t, n, chainForward)...); len(got) != 0 {
		t.Fatalf("network rules after ReconcileNetworks keeping none: %q", got)
	}
}

// TestNetworkRules: AddNetwork again replaces, RemoveNetwork removes only
// its network's rules and is idempotent.
func TestNetworkRules(t *testing.T) {
	testutil.RequireRoot(t)
	checkHost(t)
	ctx := context.Background()
	n := openNAT(t, Config{})
	for range 2 {
		if err := n.AddNetwork(ctx, "one", netip.MustParsePrefix("10.198.1.0/24"), "cdtone"); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.AddNetwork(ctx, "two", netip.MustParsePrefix("10.198.2.7/24"), "cdttwo"); err != nil {
		t.Fatal(err)
	}
	post, fwd := tags(t, n, chainPostrouting), tags(t, n, chainForward)
	if count(post, "network=one") != 3 || count(post, "network=two") != 3 || len(post) != 6 {
		t.Fatalf("postrouting: %q", post)
	}
	if count(fwd, "network=one") != 4 || count(fwd, "network=two") != 4 || len(fwd) != 8 {
		t.Fatalf("forward: %q", fwd)
	}
	for range 2 {
		if err := n.RemoveNetwork(ctx, "one"); err != nil {
			t.Fatal(err)
		}
	}
	post, fwd = tags(t, n, chainPostrouting), tags(t, n, chainForward)
	if count(post, "network=two") != 3 || len(post) != 3 || count(fwd, "network=two") != 4 || len(fwd) != 4 {
		t.Fatalf("after RemoveNetwork(one): postrouting %q, forward %q", post, fwd)
	}

	for _, bad := range []struct {
		name, bridge string
		subnet       netip.Prefix
	}{
		{"", "br", netip.MustParsePrefix("10.0.0.0/24")},
		{"x", "", netip.MustParsePrefix("10.0.0.0/24")},
		{"x", "a-name-too-long-for-linux", netip.MustParsePrefix("10.0.0.0/24")},
		{"x", "br", netip.MustParsePrefix("fd00::/64")},
		{"x", "br", netip.Prefix{}},
		{"with space", "br", netip.MustParsePrefix("10.0.0.0/24")},
	} {
		if err := n.AddNetwork(ctx, bad.name, bad.subnet, bad.bridge); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("AddNetwork(%q, %v, %q): %v, want an invalid argument", bad.name, bad.subnet, bad.bridge, err)
		}
	}
}

// TestMasquerade: a container reaches another host through the uplink
// with the host's address; before AddNetwork (and after RemoveNetwork) it
// is only routed. AddNetwork also stops the other host from reaching the
// container's address directly.
func TestMasquerade(t *testing.T) {
	checkHost(t)
	tp := newTopo(t)
	n := openNAT(t, Config{})
	ctx := context.Background()
	serveTCP(t, tp.out, "out", 8080)
	serveTCP(t, tp.a, "a", 80)
	remote := addr(tp.out.ip, 8080)

	mustFetch(t, tp.a.path, remote, "out sees "+tp.a.ip.String()+":")
	mustFetch(t, tp.out.path, addr(tp.a.ip, 80), "a sees "+tp.out.ip.String()+":")

	if err := n.AddNetwork(ctx, "test", tp.subnet, tp.bridge); err != nil {
		t.Fatal(err)
	}
	mustFetch(t, tp.a.path, remote, "out sees "+tp.upAddr.String()+":")
	mustFetch(t, tp.b.path, addr(tp.a.ip, 80), "a sees "+tp.b.ip.String()+":") // on the bridge: as is
	_, err := fetch(tp.out.path, addr(tp.a.ip, 80))
	if !errors.Is(err, unix.EHOSTUNREACH) {
		t.Fatalf("another host reaching the container's address: %v, want it refused (EHOSTUNREACH)", err)
	}

	if err := n.RemoveNetwork(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	mustFetch(t, tp.a.path, remote, "out sees "+tp.a.ip.String()+":")
}

// TestRouteLocalnet shows what makes 127.0.0.1:HOSTPORT work: after the
// DNAT in output the packet leaves by the bridge with source 127.0.0.1,
// which the kernel allows only with route_localnet=1 on the bridge, and
// the network's masquerade then gives it the bridge's address, so that
// the container's answer comes back (without it the container would answer
// its own loopback). The host's other addresses need neither.
func TestRouteLocalnet(t *testing.T) {
	checkHost(t)
	tp := newTopo(t)
	n := openNAT(t, Config{})
	ctx := context.Background()
	serveTCP(t, tp.a, "a", 80)
	web := freePort(t, "tcp")
	if err := n.Publish(ctx, "ctr-a", tp.a.ip, []Port{tcpPort(web, 80)}); err != nil {
		t.Fatal(err)
	}
	localnet := "/proc/sys/net/ipv4/conf/" + tp.bridge + "/route_localnet"

	t.Run("WithoutMasquerade", func(t *testing.T) {
		mustNotFetch(t, "", addr(localhost, web))
		mustFetch(t, "", addr(tp.gw, web), "a sees "+tp.gw.String()+":")
	})
	if err := n.AddNetwork(ctx, "test", tp.subnet, tp.bridge); err != nil {
		t.Fatal(err)
	}
	t.Run("WithoutRouteLocalnet", func(t *testing.T) {
		writeSysctl(t, localnet, "0")
		defer writeSysctl(t, localnet, "1")
		mustNotFetch(t, "", addr(localhost, web))
		mustFetch(t, "", addr(tp.gw, web), "a sees "+tp.gw.String()+":")
	})
	t.Run("Both", func(t *testing.T) {
		mustFetch(t, "", addr(localhost, web), "a sees "+tp.gw.String()+":")
	})
}

// newNetnsFD returns a descriptor of a new, empty network namespace, gone
// when the test ends.
func newNetnsFD(t *testing.T) int {
	t.Helper()
	testutil.RequireRoot(t)
	fdc := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(self)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		if err != nil {
			errc <- err
			return
		}
		fdc <- fd
	}()
	select {
	case err := <-errc:
		t.Fatal(err)
		return -1
	case fd := <-fdc:
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// TestForwardPolicyWarning: in a namespace of its own (a policy drop on the
// host's forward hook would cut other tests' traffic), iptables-nft's
// FORWARD with policy drop, as Docker leaves it, is warned of at Open and
// at AddNetwork, with the fix; a bridge the operator has allowed is not.
func TestForwardPolicyWarning(t *testing.T) {
	fd := newNetnsFD(t)
	conn, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	filter := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"})
	forward := conn.AddChain(&nftables.Chain{Name: "FORWARD", Table: filter, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: ref(nftables.ChainPolicyDrop)})
	user := conn.AddChain(&nftables.Chain{Name: "DOCKER-USER", Table: filter})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	n := openNAT(t, Config{Table: "condenser", Logger: log, netns: fd})
	if got := logs.take(); !strings.Contains(got, "ip filter chain FORWARD has policy drop") ||
		!strings.Contains(got, "iptables -I FORWARD -i <bridge> -j ACCEPT") || !strings.Contains(got, "DOCKER-USER") {
		t.Fatalf("Open logged:\n%s\nwant a warning about FORWARD's policy with the fix", got)
	}
	ctx := context.Background()
	subnet := netip.MustParsePrefix("10.198.0.0/24")
	if err := n.AddNetwork(ctx, "net", subnet, "cdtbr0"); err != nil {
		t.Fatal(err)
	}
	if got := logs.take(); !strings.Contains(got, "iptables -I FORWARD -i cdtbr0 -j ACCEPT && iptables -I FORWARD -o cdtbr0 -j ACCEPT") {
		t.Fatalf("AddNetwork logged:\n%s\nwant the fix for bridge cdtbr0", got)
	}
	// The operator allows the bridge (here in DOCKER-USER, as iptables-nft
	// writes `-i cdtbr0 -j ACCEPT`).
	conn.AddRule(&nftables.Rule{Table: filter, Chain: user, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("cdtbr0\x00")},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := n.AddNetwork(ctx, "net", subnet, "cdtbr0"); err != nil {
		t.Fatal(err)
	}
	if got := logs.take(); strings.Contains(got, "policy drop") {
		t.Fatalf("AddNetwork of an allowed bridge logged:\n%s", got)
	}
	// Not a policy drop: nothing to say.
	forward.Policy = ref(nftables.ChainPolicyAccept)
	conn.AddChain(forward)
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := n.AddNetwork(ctx, "other", netip.MustParsePrefix("10.198.1.0/24"), "cdtbr1"); err != nil {
		t.Fatal(err)
	}
	if got := logs.take(); strings.Contains(got, "policy drop") {
		t.Fatalf("AddNetwork with policy accept logged:\n%s", got)
	}
}

// TestEnableIPForward, in a namespace of its own (the switch is per
// namespace): what AddNetwork does without KeepIPForward turns forwarding
// on once, with a note.
func TestEnableIPForward(t *testing.T) {
	fd := newNetnsFD(t)
	path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var after, first string
	if err := inNetns(path, func() error {
		// A new namespace may start with the host's value.
		if err := os.WriteFile(ipForwardPath, []byte("0"), 0o644); err != nil {
			return err
		}
		if err := enableIPForward(log); err != nil {
			return err
		}
		b, err := os.ReadFile(ipForwardPath)
		after = strings.TrimSpace(string(b))
		if err != nil {
			return err
		}
		first = logs.take()
		return enableIPForward(log)
	}); err != nil {
		t.Fatal(err)
	}
	if after != "1" {
		t.Fatalf("ip_forward after enableIPForward: %s, want 1", after)
	}
	if !strings.Contains(first, "net.ipv4.ip_forward=1") {
		t.Fatalf("no note of the change: %q", first)
	}
	if got := logs.take(); got != "" {
		t.Fatalf("a second call, with nothing to change, logged %q", got)
	}
}

// TestDestroy: Destroy deletes the table and is refused once closed; the
// host's ruleset is as before (checkHost).
func TestDestroy(t *testing.T) {
	testutil.RequireRoot(t)
	checkHost(t)
	ctx := context.Background()
	table := newName(t) + "_nat"
	n, err := Open(ctx, Config{Table: table, KeepIPForward: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Publish(ctx, "c", netip.MustParseAddr("10.198.0.9"), []Port{tcpPort(freePort(t, "tcp"), 80)}); err != nil {
		t.Fatal(err)
	}
	if err := n.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Destroy(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Destroy after Destroy: %v", err)
	}
	if err := n.Publish(ctx, "c", netip.MustParseAddr("10.198.0.9"), nil); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Publish after Destroy: %v", err)
	}
	if strings.Contains(ruleset(t, 0), table) {
		t.Fatalf("table %s is left", table)
	}
}

// TestHairpinWithoutBrNetfilter: where br_netfilter does not pass bridged
// traffic to conntrack (stock Debian until something loads the module;
// here it is built in, so the test turns it off in a namespace of its own
// playing the host), a container's answer to another container reaching
// it through the host's address would go straight over the bridge, from
// the wrong address: the hairpin masquerade is what makes it work.
func TestHairpinWithoutBrNetfilter(t *testing.T) {
	checkHost(t)
	ip := requireNetTools(t)
	name := newName(t)
	host := netns{name: name + "-h", path: "/run/netns/" + name + "-h"}
	a := netns{name: name + "-a", path: "/run/netns/" + name + "-a", ip: netip.MustParseAddr("10.198.0.1")}
	b := netns{name: name + "-b", path: "/run/netns/" + name + "-b", ip: netip.MustParseAddr("10.198.0.2")}
	gw, subnet, bridge := netip.MustParseAddr("10.198.0.254"), netip.MustParsePrefix("10.198.0.0/24"), "br0"
	t.Cleanup(func() {
		for _, ns := range []netns{a, b, host} {
			if _, err := os.Stat(ns.path); err == nil {
				if out, err := exec.Command(ip, "netns", "delete", ns.name).CombinedOutput(); err != nil {
					t.Errorf("ip netns delete %s: %v: %s", ns.name, err, out)
				}
			}
		}
	})
	cmds := []string{"netns add " + host.name, "netns add " + a.name, "netns add " + b.name,
		"-n " + host.name + " link add " + bridge + " type bridge",
		"-n " + host.name + " addr add " + gw.String() + "/24 dev " + bridge,
		"-n " + host.name + " link set " + bridge + " up",
	}
	for i, ns := range []netns{a, b} {
		veth := fmt.Sprintf("veth%d", i)
		cmds = append(cmds,
			"-n "+host.name+" link add "+veth+" type veth peer name eth0 netns "+ns.name,
			"-n "+host.name+" link set "+veth+" master "+bridge,
			"-n "+host.name+" link set "+veth+" type bridge_slave hairpin on",
			"-n "+host.name+" link set "+veth+" up",
			"-n "+ns.name+" addr add "+ns.ip.String()+"/24 dev eth0",
			"-n "+ns.name+" link set lo up",
			"-n "+ns.name+" link set eth0 up",
			"-n "+ns.name+" route add default via "+gw.String(),
		)
	}
	for _, c := range cmds {
		run(t, ip, strings.Fields(c)...)
	}
	if err := inNetns(host.path, func() error {
		for path, v := range map[string]string{
			"/proc/sys/net/ipv4/ip_forward":                "1",
			"/proc/sys/net/bridge/bridge-nf-call-iptables": "0",
		} {
			if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	hostFD, err := unix.Open(host.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(hostFD) })

	n := openNAT(t, Config{netns: hostFD})
	ctx := context.Background()
	if err := n.AddNetwork(ctx, "test", subnet, bridge); err != nil {
		t.Fatal(err)
	}
	serveTCP(t, a, "a", 80)
	web := freePort(t, "tcp")
	if err := n.Publish(ctx, "ctr-a", a.ip, []Port{tcpPort(web, 80)}); err != nil {
		t.Fatal(err)
	}
	mustFetch(t, b.path, addr(gw, web), "a sees "+gw.String()+":")
	mustFetch(t, a.path, addr(gw, web), "a sees "+gw.String()+":")

	// Without the hairpin rule.
	hairpin := postroutingExprs(subnet, bridge)[2]
	n.mu.Lock()
	rules, err := n.rules(chainPostrouting)
	if err == nil {
		for _, r := range rules {
			if len(r.Exprs) == len(hairpin) {
				err = n.conn.DelRule(r)
			}
		}
	}
	if err == nil {
		err = n.flush()
	}
	n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	mustNotFetch(t, b.path, addr(gw, web))
}

// TestStaleHandles: when someone else deletes a container's rule, the
// handles of the index are stale; Publish and Unpublish read the table
// again and do their work.
func TestStaleHandles(t *testing.T) {
	testutil.RequireRoot(t)
	checkHost(t)
	var logs syncBuffer
	n := openNAT(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	ip := netip.MustParseAddr("10.198.0.9")
	p1, p2 := tcpPort(freePort(t, "tcp"), 80), tcpPort(freePort(t, "tcp"), 81)
	deleteFirst := func() {
		t.Helper()
		conn, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		rules, err := conn.GetRules(n.table, n.chains[chainPublished])
		if err != nil || len(rules) == 0 {
			t.Fatalf("published chain: %v, %v", rules, err)
		}
		if err := conn.DelRule(rules[0]); err != nil {
			t.Fatal(err)
		}
		if err := conn.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		name string
		do   func() error
		want int
	}{
		{"Publish", func() error { return n.Publish(ctx, "c", ip, []Port{p1, p2}) }, 2},
		{"Unpublish", func() error { return n.Unpublish(ctx, "c") }, 0},
	} {
		if err := n.Publish(ctx, "c", ip, []Port{p1}); err != nil {
			t.Fatal(err)
		}
		deleteFirst()
		if err := step.do(); err != nil {
			t.Fatalf("%s after the rule was deleted behind its back: %v", step.name, err)
		}
		if got := tags(t, n, chainPublished); len(got) != step.want {
			t.Fatalf("%s: published chain %q, want %d rules", step.name, got, step.want)
		}
		if !strings.Contains(logs.take(), "changed under Condenser") {
			t.Fatalf("%s: no warning", step.name)
		}
	}
}
