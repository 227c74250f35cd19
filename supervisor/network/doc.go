// Package network is containers' networking, in-process: network
// namespaces owned by Condenser, Linux bridge networks (the default
// raind0 and user-defined ones) set up through netlink, and CNI networks
// run through libcni.
//
// # Networks
//
// raind0 is Raind's: the bridge raind0 with 10.166.0.254/24, containers
// from 10.166.0.1 up. It is created when first needed. A bridge raind0 that
// exists is used: with that address, or with another IPv4 address of /24
// or larger (the subnet is then that address's, the gateway that address);
// anything else is refused with a message that says so — Condenser never
// changes a bridge it did not create. User-defined networks are bridges
// too ("cn-" + 8 hex digits of the name's SHA-256 unless named), with a
// subnet given or the first 10.167.N.0/24 free of the other networks and
// the host's routes, and the gateway .1 by default (as Docker's user-defined
// networks; raind0 keeps Raind's .254). Their bridge is created with the
// network, and again on the first attach after a reboot. host and none are
// built in and need nothing here. A *.conflist in Config.CNIConfDir is a
// network of kind "cni"; its plugins (Config.CNIPluginDirs, default
// /usr/lib/cni) do the work, and cost a process each (~0.2 s per
// container on the reference machine, against a few milliseconds
// in-process).
//
// The host: the first bridge Condenser creates sets net.ipv4.ip_forward=1
// (outbound traffic is forwarded from the bridge to the host's uplink, as
// Docker does), and every bridge it creates gets route_localnet=1 (a port
// published on 127.0.0.1 is DNATed into a container: package nat). The
// NAT rules themselves are package nat's. A bridge it creates carries a
// fixed MAC and the alias "condenser:<tag>:network:<name>", a veth the
// alias "condenser:<tag>:<container id>", tag being 8 hex digits of the
// state directory's SHA-256: that is how it knows what it owns — two
// daemons with different state directories never remove each other's
// interfaces — and only its own bridges are ever deleted.
//
// # On disk
//
//	<root>/networks/<name>.json       a user-defined network (atomic, durable)
//	<state>/netns/<id>                a container's network namespace, a bind
//	                                  mount of nsfs; <state>/netns is a shared
//	                                  mount point, as iproute2's /run/netns
//	<state>/ipam/<network>/<ip>       an address taken, holding the container id
//	                                  (made whole, then linked to its name: no
//	                                  two containers ever get one address)
//	<state>/attachments/<id>.json     a container's attachment (atomic)
//	<state>/cni-cache/                libcni's cache (results, configurations)
//
// <state> is on a tmpfs (/run/condenser): a reboot wipes it with the
// namespaces, veths and bridges it describes.
//
// # Attach, Detach, Reconcile
//
// Attach costs about 1.5 ms here (namespace ~1 ms, veth ~0.6 ms, the rest
// netlink and two small files); NewNamespace lets the supervisor make the
// namespace first and overlap the rest with the runtime's create. Detach
// costs about 0.3 ms: it takes the veth off the bridge at once (the address
// can be given again at once) and leaves its deletion, which waits for RCU
// (20–40 ms), to a goroutine that Close waits for.
//
// Attach writes the attachment's record last (a CNI one first, pending,
// and again when ADD is done); Detach removes the record first (a CNI
// one after DEL), then the rest. So whatever a crash leaves at any point
// either has a complete record or has none. Reconcile, called once at
// daemon start before any container is started, keeps the records of the
// containers the caller keeps and removes everything else: records not
// kept (DEL for CNI ones), and namespaces, veths, addresses and CNI
// attachments (libcni's GC) with no record kept, and the bridges Condenser
// created for networks that no longer exist. After it, every kept
// container has all of its attachment and every other container none of
// it; a container kept whose attachment was incomplete (no record) must be
// attached again. So a kill -9 at any point of Attach or Detach leaks
// nothing past the next start. (One window stays: a kill between a
// bridge's creation and its alias leaves a bridge Condenser no longer
// recognises as its own; it refuses to use it until it is deleted.)
package network
