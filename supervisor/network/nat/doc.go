// Package nat is the address translation of Condenser's bridge networks:
// outbound masquerade, published ports (DNAT) and a forward filter, in an
// nftables table of Condenser's own, written in-process through netlink
// (github.com/google/nftables).
//
// # Why in-process nftables
//
// CNI's portmap plugin costs about 0.2 s per container here: a process per
// plugin and another per iptables call. Publish and Unpublish are one
// nftables transaction each, on netlink sockets opened once (closing one
// costs the kernel about 11 ms): about 65-140 µs and 15-45 µs
// (BenchmarkPublish, medians, with 0 to 200 other published ports). The table is Condenser's alone, so Condenser never
// edits iptables' tables (nor Docker's, nor firewalld's), and its clean-up
// is deleting its own rules — or its table (Destroy).
//
// # The table
//
//	table ip condenser
//	│
//	├─ chain prerouting   nat    hook prerouting  priority dstnat (-100)
//	│     fib daddr type local jump published           traffic to the host's addresses,
//	│                                                   from outside or from containers
//	├─ chain output       nat    hook output      priority -100
//	│     fib daddr type local jump published           the host's own connections,
//	│                                                   127.0.0.1 included
//	├─ chain published    (regular; one rule per published port, tagged with its container)
//	│     [ip daddr HOSTIP] meta l4proto tcp th dport 18080 counter dnat to 10.166.0.1:80 comment "container=<id>"
//	│
//	├─ chain postrouting  nat    hook postrouting priority srcnat (100)
//	│     per network, tagged comment "network=<name>":
//	│     ip saddr SUBNET oifname != BRIDGE masquerade                               outbound
//	│     ip saddr 127.0.0.0/8 oifname BRIDGE ct status dnat masquerade              from 127.0.0.1
//	│     ip saddr SUBNET ip daddr SUBNET oifname BRIDGE ct status dnat masquerade   hairpin
//	│
//	└─ chain forward      filter hook forward     priority filter (0), policy accept
//	      per network, tagged comment "network=<name>":
//	      oifname BRIDGE ct state established,related accept
//	      oifname BRIDGE iifname BRIDGE accept
//	      oifname BRIDGE ct status dnat accept                                       published ports
//	      oifname BRIDGE reject with icmp admin-prohibited                           the rest
//
// Open creates what is missing and replaces the two static chains'
// contents in one transaction, so a restarted daemon neither duplicates
// nor briefly lacks them. AddNetwork replaces a network's rules;
// RemoveNetwork and ReconcileNetworks remove them.
//
// # Published ports
//
// Publish checks the host port first: another container of this table
// publishing it (same protocol, overlapping host address) or a process of
// the host having bound it (Publish tries to bind it, as the process that
// wants it would) is an errdefs.ErrConflict naming the port. Then:
//
//   - From outside, prerouting translates the destination; the forward
//     filter lets the translated connection into the bridge.
//   - From the host to any of its addresses, output translates it. A
//     connection to 127.0.0.1 then leaves by the bridge with a loopback
//     source, which the kernel allows only with route_localnet=1 on the
//     bridge (set by package network on the bridges it makes, as CNI's
//     portmap does), and the network's second masquerade rule gives it the
//     bridge's address so that the container's answer comes back
//     (TestRouteLocalnet shows that each of the two is needed).
//   - From a container to the host's addresses, prerouting on the bridge
//     translates it; the hairpin masquerade makes the answer go back
//     through the host, which matters where br_netfilter does not pass
//     bridged traffic to conntrack (TestHairpinWithoutBrNetfilter).
//
// Each rule carries its container's id in its comment (rule user data).
// Publish asks the kernel to echo the new rules (google/nftables' Flush
// drops the echo) and keeps their handles in an index, read back from the
// table at Open; Unpublish deletes by handle, without listing the chain.
// If someone else changed the chain, the handles are stale: the call reads
// the table again and retries once. Reconcile, at daemon start, removes
// the rules of every container not kept: nothing leaks after a kill -9.
//
// # Coexistence with iptables, and what stays on the host
//
// In nftables a packet must pass every base chain at a hook: an accept in
// Condenser's forward chain does not undo a drop in another table's. If
// the host's iptables FORWARD policy is DROP (Docker sets it), containers'
// forwarded traffic is dropped there — and, since br_netfilter passes
// bridged traffic to the same hook, so is traffic between containers.
// Condenser does not edit iptables' tables: Open and AddNetwork detect a
// forward base chain with policy drop in any ip or inet table and log a
// warning naming the fix (`iptables -I FORWARD -i BRIDGE -j ACCEPT` and
// `-o BRIDGE`, in DOCKER-USER with Docker), unless a rule of that table
// already names the bridge.
//
// Left on the host on purpose:
//
//   - The table itself, after the daemon stops: published ports keep
//     working while the daemon is away; the next Open takes it over and
//     Reconcile cleans it. Destroy deletes it.
//   - net.ipv4.ip_forward=1, set by AddNetwork (unless
//     Config.KeepIPForward): containers' traffic is routed through the
//     host. It is not turned off again: other users of the host may rely
//     on it, and turning it off resets every interface's forwarding.
//   - route_localnet=1 on Condenser's bridges (package network's); it goes
//     with the bridge.
//
// # Limits
//
// IPv4 only (Condenser's networks are IPv4). No random host ports and no
// port ranges (ParsePort says so). A published port is not held by a
// socket: a process that binds it later gets no traffic on the host's
// addresses, as with Docker without its userland proxy. The bind check can
// take the ephemeral source port of an outgoing connection for a taken
// port.
package nat
