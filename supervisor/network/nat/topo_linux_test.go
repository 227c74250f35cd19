package nat

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/testutil"
)

// The tests build their own topology, without package network:
//
//	        host: table ip <test table>
//	  ┌────────────── bridge cdtXXXXb 10.198.N.254/24 ───────────┐     uplink cdtXXXXu 10.199.N.1/24
//	  │ route_localnet=1, forwarding=1 (on these interfaces only)│                │ veth
//	veth (hairpin)                                   veth (hairpin)   netns "out": 10.199.N.2/24,
//	netns a: 10.198.N.1/24                    netns b: 10.198.N.2/24   route to 10.198.N.0/24 via
//	default via .254                          default via .254         10.199.N.1 (another host)
//
// Traffic goes only to 127.0.0.0/8, to the host's addresses on these
// interfaces and into these namespaces.

// newName returns a name unique to this run, short enough for interfaces
// ("cdt" and 6 hex digits).
func newName(t testing.TB) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "cdt" + hex.EncodeToString(b[:])
}

// requireNetTools skips (fails in CI) without root or ip(8).
func requireNetTools(t testing.TB) string {
	t.Helper()
	testutil.RequireRoot(t)
	return testutil.RequireBinary(t, "ip")
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ipBatch runs ip(8) commands in one process.
func ipBatch(t testing.TB, ip string, cmds ...string) {
	t.Helper()
	c := exec.Command(ip, "-batch", "-")
	c.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s\ncommands:\n%s", err, out, strings.Join(cmds, "\n"))
	}
}

func writeSysctl(t testing.TB, path, value string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(value+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

type netns struct {
	name string
	path string     // /run/netns/<name>
	ip   netip.Addr // its address
	veth string     // the host side of its veth
}

type topo struct {
	name   string
	ip     string // ip(8)
	bridge string
	subnet netip.Prefix
	gw     netip.Addr
	a, b   netns
	uplink string
	upAddr netip.Addr // the host's address on the uplink
	out    netns
}

// freeOctet returns an N such that neither 10.198.N.0/24 nor 10.199.N.0/24
// is on any interface of the host.
func freeOctet(t testing.TB) int {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	for range 200 {
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		n := int(b[0])%250 + 1
		used := false
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				s := p.Addr().String()
				if strings.HasPrefix(s, fmt.Sprintf("10.198.%d.", n)) || strings.HasPrefix(s, fmt.Sprintf("10.199.%d.", n)) {
					used = true
				}
			}
		}
		if !used {
			return n
		}
	}
	t.Fatal("no free 10.198.N.0/24")
	return 0
}

// newTopo builds the topology above and removes it in t.Cleanup, even when
// building it fails half-way.
func newTopo(t testing.TB) *topo {
	t.Helper()
	ip := requireNetTools(t)
	name := newName(t)
	n := freeOctet(t)
	tp := &topo{
		name:   name,
		ip:     ip,
		bridge: name + "b",
		subnet: netip.MustParsePrefix(fmt.Sprintf("10.198.%d.0/24", n)),
		gw:     netip.MustParseAddr(fmt.Sprintf("10.198.%d.254", n)),
		uplink: name + "u",
		upAddr: netip.MustParseAddr(fmt.Sprintf("10.199.%d.1", n)),
	}
	tp.a = netns{name: name + "-a", ip: netip.MustParseAddr(fmt.Sprintf("10.198.%d.1", n)), veth: name + "a"}
	tp.b = netns{name: name + "-b", ip: netip.MustParseAddr(fmt.Sprintf("10.198.%d.2", n)), veth: name + "c"}
	tp.out = netns{name: name + "-o", ip: netip.MustParseAddr(fmt.Sprintf("10.199.%d.2", n)), veth: tp.uplink}
	for _, ns := range []*netns{&tp.a, &tp.b, &tp.out} {
		ns.path = filepath.Join("/run/netns", ns.name)
	}

	t.Cleanup(func() {
		// Deleting a namespace deletes the veth ends in it, and with them
		// their peers; the bridge goes last. Each step runs whatever the
		// others did.
		for _, ns := range []netns{tp.a, tp.b, tp.out} {
			if _, err := os.Stat(ns.path); err == nil {
				if out, err := exec.Command(ip, "netns", "delete", ns.name).CombinedOutput(); err != nil {
					t.Errorf("ip netns delete %s: %v: %s", ns.name, err, out)
				}
			}
		}
		for _, l := range []string{tp.a.veth, tp.b.veth, tp.uplink, tp.bridge} {
			if _, err := net.InterfaceByName(l); err == nil {
				if out, err := exec.Command(ip, "link", "delete", l).CombinedOutput(); err != nil {
					t.Errorf("ip link delete %s: %v: %s", l, err, out)
				}
			}
		}
	})

	cmds := []string{
		"link add " + tp.bridge + " type bridge",
		fmt.Sprintf("addr add %s/24 dev %s", tp.gw, tp.bridge),
		"link set " + tp.bridge + " up",
		"netns add " + tp.out.name,
		"link add " + tp.uplink + " type veth peer name eth0 netns " + tp.out.name,
		fmt.Sprintf("addr add %s/24 dev %s", tp.upAddr, tp.uplink),
		"link set " + tp.uplink + " up",
	}
	for _, ns := range []netns{tp.a, tp.b} {
		cmds = append(cmds,
			"netns add "+ns.name,
			"link add "+ns.veth+" type veth peer name eth0 netns "+ns.name,
			"link set "+ns.veth+" master "+tp.bridge,
			"link set "+ns.veth+" type bridge_slave hairpin on",
			"link set "+ns.veth+" up",
		)
	}
	ipBatch(t, ip, cmds...)
	for _, ns := range []netns{tp.a, tp.b, tp.out} {
		cmds := []string{
			fmt.Sprintf("addr add %s/24 dev eth0", ns.ip),
			"link set lo up",
			"link set eth0 up",
		}
		if ns.name == tp.out.name {
			cmds = append(cmds, fmt.Sprintf("route add %s via %s", tp.subnet, tp.upAddr))
		} else {
			cmds = append(cmds, fmt.Sprintf("route add default via %s", tp.gw))
		}
		for i := range cmds {
			cmds[i] = "-n " + ns.name + " " + cmds[i]
		}
		for _, c := range cmds {
			run(t, ip, strings.Fields(c)...)
		}
	}
	// What the network engineer's package does for the bridges it makes
	// (route_localnet), and forwarding on these interfaces alone, so that
	// the host's net.ipv4.ip_forward is left as it is. They go with the
	// interfaces.
	writeSysctl(t, "/proc/sys/net/ipv4/conf/"+tp.bridge+"/route_localnet", "1")
	writeSysctl(t, "/proc/sys/net/ipv4/conf/"+tp.bridge+"/forwarding", "1")
	writeSysctl(t, "/proc/sys/net/ipv4/conf/"+tp.uplink+"/forwarding", "1")
	return tp
}

// inNetns runs f on a thread in the network namespace at path. Sockets
// made in f stay in that namespace when f returns.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(self)
		target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		err = f()
		// A thread that cannot go back dies with this goroutine.
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// serveTCP runs, in the namespace, a TCP server on port that answers each
// connection with "<name> sees <remote address>" and closes it.
func serveTCP(t testing.TB, ns netns, name string, port int) {
	t.Helper()
	var ln net.Listener
	if err := inNetns(ns.path, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s sees %s\n", name, c.RemoteAddr())
			c.Close()
		}
	}()
}

// serveUDP runs, in the namespace, a UDP server on port that answers each
// datagram with "<name> echoes <datagram> from <remote address>".
func serveUDP(t testing.TB, ns netns, name string, port int) {
	t.Helper()
	var pc net.PacketConn
	if err := inNetns(ns.path, func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s echoes %s from %s", name, buf[:n], addr)), addr)
		}
	}()
}

// dialTimeout bounds connections that must succeed (a failure shows
// quickly as an error, not as a hung test) and those that must not (a
// dropped SYN is only seen as a timeout).
const dialTimeout = 2 * time.Second

// fetch connects from the namespace at nsPath ("" for the host) to addr
// and returns the server's line.
func fetch(nsPath string, addr string) (string, error) {
	var c net.Conn
	dial := func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, dialTimeout)
		return err
	}
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = inNetns(nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(dialTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// echo sends a datagram from the host to addr and returns the answer.
func echo(addr, msg string) (string, error) {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(dialTimeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// handedOut are the ports freePort returned: the kernel may give a
// closed port again at once.
var handedOut = struct {
	sync.Mutex
	ports map[string]bool
}{ports: map[string]bool{}}

// freePort returns a port nothing on the host has bound, for protocol, and
// that it has not returned before.
func freePort(t testing.TB, proto string) uint16 {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		var port int
		if proto == "udp" {
			pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
			if err != nil {
				t.Fatal(err)
			}
			port = pc.LocalAddr().(*net.UDPAddr).Port
			pc.Close()
		} else {
			ln, err := net.Listen("tcp4", "0.0.0.0:0")
			if err != nil {
				t.Fatal(err)
			}
			port = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
		}
		k := fmt.Sprintf("%d/%s", port, proto)
		if !handedOut.ports[k] {
			handedOut.ports[k] = true
			return uint16(port)
		}
	}
}

// openNAT opens a NAT on a table of the test's own, destroyed in
// t.Cleanup.
func openNAT(t testing.TB, cfg Config) *NAT {
	t.Helper()
	if cfg.Table == "" {
		cfg.Table = newName(t) + "_nat"
	}
	cfg.KeepIPForward = true
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever state n is in: a fresh handle deletes the table.
		d, err := Open(context.Background(), Config{Table: cfg.Table, KeepIPForward: true, Logger: cfg.Logger, netns: cfg.netns})
		if err == nil {
			err = d.Destroy(context.Background())
		}
		if err != nil {
			t.Errorf("destroy table %s: %v", cfg.Table, err)
		}
		_ = n.Close()
	})
	return n
}

// hostState is what the tests must leave as they found it: iptables'
// rules (counters aside), the whole nftables ruleset, and interfaces and
// network namespaces. net.ipv4.ip_forward is not in it: these tests never
// write it (openNAT sets KeepIPForward; forwarding is enabled on the
// tests' own interfaces), while other packages' tests running at the same
// time do.
type hostState struct {
	iptables []string
	ruleset  []string
	links    []string
	netns    []string
}

func snapshot(t testing.TB) hostState {
	t.Helper()
	save := testutil.RequireBinary(t, "iptables-save")
	var s hostState
	for _, l := range strings.Split(run(t, save), "\n") {
		if strings.HasPrefix(l, "#") || l == "" {
			continue // the dump's date
		}
		// Counters: ":CHAIN POLICY [packets:bytes]".
		if i := strings.LastIndex(l, " ["); strings.HasPrefix(l, ":") && i > 0 {
			l = l[:i]
		}
		s.iptables = append(s.iptables, l)
	}
	s.ruleset = strings.Split(ruleset(t, 0), "\n")
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		s.links = append(s.links, i.Name)
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		s.netns = append(s.netns, e.Name())
	}
	return s
}

// ruleset lists every table, chain, set and rule of nftables, through
// netlink (nft(8) need not be installed), counters left out. Compared
// bytes are shown as text and, when 4 long, as an IPv4 address, so that
// interface names and addresses can be read in it.
func ruleset(t testing.TB, netnsFD int) string {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(netnsFD))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	chains, err := conn.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	data := func(b []byte) string {
		if len(b) == 4 {
			return fmt.Sprintf("%q(%s)", b, netip.AddrFrom4([4]byte(b)))
		}
		return fmt.Sprintf("%q", b)
	}
	var b strings.Builder
	for _, tb := range tables {
		fmt.Fprintf(&b, "table %s %s flags %d\n", family(tb.Family), tb.Name, tb.Flags)
		sets, err := conn.GetSets(tb)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sets {
			fmt.Fprintf(&b, "table %s %s set %s key %s\n", family(tb.Family), tb.Name, s.Name, s.KeyType.Name)
		}
		for _, c := range chains {
			if c.Table.Name != tb.Name || c.Table.Family != tb.Family {
				continue
			}
			fmt.Fprintf(&b, "table %s %s chain %s type %q", family(tb.Family), tb.Name, c.Name, c.Type)
			if c.Hooknum != nil {
				fmt.Fprintf(&b, " hook %d prio %d", *c.Hooknum, *c.Priority)
			}
			if c.Policy != nil {
				fmt.Fprintf(&b, " policy %d", *c.Policy)
			}
			b.WriteString("\n")
			rules, err := conn.GetRules(tb, c)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rules {
				fmt.Fprintf(&b, "table %s %s chain %s rule %d %q:", family(tb.Family), tb.Name, c.Name, r.Handle, r.UserData)
				for _, e := range r.Exprs {
					switch e := e.(type) {
					case *expr.Counter:
						b.WriteString(" counter")
					case *expr.Cmp:
						fmt.Fprintf(&b, " cmp op %d reg %d %s", e.Op, e.Register, data(e.Data))
					case *expr.Immediate:
						fmt.Fprintf(&b, " immediate reg %d %s", e.Register, data(e.Data))
					case *expr.Match:
						fmt.Fprintf(&b, " match %s/%d %+v", e.Name, e.Rev, e.Info)
					case *expr.Target:
						fmt.Fprintf(&b, " target %s/%d %+v", e.Name, e.Rev, e.Info)
					default:
						fmt.Fprintf(&b, " %+v", e)
					}
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

// ours tells the lines of a dump that these tests could have left: they
// name the tests' interfaces or tables (cdt*), their subnets, or carry
// the package's comments.
func ours(line string) bool {
	for _, m := range []string{"cdt", "10.198.", "10.199.", containerTag, networkTag} {
		if strings.Contains(line, m) {
			return true
		}
	}
	return false
}

// diff returns the lines in only one of before and after (as multisets).
func diff(before, after []string) (gone, added []string) {
	count := map[string]int{}
	for _, l := range before {
		count[l]++
	}
	for _, l := range after {
		count[l]--
	}
	for _, l := range before {
		if count[l] > 0 {
			gone = append(gone, l)
			count[l]--
		}
	}
	for l, k := range count {
		for ; k < 0; k++ {
			added = append(added, l)
		}
	}
	slices.Sort(added)
	return gone, added
}

// checkHost snapshots the host now and, in t.Cleanup (after every cleanup
// registered later), checks that it is the same again. Other packages'
// tests may change iptables and nftables meanwhile (go test runs packages
// in parallel): a difference fails the test when it is one of ours (see
// ours), and is logged otherwise.
func checkHost(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	before := snapshot(t)
	t.Cleanup(func() {
		after := snapshot(t)
		for _, d := range []struct {
			what          string
			before, after []string
		}{
			{"iptables-save", before.iptables, after.iptables},
			{"the nftables ruleset", before.ruleset, after.ruleset},
		} {
			gone, added := diff(d.before, d.after)
			for _, l := range gone {
				if ours(l) {
					t.Errorf("%s lost: %s", d.what, l)
				} else {
					t.Logf("%s lost meanwhile (not these tests'): %s", d.what, l)
				}
			}
			for _, l := range added {
				if ours(l) {
					t.Errorf("%s has a leftover: %s", d.what, l)
				} else {
					t.Logf("%s has meanwhile (not these tests'): %s", d.what, l)
				}
			}
		}
		for _, l := range after.links {
			if strings.HasPrefix(l, "cdt") && !slices.Contains(before.links, l) {
				t.Errorf("interface %s is left", l)
			}
		}
		for _, ns := range after.netns {
			if strings.HasPrefix(ns, "cdt") && !slices.Contains(before.netns, ns) {
				t.Errorf("network namespace %s is left", ns)
			}
		}
	})
}
