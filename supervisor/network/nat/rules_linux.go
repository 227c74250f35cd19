package nat

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The chains of Condenser's table (see the package doc for the picture).
const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPublished   = "published"
	chainPostrouting = "postrouting"
	chainForward     = "forward"
)

// Rules are tagged with a comment (nftables rule user data, shown by
// `nft list ruleset`) naming their owner.
const (
	containerTag = "container="
	networkTag   = "network="
)

// maxOwnerLen bounds a container id or network name: the comment must fit
// the 255 bytes of a user data attribute with its prefix.
const maxOwnerLen = 128

// ctStatusDNAT is IPS_DST_NAT, the conntrack status bit of a connection
// whose destination was translated.
const ctStatusDNAT = 1 << 5

// comment returns rule user data holding the comment tag.
func comment(tag string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, tag)
}

// ruleComment returns the comment of a rule's user data. It parses the
// type-length-value list itself: userdata.Get trusts the lengths it reads.
func ruleComment(ud []byte) (string, bool) {
	for len(ud) >= 2 {
		typ, n := userdata.Type(ud[0]), int(ud[1])
		if len(ud) < 2+n {
			return "", false
		}
		if typ == userdata.TypeComment {
			return strings.TrimRight(string(ud[2:2+n]), "\x00"), true
		}
		ud = ud[2+n:]
	}
	return "", false
}

// owner returns the container id or network name a rule is tagged with,
// given the tag's prefix.
func owner(r *nftables.Rule, prefix string) (string, bool) {
	c, ok := ruleComment(r.UserData)
	if !ok || !strings.HasPrefix(c, prefix) {
		return "", false
	}
	return c[len(prefix):], true
}

// ifname returns an interface name as nft(8) writes it for a comparison:
// NUL-padded to IFNAMSIZ.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func protoNumber(proto string) byte {
	if proto == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// localDest is `fib daddr type local`: the destination is an address of
// this host.
func localDest() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// jumpPublishedExprs is the only rule of prerouting and output:
// `fib daddr type local jump published`.
func jumpPublishedExprs() []expr.Any {
	return append(localDest(), &expr.Verdict{Kind: expr.VerdictJump, Chain: chainPublished})
}

// addrField matches `ip saddr|daddr PREFIX` (offset 12 or 16).
func addrField(offset uint32, p netip.Prefix) []expr.Any {
	load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}
	if p.Bits() == 32 {
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()}}
	}
	m := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

func saddr(p netip.Prefix) []expr.Any { return addrField(12, p) }
func daddr(p netip.Prefix) []expr.Any { return addrField(16, p) }

// iface matches `iifname|oifname [!=] NAME`.
func iface(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifname(name)},
	}
}

// ctBits matches `ct state|status & bits != 0`.
func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func concat(parts ...[]expr.Any) []expr.Any {
	var all []expr.Any
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

var loopback = netip.MustParsePrefix("127.0.0.0/8")

// postroutingExprs are a network's rules in postrouting:
//
//	ip saddr SUBNET oifname != BRIDGE masquerade                             outbound
//	ip saddr 127.0.0.0/8 oifname BRIDGE ct status dnat masquerade            from the host's 127.0.0.1
//	ip saddr SUBNET ip daddr SUBNET oifname BRIDGE ct status dnat masquerade  hairpin
func postroutingExprs(subnet netip.Prefix, bridge string) [][]expr.Any {
	masq := []expr.Any{&expr.Masq{}}
	return [][]expr.Any{
		concat(saddr(subnet), iface(expr.MetaKeyOIFNAME, expr.CmpOpNeq, bridge), masq),
		concat(saddr(loopback), iface(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge), ctBits(expr.CtKeySTATUS, ctStatusDNAT), masq),
		concat(saddr(subnet), daddr(subnet), iface(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge), ctBits(expr.CtKeySTATUS, ctStatusDNAT), masq),
	}
}

// forwardExprs are a network's rules in forward: into the bridge goes only
// what answers the containers, what comes from the bridge itself, and
// published ports; the rest is refused.
//
//	oifname BRIDGE ct state established,related accept
//	oifname BRIDGE iifname BRIDGE accept
//	oifname BRIDGE ct status dnat accept
//	oifname BRIDGE reject with icmp admin-prohibited
func forwardExprs(bridge string) [][]expr.Any {
	out := iface(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge)
	accept := []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	return [][]expr.Any{
		concat(out, ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accept),
		concat(out, iface(expr.MetaKeyIIFNAME, expr.CmpOpEq, bridge), accept),
		concat(out, ctBits(expr.CtKeySTATUS, ctStatusDNAT), accept),
		concat(out, []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 13}}), // ICMP_PKT_FILTERED
	}
}

// publishExprs is the rule of a published port, in chain published:
//
//	[ip daddr HOSTIP] meta l4proto PROTO th dport HOSTPORT counter dnat to IP:CONTAINERPORT
func publishExprs(p Port, ip netip.Addr) []expr.Any {
	var e []expr.Any
	if !p.allAddrs() {
		e = daddr(netip.PrefixFrom(p.HostIP, 32))
	}
	return append(e,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNumber(p.Protocol)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.HostPort)},
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: ip.AsSlice()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.ContainerPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2},
	)
}

// decodePublish reads back what publishExprs wrote: the port and the
// container's address. It is how Open rebuilds the index of published
// ports from the table.
func decodePublish(exprs []expr.Any) (Port, netip.Addr, error) {
	p := Port{HostIP: netip.IPv4Unspecified()}
	var ip netip.Addr
	var havePort, haveNAT bool
	// cmpAfter returns the equality comparison that follows a load.
	cmpAfter := func(i, size int) ([]byte, bool) {
		if i+1 >= len(exprs) {
			return nil, false
		}
		c, ok := exprs[i+1].(*expr.Cmp)
		if !ok || c.Op != expr.CmpOpEq || len(c.Data) != size {
			return nil, false
		}
		return c.Data, true
	}
	for i := 0; i < len(exprs); i++ {
		switch e := exprs[i].(type) {
		case *expr.Payload:
			switch {
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 16 && e.Len == 4:
				d, ok := cmpAfter(i, 4)
				if !ok {
					return Port{}, ip, fmt.Errorf("ip daddr without a comparison")
				}
				p.HostIP = netip.AddrFrom4([4]byte(d))
			case e.Base == expr.PayloadBaseTransportHeader && e.Offset == 2 && e.Len == 2:
				d, ok := cmpAfter(i, 2)
				if !ok {
					return Port{}, ip, fmt.Errorf("dport without a comparison")
				}
				p.HostPort, havePort = binaryutil.BigEndian.Uint16(d), true
			default:
				return Port{}, ip, fmt.Errorf("unexpected payload %+v", e)
			}
			i++
		case *expr.Meta:
			d, ok := cmpAfter(i, 1)
			if e.Key != expr.MetaKeyL4PROTO || !ok {
				return Port{}, ip, fmt.Errorf("unexpected meta %+v", e)
			}
			switch d[0] {
			case unix.IPPROTO_TCP:
				p.Protocol = "tcp"
			case unix.IPPROTO_UDP:
				p.Protocol = "udp"
			default:
				return Port{}, ip, fmt.Errorf("protocol %d", d[0])
			}
			i++
		case *expr.Counter:
		case *expr.Immediate:
			switch {
			case e.Register == 1 && len(e.Data) == 4:
				ip = netip.AddrFrom4([4]byte(e.Data))
			case e.Register == 2 && len(e.Data) == 2:
				p.ContainerPort = binaryutil.BigEndian.Uint16(e.Data)
			default:
				return Port{}, ip, fmt.Errorf("unexpected immediate %+v", e)
			}
		case *expr.NAT:
			if e.Type != expr.NATTypeDestNAT || e.RegAddrMin != 1 || e.RegProtoMin != 2 {
				return Port{}, ip, fmt.Errorf("unexpected nat %+v", e)
			}
			haveNAT = true
		default:
			return Port{}, ip, fmt.Errorf("unexpected expression %T", e)
		}
	}
	if !havePort || !haveNAT || p.Protocol == "" || p.HostPort == 0 || p.ContainerPort == 0 || !ip.IsValid() {
		return Port{}, ip, fmt.Errorf("not a published port")
	}
	return p, ip, nil
}
