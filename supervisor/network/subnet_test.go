package network

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

func TestParseSubnet(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // "" → invalid argument
	}{
		{"10.167.3.0/24", "10.167.3.0/24"},
		{"172.20.0.0/16", "172.20.0.0/16"},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"192.168.1.0/30", "192.168.1.0/30"},
		{"10.167.3.1/24", ""}, // not the network address
		{"10.167.3.0/31", ""}, // no room
		{"10.0.0.0/7", ""},
		{"fd00::/64", ""},
		{"10.167.3.0", ""},
		{"", ""},
		{"banana", ""},
	} {
		got, err := parseSubnet(c.in)
		if c.want == "" {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("parseSubnet(%q) = %v, %v; want invalid argument", c.in, got, err)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("parseSubnet(%q) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func TestParseGateway(t *testing.T) {
	subnet := netip.MustParsePrefix("10.167.3.0/24")
	for _, c := range []struct{ in, want string }{
		{"", "10.167.3.1"}, // Docker's default
		{"10.167.3.254", "10.167.3.254"},
		{"10.167.3.17", "10.167.3.17"},
		{"10.167.3.0", ""},   // network address
		{"10.167.3.255", ""}, // broadcast
		{"10.167.4.1", ""},   // outside
		{"fd00::1", ""},
		{"x", ""},
	} {
		got, err := parseGateway(c.in, subnet)
		if c.want == "" {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("parseGateway(%q) = %v, %v; want invalid argument", c.in, got, err)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("parseGateway(%q) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func TestBroadcast(t *testing.T) {
	for in, want := range map[string]string{
		"10.166.0.0/24":  "10.166.0.255",
		"10.166.0.77/24": "10.166.0.255",
		"172.16.0.0/12":  "172.31.255.255",
		"10.1.2.4/30":    "10.1.2.7",
	} {
		if got := broadcast(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("broadcast(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestFreeSubnet(t *testing.T) {
	p := netip.MustParsePrefix
	for _, c := range []struct {
		taken []netip.Prefix
		want  string
	}{
		{nil, "10.167.0.0/24"},
		{[]netip.Prefix{p("10.166.0.0/24")}, "10.167.0.0/24"},
		{[]netip.Prefix{p("10.167.0.0/24"), p("10.167.1.0/24")}, "10.167.2.0/24"},
		{[]netip.Prefix{p("10.167.0.0/23")}, "10.167.2.0/24"},   // a host route over two
		{[]netip.Prefix{p("10.167.0.128/25")}, "10.167.1.0/24"}, // a smaller one inside
		{[]netip.Prefix{p("10.167.0.0/24"), p("10.167.5.0/24")}, "10.167.1.0/24"},
	} {
		got, err := freeSubnet(c.taken)
		if err != nil || got.String() != c.want {
			t.Errorf("freeSubnet(%v) = %v, %v; want %s", c.taken, got, err, c.want)
		}
	}
	if got, err := freeSubnet([]netip.Prefix{p("10.0.0.0/8")}); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("freeSubnet(10.0.0.0/8 taken) = %v, %v; want resource exhausted", got, err)
	}
}

func TestOverlapping(t *testing.T) {
	p := netip.MustParsePrefix
	others := map[string]netip.Prefix{"raind0": p("10.166.0.0/24"), "web": p("10.167.0.0/24"), "cni": {}}
	for _, c := range []struct {
		in   string
		want []string // any of them
	}{
		{"10.166.0.0/24", []string{"raind0"}},
		{"10.166.0.128/25", []string{"raind0"}},
		{"10.166.0.0/15", []string{"raind0", "web"}}, // wider, over both
		{"10.167.0.0/24", []string{"web"}},
		{"10.168.0.0/24", nil},
		{"192.168.0.0/24", nil},
	} {
		got, ok := overlapping(p(c.in), others)
		if ok != (c.want != nil) || ok && !slices.Contains(c.want, got) {
			t.Errorf("overlapping(%s) = %q, %v; want one of %q", c.in, got, ok, c.want)
		}
	}
}

// The bridge rule: a bridge that exists is used with the address wanted,
// or with another IPv4 address of /24 or larger; otherwise refused.
func TestAdoptAddress(t *testing.T) {
	p := netip.MustParsePrefix
	want := p("10.166.0.254/24")
	for _, c := range []struct {
		name  string
		addrs []netip.Prefix
		get   string // "" → refused (conflict)
	}{
		{"ours", []netip.Prefix{want}, "10.166.0.254/24"},
		{"ours among others", []netip.Prefix{p("192.168.9.1/28"), want}, "10.166.0.254/24"},
		{"another /24", []netip.Prefix{p("10.88.0.1/24")}, "10.88.0.1/24"},
		{"a /16", []netip.Prefix{p("172.18.0.1/16")}, "172.18.0.1/16"},
		{"a /25 then a /24", []netip.Prefix{p("10.9.9.129/25"), p("10.8.0.1/24")}, "10.8.0.1/24"},
		{"a /25", []netip.Prefix{p("10.9.9.129/25")}, ""},
		{"a /30", []netip.Prefix{p("10.9.9.1/30")}, ""},
		{"no address", nil, ""},
	} {
		got, err := adoptAddress("raind0", c.addrs, want)
		if c.get == "" {
			if !errors.Is(err, errdefs.ErrConflict) {
				t.Errorf("%s: adoptAddress = %v, %v; want a conflict", c.name, got, err)
			} else {
				t.Logf("%s: %v", c.name, err)
			}
			continue
		}
		if err != nil || got.String() != c.get {
			t.Errorf("%s: adoptAddress = %v, %v; want %s", c.name, got, err, c.get)
		}
	}
}

func TestNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"web": true, "my-net_2.a": true, "A": true, "0": true,
		"": false, "-x": false, ".x": false, "a/b": false, "a b": false,
		"x123456789x123456789x123456789x123456789x123456789x123456789x1234": false, // 65
	} {
		if err := validName(name); (err == nil) != ok {
			t.Errorf("validName(%q) = %v", name, err)
		}
	}
	for name, ok := range map[string]bool{
		"cn-0123abcd": true, "br0": true, "raind0": true, "x23456789012345": true,
		"": false, "x234567890123456": false, "a/b": false, "a:b": false, "a b": false, ".": false,
		"vc0123456789": false, // a veth's shape
		"vc01234567":   true,
	} {
		if err := validBridgeName(name); (err == nil) != ok {
			t.Errorf("validBridgeName(%q) = %v", name, err)
		}
	}
	if b := defaultBridgeName("web"); len(b) != 11 || b[:3] != "cn-" || validBridgeName(b) != nil {
		t.Errorf("defaultBridgeName(web) = %q", b)
	}
	if defaultBridgeName("web") == defaultBridgeName("db") {
		t.Error("two networks, one bridge name")
	}
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if v := vethName(id); v != "vc0123456789" || !isVethName(v) || len(v) > 15 {
		t.Errorf("vethName = %q", v)
	}
	if mac := containerMAC(netip.MustParseAddr("10.166.0.7")).String(); mac != "02:42:0a:a6:00:07" {
		t.Errorf("containerMAC = %s", mac)
	}
	if mac := bridgeMAC("raind0"); mac[0]&1 != 0 || mac[0]&2 == 0 {
		t.Errorf("bridgeMAC = %s: want unicast, locally administered", mac)
	}
}
