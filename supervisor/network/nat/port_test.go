package nat

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/raind/condenser/internal/errdefs"
)

func TestParsePort(t *testing.T) {
	all := netip.IPv4Unspecified()
	lo := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		in   string
		want Port
		err  string // a part of the error; "" when the spec is valid
	}{
		// The Raind CLI's HOST:CONTAINER[:tcp|udp].
		{in: "18080:80", want: Port{all, 18080, 80, "tcp"}},
		{in: "18080:80:tcp", want: Port{all, 18080, 80, "tcp"}},
		{in: "5353:53:udp", want: Port{all, 5353, 53, "udp"}},
		{in: "5353:53:UDP", want: Port{all, 5353, 53, "udp"}},
		// Docker's [IP:]HOST:CONTAINER[/tcp|udp].
		{in: "18080:80/tcp", want: Port{all, 18080, 80, "tcp"}},
		{in: "5353:53/udp", want: Port{all, 5353, 53, "udp"}},
		{in: "127.0.0.1:18080:80", want: Port{lo, 18080, 80, "tcp"}},
		{in: "127.0.0.1:5353:53/udp", want: Port{lo, 5353, 53, "udp"}},
		{in: "0.0.0.0:18080:80", want: Port{all, 18080, 80, "tcp"}},
		{in: "65535:1", want: Port{all, 65535, 1, "tcp"}},
		{in: "0080:080", want: Port{all, 80, 80, "tcp"}},
		// Both: an IP and the CLI's protocol.
		{in: "127.0.0.1:18080:80:udp", want: Port{lo, 18080, 80, "udp"}},

		{in: "", err: "empty"},
		{in: "80", err: "random host ports are not supported"},
		{in: "80/udp", err: "random host ports are not supported"},
		{in: ":80", err: "random host ports are not supported"},
		{in: "127.0.0.1::80", err: "random host ports are not supported"},
		{in: "[::1]:8080:80", err: "IPv6 host addresses are not supported"},
		{in: "::1:8080:80", err: "IPv6 host addresses are not supported"},
		{in: "[127.0.0.1]:8080:80", err: "brackets are for IPv6"},
		{in: "[::1:8080:80", err: "unterminated"},
		{in: "8000-8010:80", err: "port ranges are not supported"},
		{in: "8000:80-90", err: "port ranges are not supported"},
		{in: "0:80", err: "host port 0 is out of range"},
		{in: "80:0", err: "container port 0 is out of range"},
		{in: "65536:80", err: "host port 65536 is out of range"},
		{in: "99999999999999999999:80", err: "out of range"},
		{in: "+80:80", err: `host port "+80" is not a number`},
		{in: "80:http", err: `container port "http" is not a number`},
		{in: " 80:80", err: "is not a number"},
		{in: "80:", err: "empty container port"},
		{in: "80:80:", err: "empty protocol"},
		{in: "80:80/", err: "empty protocol"},
		{in: "80:80/sctp", err: `protocol "sctp" is not supported`},
		{in: "80:80:sctp", err: `protocol "sctp" is not supported`},
		{in: "80:80:tcp/udp", err: "protocol given twice"},
		{in: "localhost:80:80", err: `host IP "localhost" is not an IP address`},
		{in: "1.2.3:80:80", err: "is not an IP address"},
		{in: ":80:80", err: "empty host IP"},
		{in: "1:2:3:4:5", err: "too many fields"},
		{in: "[::1]:1:2:3", err: "too many fields"},
	} {
		got, err := ParsePort(tc.in)
		if tc.err == "" {
			if err != nil {
				t.Errorf("ParsePort(%q): %v", tc.in, err)
			} else if got != tc.want {
				t.Errorf("ParsePort(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParsePort(%q) = %+v, want an error with %q", tc.in, got, tc.err)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParsePort(%q): %v does not wrap ErrInvalidArgument", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParsePort(%q): %v, want it to say %q", tc.in, err, tc.err)
		}
	}
}

func TestPortString(t *testing.T) {
	for _, tc := range []struct {
		p    Port
		want string
	}{
		{Port{netip.IPv4Unspecified(), 18080, 80, "tcp"}, "18080:80/tcp"},
		{Port{netip.Addr{}, 18080, 80, "tcp"}, "18080:80/tcp"},
		{Port{netip.MustParseAddr("127.0.0.1"), 5353, 53, "udp"}, "127.0.0.1:5353:53/udp"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

// FuzzParsePort checks that ParsePort never panics, that what it accepts
// is a usable port (1-65535 both sides, tcp or udp, an IPv4 host address)
// that formats and parses back to itself, and that what it refuses is an
// invalid argument.
func FuzzParsePort(f *testing.F) {
	for _, s := range []string{
		"18080:80", "18080:80:tcp", "5353:53:udp", "127.0.0.1:18080:80/udp", "0.0.0.0:1:65535",
		"80", ":80", "[::1]:80:80", "1-2:3", "80:80/sctp", "a:b:c:d", "", "[", "]:", "/", "::::",
		"127.0.0.1:80:80:tcp/udp", "1.2.3.4::80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParsePort(%q): %v does not wrap ErrInvalidArgument", s, err)
			}
			if p != (Port{}) {
				t.Fatalf("ParsePort(%q) returned %+v with its error", s, p)
			}
			return
		}
		if p.HostPort == 0 || p.ContainerPort == 0 {
			t.Fatalf("ParsePort(%q) = %+v: a zero port", s, p)
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			t.Fatalf("ParsePort(%q) = %+v: protocol", s, p)
		}
		if !p.HostIP.Is4() {
			t.Fatalf("ParsePort(%q) = %+v: host IP is not IPv4", s, p)
		}
		back, err := ParsePort(p.String())
		if err != nil || back != p {
			t.Fatalf("ParsePort(%q) = %+v, formats as %q, parses back as %+v, %v", s, p, p.String(), back, err)
		}
	})
}
