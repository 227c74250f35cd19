package nat

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// ipForwardPath is the host's IPv4 forwarding switch.
const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// enableIPForward sets net.ipv4.ip_forward to 1 if it is not. It stays on
// after Condenser: other users of the host (Docker, libvirt, a router
// setup) may rely on it too, and turning it off resets every interface's
// forwarding.
func enableIPForward(log *slog.Logger) error {
	b, err := os.ReadFile(ipForwardPath)
	if err != nil {
		return fmt.Errorf("read %s: %w", ipForwardPath, err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(ipForwardPath, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	log.Info("nat: set net.ipv4.ip_forward=1: containers' traffic is routed through the host (it stays set)")
	return nil
}

// forwardDrop is a base chain of another table at the forward hook whose
// policy is drop.
type forwardDrop struct {
	chain *nftables.Chain
	// others are the chains of the same table, where rules for a bridge
	// may be (Docker's DOCKER-USER).
	others []*nftables.Chain
}

func (d forwardDrop) String() string {
	return fmt.Sprintf("%s %s chain %s", family(d.chain.Table.Family), d.chain.Table.Name, d.chain.Name)
}

// iptables reports whether the chain is iptables-nft's FORWARD.
func (d forwardDrop) iptables() bool {
	return d.chain.Table.Family == nftables.TableFamilyIPv4 && d.chain.Table.Name == "filter" && d.chain.Name == "FORWARD"
}

func family(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return fmt.Sprintf("family-%d", f)
}

// forwardDrops lists the base chains at the forward hook, in tables of
// family ip and inet other than ours, whose policy is drop. Such a chain
// drops what our chains accept: in nftables a packet must pass every base
// chain of a hook.
func forwardDrops(conn *nftables.Conn, ours string) ([]forwardDrop, error) {
	var chains []*nftables.Chain
	for _, f := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyINet} {
		cs, err := conn.ListChainsOfTableFamily(f)
		if err != nil {
			return nil, err
		}
		chains = append(chains, cs...)
	}
	var drops []forwardDrop
	for _, c := range chains {
		if c.Table == nil || (c.Table.Family == nftables.TableFamilyIPv4 && c.Table.Name == ours) {
			continue
		}
		if c.Hooknum == nil || *c.Hooknum != *nftables.ChainHookForward || c.Policy == nil || *c.Policy != nftables.ChainPolicyDrop {
			continue
		}
		d := forwardDrop{chain: c}
		for _, o := range chains {
			if o.Table != nil && o.Table.Name == c.Table.Name && o.Table.Family == c.Table.Family {
				d.others = append(d.others, o)
			}
		}
		drops = append(drops, d)
	}
	return drops, nil
}

// mentions reports whether a rule of the drop chain's table compares an
// interface name with bridge (iptables' -i/-o bridge, or bridge+): the
// operator has made room for the bridge, so there is nothing to warn of.
func mentions(conn *nftables.Conn, d forwardDrop, bridge string) bool {
	for _, c := range d.others {
		rules, err := conn.GetRules(c.Table, c)
		if err != nil {
			continue
		}
		for _, r := range rules {
			for i, e := range r.Exprs {
				m, ok := e.(*expr.Meta)
				if !ok || (m.Key != expr.MetaKeyIIFNAME && m.Key != expr.MetaKeyOIFNAME) || i+1 >= len(r.Exprs) {
					continue
				}
				cmp, ok := r.Exprs[i+1].(*expr.Cmp)
				if !ok || cmp.Op != expr.CmpOpEq {
					continue
				}
				name := bytes.TrimRight(cmp.Data, "\x00")
				exact := len(name) < len(cmp.Data)
				if string(name) == bridge || (!exact && len(name) > 0 && strings.HasPrefix(bridge, string(name))) {
					return true
				}
			}
		}
	}
	return false
}

// warnForwardPolicy logs a warning for each forward chain of another table
// that would drop container traffic, naming the fix. With a bridge, a
// chain whose table already has rules for the bridge is left out.
func (n *NAT) warnForwardPolicy(bridge string) {
	drops, err := forwardDrops(n.conn, n.table.Name)
	if err != nil {
		n.log.Warn("nat: cannot check the forward policy of other tables", "error", err)
		return
	}
	for _, d := range drops {
		if bridge != "" && mentions(n.conn, d, bridge) {
			continue
		}
		br := bridge
		if br == "" {
			br = "<bridge>"
		}
		var fix string
		if d.iptables() {
			fix = fmt.Sprintf("iptables -I FORWARD -i %[1]s -j ACCEPT && iptables -I FORWARD -o %[1]s -j ACCEPT "+
				"(with Docker installed, insert them into DOCKER-USER instead of FORWARD)", br)
		} else {
			fix = fmt.Sprintf("nft insert rule %[1]s %[2]s %[3]s iifname %[4]s accept && nft insert rule %[1]s %[2]s %[3]s oifname %[4]s accept",
				family(d.chain.Table.Family), d.chain.Table.Name, d.chain.Name, br)
		}
		n.log.Warn(fmt.Sprintf("nat: %s has policy drop: containers' forwarded traffic (outbound, published ports reached from other hosts, "+
			"and between containers, which br_netfilter passes there too) is dropped there; Condenser does not edit other tables; "+
			"to let it through: %s", d, fix), "bridge", bridge)
	}
	if bridge == "" {
		if b, err := os.ReadFile("/proc/net/ip_tables_names"); err == nil && bytes.Contains(b, []byte("filter")) {
			n.log.Warn("nat: legacy iptables (x_tables) has a filter table whose FORWARD policy Condenser cannot read; " +
				"if it is DROP, containers' forwarded traffic is dropped there: allow Condenser's bridges with iptables-legacy -I FORWARD -i/-o <bridge> -j ACCEPT")
		}
	}
}
