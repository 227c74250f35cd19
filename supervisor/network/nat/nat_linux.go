package nat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/errdefs"
)

// NAT manages Condenser's nftables table: outbound masquerade per network,
// published ports per container. Its methods are safe for concurrent use;
// each change is one nftables transaction.
type NAT struct {
	log           *slog.Logger
	keepIPForward bool
	netns         int

	mu     sync.Mutex
	conn   *nftables.Conn // nil once closed
	raw    *netlink.Conn  // for commit; dialled when needed
	table  *nftables.Table
	chains map[string]*nftables.Chain
	// The index of published ports, read from the table at Open.
	byPort map[portKey][]binding
	byID   map[string][]published
}

// published is a published port and the handle of its rule.
type published struct {
	port   Port
	handle uint64
}

// portKey is what two published ports must share to collide: a protocol
// and a host port (and then overlapping host addresses).
type portKey struct {
	proto string
	port  uint16
}

type binding struct {
	id     string
	hostIP netip.Addr // 0.0.0.0 for every address
}

// Open creates Condenser's table and its chains, or finds them as a
// previous daemon left them, and reads the published ports back from the
// table. It is idempotent: the static rules are replaced, not added again,
// and the rules of networks and containers are left for AddNetwork,
// Publish and Reconcile.
//
// It warns, through the logger, when a forward chain of another table
// (iptables' FORWARD when Docker is installed) has policy drop: container
// traffic would be dropped there, and Condenser does not edit iptables'
// tables.
func Open(ctx context.Context, cfg Config) (*NAT, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if len(cfg.Table) > 64 || !printable(cfg.Table) {
		return nil, fmt.Errorf("nat: table name %q: %w", cfg.Table, errdefs.ErrInvalidArgument)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conn, err := dial(cfg.netns)
	if err != nil {
		return nil, fmt.Errorf("nat: netlink: %w", kind(err))
	}
	n := &NAT{
		log:           cfg.Logger,
		keepIPForward: cfg.KeepIPForward,
		netns:         cfg.netns,
		conn:          conn,
		table:         &nftables.Table{Family: nftables.TableFamilyIPv4, Name: cfg.Table},
		byPort:        map[portKey][]binding{},
		byID:          map[string][]published{},
	}
	n.chains = map[string]*nftables.Chain{
		chainPrerouting: {Name: chainPrerouting, Table: n.table, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest},
		chainOutput: {Name: chainOutput, Table: n.table, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest},
		chainPublished: {Name: chainPublished, Table: n.table},
		chainPostrouting: {Name: chainPostrouting, Table: n.table, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource},
		chainForward: {Name: chainForward, Table: n.table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: ref(nftables.ChainPolicyAccept)},
	}

	// One transaction: the table and chains are created when missing (no
	// NLM_F_EXCL), and the two static chains are flushed and filled again,
	// so that no packet sees them empty and no restart duplicates them.
	conn.AddTable(n.table)
	for _, name := range []string{chainPublished, chainPrerouting, chainOutput, chainPostrouting, chainForward} {
		conn.AddChain(n.chains[name])
	}
	for _, name := range []string{chainPrerouting, chainOutput} {
		conn.FlushChain(n.chains[name])
		conn.AddRule(&nftables.Rule{Table: n.table, Chain: n.chains[name], Exprs: jumpPublishedExprs()})
	}
	if err := conn.Flush(); err != nil {
		_ = conn.CloseLasting()
		return nil, fmt.Errorf("nat: create table ip %s: %w", cfg.Table, kind(err))
	}

	if err := n.load(); err != nil {
		_ = n.conn.CloseLasting()
		return nil, err
	}
	n.warnForwardPolicy("")
	return n, nil
}

// load reads the index of published ports from the table. n.mu is held
// (or n is not shared yet).
func (n *NAT) load() error {
	rules, err := n.rules(chainPublished)
	if err != nil {
		return err
	}
	clear(n.byPort)
	clear(n.byID)
	for _, r := range rules {
		id, ok := owner(r, containerTag)
		if !ok {
			n.log.Warn("nat: a rule in the published chain has no container tag; Reconcile removes it",
				"table", n.table.Name, "handle", r.Handle)
			continue
		}
		p, _, err := decodePublish(r.Exprs)
		if err != nil {
			n.log.Warn("nat: cannot read a published port back; Unpublish and Reconcile still remove it",
				"table", n.table.Name, "container", id, "handle", r.Handle, "error", err)
			// Indexed without a port, so that Unpublish finds it.
			n.byID[id] = append(n.byID[id], published{handle: r.Handle})
			continue
		}
		n.index(id, published{port: p, handle: r.Handle})
	}
	return nil
}

func ref[T any](v T) *T { return &v }

// AddNetwork sets up the NAT of a bridge network: masquerade for traffic
// from subnet leaving by another interface than bridge, and for the
// host's own connections to published ports (from 127.0.0.1, through
// route_localnet on the bridge; from other containers of the network
// through the host's addresses: hairpin), and a forward filter that lets
// into the bridge only replies, the bridge's own traffic and published
// ports. Calling it again replaces the network's rules (a restart, a
// changed subnet). It also sets net.ipv4.ip_forward to 1 unless the
// Config says not to, and warns when another table's forward policy would
// drop the network's traffic.
func (n *NAT) AddNetwork(ctx context.Context, name string, subnet netip.Prefix, bridge string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkOwner("network name", name); err != nil {
		return err
	}
	if !subnet.IsValid() || !subnet.Addr().Is4() || subnet.Bits() == 0 {
		return fmt.Errorf("nat: network %s: subnet %s is not an IPv4 subnet: %w", name, subnet, errdefs.ErrInvalidArgument)
	}
	subnet = subnet.Masked()
	if bridge == "" || len(bridge) >= unix.IFNAMSIZ || !printable(bridge) {
		return fmt.Errorf("nat: network %s: bridge name %q: %w", name, bridge, errdefs.ErrInvalidArgument)
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errClosed
	}
	tag := comment(networkTag + name)
	if err := n.replace(func(r *nftables.Rule) bool {
		o, ok := owner(r, networkTag)
		return ok && o == name
	}, []string{chainPostrouting, chainForward}, func() {
		for _, e := range postroutingExprs(subnet, bridge) {
			n.conn.AddRule(&nftables.Rule{Table: n.table, Chain: n.chains[chainPostrouting], Exprs: e, UserData: tag})
		}
		for _, e := range forwardExprs(bridge) {
			n.conn.AddRule(&nftables.Rule{Table: n.table, Chain: n.chains[chainForward], Exprs: e, UserData: tag})
		}
	}); err != nil {
		return fmt.Errorf("nat: add network %s: %w", name, err)
	}
	if !n.keepIPForward {
		if err := enableIPForward(n.log); err != nil {
			return fmt.Errorf("nat: add network %s: %w", name, err)
		}
	}
	n.warnForwardPolicy(bridge)
	return nil
}

// RemoveNetwork removes a network's rules. Removing a network that has
// none is not an error.
func (n *NAT) RemoveNetwork(ctx context.Context, name string) error {
	return n.ReconcileNetworks(ctx, func(o string) bool { return o != name })
}

// ReconcileNetworks removes the rules of every network not kept: the
// networks deleted while the daemon was away.
func (n *NAT) ReconcileNetworks(ctx context.Context, keep func(name string) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errClosed
	}
	if err := n.replace(func(r *nftables.Rule) bool {
		o, ok := owner(r, networkTag)
		return ok && !keep(o)
	}, []string{chainPostrouting, chainForward}, nil); err != nil {
		return fmt.Errorf("nat: remove networks: %w", err)
	}
	return nil
}

// Publish forwards ports of the host to the container at ip: for traffic
// from outside (prerouting), from the host itself to any of its addresses,
// 127.0.0.1 included (output), and from containers to the host's addresses
// (prerouting on the bridge; the network's hairpin masquerade brings the
// replies back). Calling it again for the same id replaces its ports.
//
// A host port that another container of this NAT publishes (same
// protocol, overlapping host address) is an errdefs.ErrConflict naming
// that container; so is a port a process of the host has bound, found by
// trying to bind it. A malformed port is an errdefs.ErrInvalidArgument.
func (n *NAT) Publish(ctx context.Context, id string, ip netip.Addr, ports []Port) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkOwner("container id", id); err != nil {
		return err
	}
	if !ip.Is4() || ip.IsUnspecified() {
		return fmt.Errorf("nat: publish for container %s: address %s is not an IPv4 address: %w", id, ip, errdefs.ErrInvalidArgument)
	}
	ports = slices.Clone(ports)
	for i, p := range ports {
		if err := checkPort(p); err != nil {
			return fmt.Errorf("nat: publish for container %s: %w", id, err)
		}
		if p.allAddrs() {
			ports[i].HostIP = netip.IPv4Unspecified()
		}
		for _, q := range ports[:i] {
			if collide(p, q) {
				return fmt.Errorf("nat: publish for container %s: host port %s is given twice (%s and %s): %w",
					id, hostPortString(p), q, p, errdefs.ErrInvalidArgument)
			}
		}
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errClosed
	}
	for _, p := range ports {
		for _, b := range n.byPort[key(p)] {
			if b.id != id && overlap(b.hostIP, p.HostIP) {
				return fmt.Errorf("port %s is already published by container %s: %w", hostPortString(p), b.id, errdefs.ErrConflict)
			}
		}
	}
	for _, p := range ports {
		if err := probe(p); err != nil {
			return err
		}
	}

	tag := comment(containerTag + id)
	rules := make([]*nftables.Rule, len(ports))
	for i, p := range ports {
		rules[i] = &nftables.Rule{Table: n.table, Chain: n.chains[chainPublished], Exprs: publishExprs(p, ip), UserData: tag}
	}
	// One transaction: the container's previous rules, if any, go as its
	// new ones come.
	handles, err := n.commitFor(id, rules)
	if errors.Is(err, errNoEcho) {
		// The rules are in: the index learns their handles from the table.
		n.log.Warn("nat: reading the published chain again", "table", n.table.Name, "error", err)
		err = n.load()
		if err == nil {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("nat: publish for container %s: %w", id, err)
	}
	n.unindex(id)
	for i, p := range ports {
		n.index(id, published{port: p, handle: handles[i]})
	}
	return nil
}

// commitFor replaces the rules of container id with rules. When the
// handles of the index are stale (someone else changed the table), it
// reads the table again and retries once. n.mu is held.
func (n *NAT) commitFor(id string, rules []*nftables.Rule) ([]uint64, error) {
	for try := 0; ; try++ {
		var dels []ruleRef
		for _, e := range n.byID[id] {
			dels = append(dels, ruleRef{chain: chainPublished, handle: e.handle})
		}
		handles, err := n.commit(dels, rules)
		if err == nil || len(dels) == 0 || !errors.Is(err, unix.ENOENT) || try > 0 {
			return handles, err
		}
		n.log.Warn("nat: the published chain changed under Condenser; reading it again", "table", n.table.Name, "error", err)
		if err := n.load(); err != nil {
			return nil, err
		}
	}
}

// Unpublish removes the published ports of a container: exactly the rules
// tagged with its id. Unpublishing a container that has none is not an
// error.
func (n *NAT) Unpublish(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errClosed
	}
	if _, ok := n.byID[id]; !ok {
		return nil
	}
	if _, err := n.commitFor(id, nil); err != nil {
		return fmt.Errorf("nat: unpublish container %s: %w", id, err)
	}
	n.unindex(id)
	return nil
}

// Reconcile removes the published ports of every container not kept, and
// any rule of the published chain that has no container tag: run at
// daemon start with the containers that still exist, it removes what a
// daemon killed between a start and a delete left behind.
func (n *NAT) Reconcile(ctx context.Context, keep func(id string) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errClosed
	}
	if err := n.replace(func(r *nftables.Rule) bool {
		o, ok := owner(r, containerTag)
		return !ok || !keep(o)
	}, []string{chainPublished}, nil); err != nil {
		return fmt.Errorf("nat: reconcile published ports: %w", err)
	}
	if err := n.load(); err != nil {
		return fmt.Errorf("nat: reconcile published ports: %w", err)
	}
	return nil
}

// Published returns the ports published for a container, as the index
// has them.
func (n *NAT) Published(id string) []Port {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ports []Port
	for _, e := range n.byID[id] {
		if e.port.HostPort != 0 {
			ports = append(ports, e.port)
		}
	}
	return ports
}

// Close releases the netlink connection. The table stays: published ports
// keep working while the daemon is away.
func (n *NAT) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.CloseLasting()
	n.conn = nil
	if n.raw != nil {
		if rerr := n.raw.Close(); err == nil {
			err = rerr
		}
		n.raw = nil
	}
	return err
}

// Destroy deletes the table, and with it every rule Condenser made, then
// closes. Deleting a table that is already gone is not an error.
func (n *NAT) Destroy(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return errClosed
	}
	n.conn.DelTable(n.table)
	err := n.flush()
	if errors.Is(err, unix.ENOENT) {
		err = nil
	}
	clear(n.byPort)
	clear(n.byID)
	if cerr := n.conn.CloseLasting(); err == nil {
		err = cerr
	}
	n.conn = nil
	if n.raw != nil {
		_ = n.raw.Close()
		n.raw = nil
	}
	if err != nil {
		return fmt.Errorf("nat: delete table ip %s: %w", n.table.Name, err)
	}
	return nil
}

var errClosed = fmt.Errorf("nat: closed: %w", errdefs.ErrUnavailable)

// replace deletes, in the given chains, the rules that match drop, and
// queues what add adds, in one transaction. n.mu is held.
func (n *NAT) replace(drop func(*nftables.Rule) bool, chains []string, add func()) error {
	for _, c := range chains {
		rules, err := n.rules(c)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if drop(r) {
				if err := n.conn.DelRule(r); err != nil {
					return err
				}
			}
		}
	}
	if add != nil {
		add()
	}
	return n.flush()
}

// rules lists a chain's rules. n.mu is held.
func (n *NAT) rules(chain string) ([]*nftables.Rule, error) {
	rules, err := n.conn.GetRules(n.table, n.chains[chain])
	if err != nil {
		n.redial()
		return nil, fmt.Errorf("list chain %s of table ip %s: %w", chain, n.table.Name, err)
	}
	for _, r := range rules {
		// GetRules names the chain but leaves out its hook.
		r.Chain = n.chains[chain]
	}
	return rules, nil
}

// flush sends the queued changes as one transaction. n.mu is held.
func (n *NAT) flush() error {
	if err := n.conn.Flush(); err != nil {
		n.redial()
		return kind(err)
	}
	return nil
}

// redial replaces the lasting netlink connection after an error, so that
// no reply left unread can be taken for the answer to the next request.
func (n *NAT) redial() {
	_ = n.conn.CloseLasting()
	conn, err := dial(n.netns)
	if err != nil {
		// The next call dials a connection of its own (a Conn without a
		// lasting connection opens one per request).
		conn, _ = nftables.New(nftables.WithNetNSFd(n.netns))
	}
	n.conn = conn
}

// dial opens a lasting netlink connection to nftables: one socket for all
// of a NAT's requests, in the network namespace of the thread that opens
// it (the host's) or netns. Lasting, because closing a netfilter netlink
// socket takes the kernel about 11 ms here (BenchmarkOpen's close-µs),
// and google/nftables otherwise opens and closes one per request.
func dial(netns int) (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	return nftables.New(opts...)
}

func (n *NAT) index(id string, e published) {
	k := key(e.port)
	n.byPort[k] = append(n.byPort[k], binding{id: id, hostIP: e.port.HostIP})
	n.byID[id] = append(n.byID[id], e)
}

func (n *NAT) unindex(id string) {
	for _, e := range n.byID[id] {
		k := key(e.port)
		n.byPort[k] = slices.DeleteFunc(n.byPort[k], func(b binding) bool { return b.id == id })
		if len(n.byPort[k]) == 0 {
			delete(n.byPort, k)
		}
	}
	delete(n.byID, id)
}

func key(p Port) portKey { return portKey{proto: p.Protocol, port: p.HostPort} }

// overlap reports whether two host addresses (0.0.0.0 for all) share an
// address.
func overlap(a, b netip.Addr) bool {
	return a.IsUnspecified() || b.IsUnspecified() || a == b
}

func collide(p, q Port) bool {
	return key(p) == key(q) && overlap(p.HostIP, q.HostIP)
}

// hostPortString names the host side of a published port: 18080/tcp, or
// 127.0.0.1:18080/tcp.
func hostPortString(p Port) string {
	s := fmt.Sprintf("%d/%s", p.HostPort, p.Protocol)
	if p.allAddrs() {
		return s
	}
	return p.HostIP.String() + ":" + s
}

func checkPort(p Port) error {
	switch {
	case p.HostPort == 0 || p.ContainerPort == 0:
		return fmt.Errorf("port %s: a port is 0: %w", p, errdefs.ErrInvalidArgument)
	case p.Protocol != "tcp" && p.Protocol != "udp":
		return fmt.Errorf("port %s: protocol %q: want tcp or udp: %w", p, p.Protocol, errdefs.ErrInvalidArgument)
	case p.HostIP.IsValid() && !p.HostIP.Is4():
		return fmt.Errorf("port %s: IPv6 host addresses are not supported: %w", p, errdefs.ErrInvalidArgument)
	}
	return nil
}

func checkOwner(what, s string) error {
	if s == "" || len(s) > maxOwnerLen || !printable(s) {
		return fmt.Errorf("nat: %s %q: want 1 to %d printable characters: %w", what, s, maxOwnerLen, errdefs.ErrInvalidArgument)
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '"' {
			return false
		}
	}
	return true
}

// kind adds Condenser's error kind to a netlink error.
func kind(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w (nftables needs CAP_NET_ADMIN): %w", err, errdefs.ErrPermissionDenied)
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%w (no nf_tables in this kernel): %w", err, errdefs.ErrUnavailable)
	}
	return err
}

// probe tries to bind the host port of p, as a process of the host would:
// a port that is taken is an errdefs.ErrConflict.
func probe(p Port) error {
	typ := unix.SOCK_STREAM
	if p.Protocol == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("nat: check port %s: %w", hostPortString(p), err)
	}
	defer unix.Close(fd)
	if typ == unix.SOCK_STREAM {
		// As a server would: connections in TIME_WAIT do not hold the
		// port, a listener does.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("nat: check port %s: %w", hostPortString(p), err)
		}
	}
	sa := &unix.SockaddrInet4{Port: int(p.HostPort)}
	if !p.allAddrs() {
		sa.Addr = p.HostIP.As4()
	}
	switch err := unix.Bind(fd, sa); {
	case err == nil:
		return nil
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("port %s is in use on the host (a process has bound it): %w", hostPortString(p), errdefs.ErrConflict)
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return fmt.Errorf("port %s: %s is not an address of this host: %w", hostPortString(p), p.HostIP, errdefs.ErrInvalidArgument)
	default:
		return fmt.Errorf("nat: check port %s: %w", hostPortString(p), err)
	}
}
