package testutil

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
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
	n.Address = reserveSubnet(t)
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

// reserveSubnet picks 10.X.Y.254/24 with X in 180..219, free of the
// host's routes and of other test processes' reservations.
func reserveSubnet(t testing.TB) netip.Prefix {
	t.Helper()
	if err := os.MkdirAll(netReservations, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(netReservations, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var used []netip.Prefix
	for _, r := range routes {
		if r.Dst != nil {
			if p, ok := netip.AddrFromSlice(r.Dst.IP); ok {
				ones, _ := r.Dst.Mask.Size()
				used = append(used, netip.PrefixFrom(p.Unmap(), ones))
			}
		}
	}
	for range 1000 {
		var r [2]byte
		if _, err := rand.Read(r[:]); err != nil {
			t.Fatal(err)
		}
		x := 180 + int(binary.BigEndian.Uint16(r[:])%40)
		y := int(r[1])
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(x), byte(y), 0}), 24)
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
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(x), byte(y), 254}), 24)
	}
	t.Fatal("no free test subnet")
	return netip.Prefix{}
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
