package nat

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/raind/condenser/internal/errdefs"
)

// Port is a published port: traffic to HostIP:HostPort (every address of
// the host when HostIP is unspecified or invalid) over Protocol goes to the
// container's ContainerPort.
type Port struct {
	HostIP        netip.Addr
	HostPort      uint16
	ContainerPort uint16
	Protocol      string // "tcp" or "udp"
}

// String formats p as Docker writes a published port:
// [IP:]HOST:CONTAINER/PROTO, the IP only when it is a specific one.
// ParsePort(p.String()) gives p back.
func (p Port) String() string {
	s := strconv.Itoa(int(p.HostPort)) + ":" + strconv.Itoa(int(p.ContainerPort)) + "/" + p.Protocol
	if p.allAddrs() {
		return s
	}
	return p.HostIP.String() + ":" + s
}

// allAddrs reports whether p is published on every address of the host.
func (p Port) allAddrs() bool {
	return !p.HostIP.IsValid() || p.HostIP.IsUnspecified()
}

// ParsePort parses a published-port spec as the Raind CLI writes it,
// HOST:CONTAINER[:tcp|udp], or as Docker does, [IP:]HOST:CONTAINER[/tcp|udp].
// The protocol defaults to tcp; a missing IP or 0.0.0.0 means every address
// of the host (HostIP is then 0.0.0.0).
//
// Not supported, each with an error that says so: a random host port
// (Docker's "80" or "IP::80": Publish could not report the port it chose),
// port ranges, IPv6 host addresses (Condenser's networks are IPv4), and
// protocols other than tcp and udp. Every error wraps
// errdefs.ErrInvalidArgument.
func ParsePort(s string) (Port, error) {
	p, err := parsePort(s)
	if err != nil {
		return Port{}, fmt.Errorf("published port %q: %s: %w", s, err, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// specError is a reason a spec is malformed, without the spec; ParsePort
// adds the spec and the error kind.
type specError string

func (e specError) Error() string { return string(e) }

func parsePort(s string) (Port, error) {
	if s == "" {
		return Port{}, specError("empty; want HOST:CONTAINER[:tcp|udp] or [IP:]HOST:CONTAINER[/tcp|udp]")
	}
	rest, proto := s, ""
	// Docker's /proto suffix.
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		rest, proto = rest[:i], rest[i+1:]
		if proto == "" {
			return Port{}, specError("empty protocol after /")
		}
	}
	var ip string
	hasIP := false
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return Port{}, specError("unterminated [IP]")
		}
		ip, rest, hasIP = rest[1:end], rest[end+2:], true
		if !strings.Contains(ip, ":") {
			return Port{}, specError("brackets are for IPv6 addresses only")
		}
	}
	parts := strings.Split(rest, ":")
	// The Raind CLI's :proto suffix.
	if len(parts) >= 3 && isProtoWord(parts[len(parts)-1]) {
		if proto != "" {
			return Port{}, specError("protocol given twice")
		}
		proto = parts[len(parts)-1]
		parts = parts[:len(parts)-1]
	}
	switch len(parts) {
	case 1:
		if parts[0] == "" {
			return Port{}, specError("no ports; want HOST:CONTAINER")
		}
		return Port{}, specError("random host ports are not supported: give the host port too, as HOST:CONTAINER")
	case 2:
	case 3:
		if parts[2] == "" && !strings.Contains(parts[0], ".") {
			return Port{}, specError("empty protocol after the last :")
		}
		if hasIP {
			return Port{}, specError("too many fields; want [IP:]HOST:CONTAINER[/tcp|udp]")
		}
		ip, hasIP = parts[0], true
		parts = parts[1:]
	default:
		if !hasIP && len(parts) > 3 && !strings.ContainsAny(rest, "[]") {
			if _, err := netip.ParseAddr(strings.Join(parts[:len(parts)-2], ":")); err == nil {
				return Port{}, specError("IPv6 host addresses are not supported")
			}
		}
		return Port{}, specError("too many fields; want [IP:]HOST:CONTAINER[/tcp|udp]")
	}

	p := Port{HostIP: netip.IPv4Unspecified()}
	if hasIP {
		if ip == "" {
			return Port{}, specError("empty host IP before :")
		}
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return Port{}, specError(fmt.Sprintf("host IP %q is not an IP address", ip))
		}
		if !addr.Is4() {
			return Port{}, specError("IPv6 host addresses are not supported")
		}
		p.HostIP = addr
	}
	if parts[0] == "" {
		return Port{}, specError("random host ports are not supported: give the host port too, as [IP:]HOST:CONTAINER")
	}
	var err error
	if p.HostPort, err = parsePortNumber("host", parts[0]); err != nil {
		return Port{}, err
	}
	if p.ContainerPort, err = parsePortNumber("container", parts[1]); err != nil {
		return Port{}, err
	}
	switch strings.ToLower(proto) {
	case "", "tcp":
		p.Protocol = "tcp"
	case "udp":
		p.Protocol = "udp"
	default:
		return Port{}, specError(fmt.Sprintf("protocol %q is not supported: want tcp or udp", proto))
	}
	return p, nil
}

// isProtoWord reports whether s reads as a protocol name rather than a
// number: the third field of HOST:CONTAINER:PROTO.
func isProtoWord(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// parsePortNumber parses a port number, 1 to 65535, in decimal digits.
func parsePortNumber(what, s string) (uint16, error) {
	if s == "" {
		return 0, specError("empty " + what + " port")
	}
	if strings.Contains(s, "-") {
		return 0, specError("port ranges are not supported")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, specError(fmt.Sprintf("%s port %q is not a number", what, s))
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, specError(fmt.Sprintf("%s port %s is out of range 1-65535", what, s))
	}
	return uint16(n), nil
}
