package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/raind/condenser/internal/atomicfile"
	"github.com/raind/condenser/internal/errdefs"
)

// The built-in networks.
const (
	// Default is Raind's network: the bridge raind0 (Config.DefaultBridge)
	// with 10.166.0.254/24, containers from 10.166.0.1 up.
	Default = "raind0"
	// Host is the host's own network namespace: no attachment.
	Host = "host"
	// None is a namespace with loopback only: no attachment.
	None = "none"
)

// The kinds of network.
const (
	KindBridge = "bridge" // a Linux bridge Condenser sets up in-process
	KindHost   = "host"
	KindNone   = "none"
	KindCNI    = "cni" // a CNI conflist in Config.CNIConfDir
)

// DefaultAddress is the default network's gateway and prefix length when
// its bridge is Condenser's to create.
var DefaultAddress = netip.MustParsePrefix("10.166.0.254/24")

// Config configures a Manager.
type Config struct {
	// Root is the persistent directory: the user-defined networks, one
	// JSON file each under Root/networks.
	Root string
	// State is the volatile directory (on a tmpfs such as /run, wiped by
	// a reboot with the namespaces and interfaces it describes): netns,
	// ipam, attachments, cni-cache.
	State string
	// CNIConfDir holds *.conflist files, each a network of kind "cni";
	// empty: no CNI networks.
	CNIConfDir string
	// CNIPluginDirs are searched for the plugins (default /usr/lib/cni).
	CNIPluginDirs []string
	// DefaultBridge is the default network's bridge (default "raind0");
	// DefaultAddress its gateway and prefix length when Condenser creates
	// it (default 10.166.0.254/24). Tests set both, never to touch the
	// host's raind0.
	DefaultBridge  string
	DefaultAddress netip.Prefix
	Logger         *slog.Logger
}

// Network is a network containers attach to.
type Network struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // KindBridge, KindHost, KindNone or KindCNI
	// Bridge is the Linux bridge of a bridge network (and of a CNI network
	// whose bridge plugin names one).
	Bridge string `json:"bridge,omitempty"`
	// Subnet and Gateway: the containers' addresses come from Subnet, their
	// default route goes through Gateway (the bridge's address). For a CNI
	// network, what its host-local IPAM says, when it says.
	Subnet  netip.Prefix `json:"subnet,omitzero"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	// BuiltIn: raind0, host and none, which cannot be removed.
	BuiltIn bool      `json:"builtIn,omitempty"`
	Created time.Time `json:"created,omitzero"`
	// ConfigFile is a CNI network's conflist.
	ConfigFile string `json:"configFile,omitempty"`
}

// NetworkConfig is a user-defined network to create.
type NetworkConfig struct {
	Name string
	// Bridge defaults to "cn-" and 8 hex digits of the name's SHA-256.
	Bridge string
	// Subnet (IPv4 CIDR, e.g. "10.167.3.0/24") defaults to the first
	// 10.167.N.0/24 free of other networks and of the host's routes —
	// or, when Bridge exists with an address of /24 or larger, to that
	// address's subnet.
	Subnet string
	// Gateway defaults to the subnet's first address (.1, as Docker's
	// user-defined networks; raind0 keeps Raind's .254).
	Gateway string
}

// Manager sets up and tears down containers' networks.
type Manager struct {
	root, state string
	tag         string // marks the interfaces this Manager's state owns
	defBridge   string
	defAddr     netip.Prefix
	log         *slog.Logger
	h           *netlink.Handle // the host's namespace
	hDel        *netlink.Handle // the same, for the deletions in the background
	bg          sync.WaitGroup  // those deletions

	cniConfDir string
	cni        *libcni.CNIConfig

	// op is held by Reconcile alone, by every other change shared.
	op sync.RWMutex
	// netMu orders CreateNetwork and RemoveNetwork.
	netMu sync.Mutex

	mu       sync.Mutex
	networks map[string]Network // user-defined, by name
	records  map[string]*record // attachments (and CNI attachments under way), by container id
	inFlight map[string]int     // attaches under way, by network
	ids      map[string]*idLock

	brMu    sync.Mutex
	bridges map[string]bridgeState // what ensureBridge last found, by bridge
}

type idLock struct {
	sync.Mutex
	refs int
}

// Open opens the networks of cfg: it makes the directories, loads the
// user-defined networks and the attachments recorded, and opens a netlink
// socket in the calling thread's (the host's) network namespace. It
// changes no interface: call Reconcile once at start.
func Open(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Root == "" || cfg.State == "" {
		return nil, fmt.Errorf("network: Root and State are required: %w", errdefs.ErrInvalidArgument)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	state, err := filepath.Abs(cfg.State)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		root:       root,
		state:      state,
		defBridge:  cmp(cfg.DefaultBridge, Default),
		defAddr:    cfg.DefaultAddress,
		log:        cfg.Logger,
		cniConfDir: cfg.CNIConfDir,
		networks:   map[string]Network{},
		records:    map[string]*record{},
		inFlight:   map[string]int{},
		ids:        map[string]*idLock{},
		bridges:    map[string]bridgeState{},
	}
	if !m.defAddr.IsValid() {
		m.defAddr = DefaultAddress
	}
	if !m.defAddr.Addr().Is4() || m.defAddr.Bits() > 30 {
		return nil, fmt.Errorf("network: default address %s: want IPv4 with a prefix of /30 or larger: %w", m.defAddr, errdefs.ErrInvalidArgument)
	}
	if err := validBridgeName(m.defBridge); err != nil {
		return nil, err
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	sum := sha256.Sum256([]byte(state))
	m.tag = hex.EncodeToString(sum[:4])
	for _, d := range []string{filepath.Join(root, "networks"), m.netnsDir(), filepath.Join(state, "ipam"), filepath.Join(state, "attachments")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	if err := makeShared(m.netnsDir()); err != nil {
		return nil, fmt.Errorf("network: %s: make it a shared mount: %w", m.netnsDir(), err)
	}
	if cfg.CNIConfDir != "" {
		dirs := cfg.CNIPluginDirs
		if len(dirs) == 0 {
			dirs = []string{"/usr/lib/cni"}
		}
		m.cni = libcni.NewCNIConfigWithCacheDir(dirs, filepath.Join(state, "cni-cache"), nil)
	}
	if err := m.loadNetworks(); err != nil {
		return nil, err
	}
	if err := m.loadRecords(); err != nil {
		return nil, err
	}
	if m.h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		return nil, fmt.Errorf("network: netlink: %w", err)
	}
	if m.hDel, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		m.h.Close()
		return nil, fmt.Errorf("network: netlink: %w", err)
	}
	return m, nil
}

// Close waits for the veths Detach deletes in the background and
// releases the Manager's netlink sockets. Networks and attachments stay;
// the namespaces' directory stays a mount point while it holds one (Open
// made it one), so a daemon that stops with no container leaves no mount.
func (m *Manager) Close() error {
	m.bg.Wait()
	m.h.Close()
	m.hDel.Close()
	return unmountIfEmpty(m.netnsDir())
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (m *Manager) netnsDir() string        { return filepath.Join(m.state, "netns") }
func (m *Manager) nsPath(id string) string { return filepath.Join(m.state, "netns", id) }
func (m *Manager) networkFile(name string) string {
	return filepath.Join(m.root, "networks", name+".json")
}
func (m *Manager) pool(n Network) pool {
	return pool{dir: filepath.Join(m.state, "ipam", n.Name), subnet: n.Subnet.Masked(), gateway: n.Gateway}
}

// storedNetwork is a user-defined network's file.
type storedNetwork struct {
	Version int `json:"version"`
	Network
}

func (m *Manager) loadNetworks() error {
	dir := filepath.Join(m.root, "networks")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("network: %w", err)
		}
		var s storedNetwork
		err = json.Unmarshal(b, &s)
		if err == nil && (s.Name != name || validName(name) != nil || validBridgeName(s.Bridge) != nil ||
			!s.Subnet.Addr().Is4() || !s.Subnet.Contains(s.Gateway)) {
			err = errors.New("not a network")
		}
		if err != nil {
			m.log.Error("network: ignoring a network file that cannot be read", "file", filepath.Join(dir, e.Name()), "error", err)
			continue
		}
		s.Kind, s.BuiltIn = KindBridge, false
		m.networks[name] = s.Network
	}
	return nil
}

// Networks returns the networks: the built-in ones, the user-defined ones
// and the CNI ones, by name.
func (m *Manager) Networks(ctx context.Context) ([]Network, error) {
	m.mu.Lock()
	user := make([]Network, 0, len(m.networks))
	for _, n := range m.networks {
		user = append(user, n)
	}
	m.mu.Unlock()
	out := []Network{m.defaultNetwork(), {Name: Host, Kind: KindHost, BuiltIn: true}, {Name: None, Kind: KindNone, BuiltIn: true}}
	out = append(out, user...)
	lists, err := m.cniLists(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range lists {
		out = append(out, l.network())
	}
	slices.SortFunc(out, func(a, b Network) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Network returns the network name; an unknown name wraps
// errdefs.ErrNotFound.
func (m *Manager) Network(ctx context.Context, name string) (Network, error) {
	switch name {
	case Default:
		return m.defaultNetwork(), nil
	case Host:
		return Network{Name: Host, Kind: KindHost, BuiltIn: true}, nil
	case None:
		return Network{Name: None, Kind: KindNone, BuiltIn: true}, nil
	}
	m.mu.Lock()
	n, ok := m.networks[name]
	m.mu.Unlock()
	if ok {
		return n, nil
	}
	if l, err := m.cniList(ctx, name); err == nil {
		return l.network(), nil
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return Network{}, err
	}
	return Network{}, fmt.Errorf("network %s: %w", name, errdefs.ErrNotFound)
}

// taken tells whether name is a built-in or user-defined network's.
func (m *Manager) taken(name string) bool {
	if name == Default || name == Host || name == None {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.networks[name]
	return ok
}

// defaultNetwork is raind0 as it is: the address of its bridge when the
// bridge exists and has one it can be used with, else the configured one.
func (m *Manager) defaultNetwork() Network {
	n := Network{Name: Default, Kind: KindBridge, Bridge: m.defBridge, BuiltIn: true,
		Subnet: m.defAddr.Masked(), Gateway: m.defAddr.Addr()}
	if l, err := m.h.LinkByName(m.defBridge); err == nil {
		if addrs, err := m.addrs(l); err == nil {
			if a, err := adoptAddress(m.defBridge, addrs, m.defAddr); err == nil {
				n.Subnet, n.Gateway = a.Masked(), a.Addr()
			}
		}
	}
	return n
}

// CreateNetwork creates a user-defined bridge network and its bridge. A
// name taken (by a built-in, user-defined or CNI network) wraps
// errdefs.ErrAlreadyExists; a bad name, bridge name, subnet or gateway,
// or a subnet that overlaps another network's or a route of the host,
// errdefs.ErrInvalidArgument; a bridge that exists with an address that
// does not fit, errdefs.ErrConflict.
func (m *Manager) CreateNetwork(ctx context.Context, c NetworkConfig) (Network, error) {
	if err := validName(c.Name); err != nil {
		return Network{}, err
	}
	m.op.RLock()
	defer m.op.RUnlock()
	m.netMu.Lock()
	defer m.netMu.Unlock()
	if m.taken(c.Name) {
		return Network{}, fmt.Errorf("network %s: %w", c.Name, errdefs.ErrAlreadyExists)
	}
	if _, err := m.cniList(ctx, c.Name); err == nil {
		return Network{}, fmt.Errorf("network %s: a CNI network of %s: %w", c.Name, m.cniConfDir, errdefs.ErrAlreadyExists)
	}
	n := Network{Name: c.Name, Kind: KindBridge, Bridge: cmp(c.Bridge, defaultBridgeName(c.Name)), Created: time.Now().UTC()}
	if err := validBridgeName(n.Bridge); err != nil {
		return Network{}, err
	}
	// What the others hold: subnets, and bridges.
	others := map[string]netip.Prefix{}
	bridges := map[string]string{}
	def := m.defaultNetwork()
	others[def.Name], bridges[def.Bridge] = def.Subnet, def.Name
	m.mu.Lock()
	for _, o := range m.networks {
		others[o.Name], bridges[o.Bridge] = o.Subnet, o.Name
	}
	m.mu.Unlock()
	if lists, err := m.cniLists(ctx); err == nil {
		for _, l := range lists {
			o := l.network()
			others[o.Name] = o.Subnet
			if o.Bridge != "" {
				bridges[o.Bridge] = o.Name
			}
		}
	}
	if o, ok := bridges[n.Bridge]; ok {
		return Network{}, fmt.Errorf("network %s: bridge %s is network %s's: %w", n.Name, n.Bridge, o, errdefs.ErrInvalidArgument)
	}
	existing, err := m.h.LinkByName(n.Bridge)
	if err != nil && !isNotFound(err) {
		return Network{}, fmt.Errorf("network %s: bridge %s: %w", n.Name, n.Bridge, err)
	}
	var have []netip.Prefix
	if existing != nil {
		if existing.Type() != "bridge" {
			return Network{}, fmt.Errorf("network %s: %s exists and is a %s, not a bridge: %w", n.Name, n.Bridge, existing.Type(), errdefs.ErrConflict)
		}
		if have, err = m.addrs(existing); err != nil {
			return Network{}, err
		}
	}
	routes, err := m.hostRoutes(n.Bridge)
	if err != nil {
		return Network{}, err
	}
	switch {
	case c.Subnet != "":
		if n.Subnet, err = parseSubnet(c.Subnet); err != nil {
			return Network{}, err
		}
		if n.Gateway, err = parseGateway(c.Gateway, n.Subnet); err != nil {
			return Network{}, err
		}
		// A bridge that exists must have the gateway's address (ensureBridge
		// refuses the others).
	case existing != nil && len(have) > 0:
		a, err := adoptAddress(n.Bridge, have, netip.Prefix{})
		if err != nil {
			return Network{}, fmt.Errorf("network %s: %w", n.Name, err)
		}
		n.Subnet, n.Gateway = a.Masked(), a.Addr()
		if c.Gateway != "" && c.Gateway != n.Gateway.String() {
			return Network{}, fmt.Errorf("network %s: bridge %s has the address %s, not the gateway %s: %w", n.Name, n.Bridge, a, c.Gateway, errdefs.ErrConflict)
		}
	default:
		if c.Gateway != "" {
			return Network{}, fmt.Errorf("network %s: a gateway needs a subnet: %w", n.Name, errdefs.ErrInvalidArgument)
		}
		taken := slices.Collect(mapValues(others))
		for _, r := range routes {
			taken = append(taken, r.dst)
		}
		if n.Subnet, err = freeSubnet(taken); err != nil {
			return Network{}, fmt.Errorf("network %s: %w", n.Name, err)
		}
		n.Gateway = n.Subnet.Addr().Next()
	}
	if o, ok := overlapping(n.Subnet, others); ok {
		return Network{}, fmt.Errorf("network %s: subnet %s overlaps network %s's %s: %w", n.Name, n.Subnet, o, others[o], errdefs.ErrInvalidArgument)
	}
	for _, r := range routes {
		if r.dst.Overlaps(n.Subnet) {
			return Network{}, fmt.Errorf("network %s: subnet %s overlaps the host's route to %s (dev %s): %w", n.Name, n.Subnet, r.dst, r.dev, errdefs.ErrInvalidArgument)
		}
	}
	if _, err := m.ensureBridge(n.Name, n.Bridge, netip.PrefixFrom(n.Gateway, n.Subnet.Bits()), false); err != nil {
		return Network{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	b, err := json.MarshalIndent(storedNetwork{Version: 1, Network: n}, "", "\t")
	if err == nil {
		err = atomicfile.WriteFile(m.networkFile(n.Name), b, 0o600, true)
	}
	if err != nil {
		m.deleteBridge(n.Name, n.Bridge)
		return Network{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	m.mu.Lock()
	m.networks[n.Name] = n
	m.mu.Unlock()
	m.log.Info("network created", "network", n.Name, "bridge", n.Bridge, "subnet", n.Subnet, "gateway", n.Gateway)
	return n, nil
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// RemoveNetwork removes a user-defined network, and its bridge when
// Condenser created it. A network with attachments wraps
// errdefs.ErrConflict; raind0, host, none and CNI networks
// errdefs.ErrInvalidArgument; an unknown one errdefs.ErrNotFound.
func (m *Manager) RemoveNetwork(ctx context.Context, name string) error {
	switch name {
	case Default, Host, None:
		return fmt.Errorf("network %s is built in and cannot be removed: %w", name, errdefs.ErrInvalidArgument)
	}
	m.op.RLock()
	defer m.op.RUnlock()
	m.netMu.Lock()
	defer m.netMu.Unlock()
	m.mu.Lock()
	n, ok := m.networks[name]
	var users []string
	for id, r := range m.records {
		if r.Network == name {
			users = append(users, id[:12])
		}
	}
	attaching := m.inFlight[name]
	if ok && len(users) == 0 && attaching == 0 {
		delete(m.networks, name) // no new attach finds it
	}
	m.mu.Unlock()
	if !ok {
		if _, err := m.cniList(ctx, name); err == nil {
			return fmt.Errorf("network %s is a CNI network: remove its conflist from %s: %w", name, m.cniConfDir, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("network %s: %w", name, errdefs.ErrNotFound)
	}
	if len(users) > 0 || attaching > 0 {
		slices.Sort(users)
		return fmt.Errorf("network %s is in use by %d container(s) %s: %w", name, len(users)+attaching, strings.Join(users, ", "), errdefs.ErrConflict)
	}
	err := m.deleteBridge(n.Name, n.Bridge)
	if err == nil {
		err = os.Remove(m.networkFile(name))
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		m.mu.Lock()
		m.networks[name] = n
		m.mu.Unlock()
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	os.RemoveAll(filepath.Join(m.state, "ipam", name))
	m.log.Info("network removed", "network", name)
	return nil
}
