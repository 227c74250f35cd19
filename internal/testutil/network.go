package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Net is a test daemon's networking of its own, so that parallel test
// daemons never share (or touch the host's) raind0 bridge, subnet or
// nftables table.
type Net struct {
	Bridge  string       // the default network's bridge
	Address netip.Prefix // its gateway address and prefix length
	Table   string       // the NAT table
}

// Args are the daemon's flags for n.
func (n Net) Args() []string {
	return []string{"--bridge", n.Bridge, "--bridge-ip", n.Address.String(), "--nat-table", n.Table}
}

// netReservations holds one file per subnet a test process uses, named by
// its third octet pair and holding the process's pid: parallel test
// processes never pick the same.
const netReservations = "/tmp/condenser-test-nets"

// Network reserves a bridge name, a /24 that no route of the host and no
// other test process uses, and an nftables table name for a test daemon.
// At the end of the test it removes the bridge, the table and the
// reservation (user-defined networks are the test's own to remove).
func Network(t testing.TB) Net {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	n := Net{Bridge: "cnt" + hex.EncodeToString(b), Table: "condenser_test_" + hex.EncodeToString(b)}
	subnet := ReserveSubnet(t, 180, 219)
	n.Address = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, subnet.Addr().As4()[1], subnet.Addr().As4()[2], 254}), 24)
	HoldIPForward(t)
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(n.Bridge); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("remove the test bridge %s: %v", n.Bridge, err)
			}
		}
		c := &nftables.Conn{}
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: n.Table})
		c.Flush() // absent when the daemon never needed it
	})
	return n
}

// ReserveSubnet reserves, until the test ends, a 10.X.Y.0/24 with X in
// lo..hi that no route of the host, no other test process and none of
// avoid uses.
func ReserveSubnet(t testing.TB, lo, hi byte, avoid ...netip.Prefix) netip.Prefix {
	t.Helper()
	unlock := lockNets(t)
	defer unlock()
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	used := slices.Clone(avoid)
	for _, r := range routes {
		if r.Dst != nil {
			if p, ok := netip.AddrFromSlice(r.Dst.IP); ok {
				ones, _ := r.Dst.Mask.Size()
				if ones > 0 {
					used = append(used, netip.PrefixFrom(p.Unmap(), ones))
				}
			}
		}
	}
	for range 1000 {
		var r [2]byte
		if _, err := rand.Read(r[:]); err != nil {
			t.Fatal(err)
		}
		x := lo + byte(int(r[0])%(int(hi-lo)+1))
		y := r[1]
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, x, y, 0}), 24)
		if overlaps(subnet, used) {
			continue
		}
		file := filepath.Join(netReservations, fmt.Sprintf("%d.%d", x, y))
		if pidAlive(file) {
			continue
		}
		if err := os.WriteFile(file, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(file) })
		return subnet
	}
	t.Fatal("no free test subnet")
	return netip.Prefix{}
}

// lockNets takes the reservations' lock (across test processes).
func lockNets(t testing.TB) (unlock func()) {
	t.Helper()
	if err := os.MkdirAll(netReservations, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(netReservations, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		t.Fatal(err)
	}
	return func() { lock.Close() }
}

const ipForward = "/proc/sys/net/ipv4/ip_forward"

// forwardHolds counts this process's HoldIPForward holds.
var forwardHolds struct {
	sync.Mutex
	n int
}

// HoldIPForward is for a test whose daemon or bridges turn
// net.ipv4.ip_forward on (as Docker, Condenser sets it when it first
// makes a bridge): the first test process to hold it records its value,
// and the last to let go — at the end of its last such test — puts it
// back, so that parallel test processes never turn it off under each
// other.
func HoldIPForward(t testing.TB) {
	t.Helper()
	forwardHolds.Lock()
	defer forwardHolds.Unlock()
	if forwardHolds.n == 0 {
		unlock := lockNets(t)
		holders := liveForwardHolders()
		orig := filepath.Join(netReservations, "ip_forward.orig")
		if len(holders) == 0 {
			if b, err := os.ReadFile(ipForward); err == nil {
				os.WriteFile(orig, b, 0o644)
			}
		}
		os.WriteFile(filepath.Join(netReservations, fmt.Sprintf("forward.%d", os.Getpid())), []byte(strconv.Itoa(os.Getpid())), 0o644)
		unlock()
	}
	forwardHolds.n++
	t.Cleanup(func() {
		forwardHolds.Lock()
		defer forwardHolds.Unlock()
		if forwardHolds.n--; forwardHolds.n > 0 {
			return
		}
		unlock := lockNets(t)
		defer unlock()
		os.Remove(filepath.Join(netReservations, fmt.Sprintf("forward.%d", os.Getpid())))
		if len(liveForwardHolders()) > 0 {
			return
		}
		orig := filepath.Join(netReservations, "ip_forward.orig")
		if b, err := os.ReadFile(orig); err == nil {
			if now, _ := os.ReadFile(ipForward); string(now) != string(b) {
				os.WriteFile(ipForward, b, 0o644)
			}
			os.Remove(orig)
		}
	})
}

// liveForwardHolders lists the forward.<pid> files of live processes,
// removing the others.
func liveForwardHolders() []string {
	files, _ := filepath.Glob(filepath.Join(netReservations, "forward.*"))
	var live []string
	for _, f := range files {
		if pidAlive(f) {
			live = append(live, f)
		} else {
			os.Remove(f)
		}
	}
	return live
}

func overlaps(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Overlaps(p) {
			return true
		}
	}
	return false
}

// pidAlive tells whether the reservation file names a live process.
func pidAlive(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}
