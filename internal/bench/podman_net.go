package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
)

// podmanNet is a CNI bridge network of a Podman engine's own, for row 8:
// the conflist podman 4.3's `network create` writes (bridge with ipMasq,
// portmap, firewall, tuning: Debian's plugins in /usr/lib/cni), but with
// a bridge name and a /24 of the benchmark's own (podman 4.3 has no
// --interface-name) and host-local's address records in the engine's
// directory (its dataDir).
//
// The plugins still change the host, and close undoes it: the bridge;
// iptables chains and rules (the bridge plugin's CNI-<hash> chains and
// their POSTROUTING jumps, the firewall plugin's CNI-FORWARD and
// CNI-ADMIN, portmap's CNI-HOSTPORT-*; and the nf_tables tables
// iptables-nft makes for them); libcni's cache in /var/lib/cni (podman
// 4.3 has no setting for it); podman's /run/netns, a mount point. And
// net.ipv4.ip_forward, which the bridge plugin turns on: the caller holds
// it (testutil.HoldIPForward).
type podmanNet struct {
	name   string // of the network and of its bridge
	subnet netip.Prefix
	ipam   string // host-local's dataDir
	// before is iptables' state before the network existed, per front
	// end (iptablesFamilies).
	before []iptablesDump
	// created are the shared directories that did not exist before: each
	// is removed at close once nothing is left in it.
	created []string
}

// cniCache is libcni's cache: results/<network>-<container>-<ifname>.
const cniCache = "/var/lib/cni"

// newPodmanNet returns a network on subnet (a /24) with a name of its own.
func newPodmanNet(subnet netip.Prefix) (*podmanNet, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return &podmanNet{name: "cbp" + hex.EncodeToString(b), subnet: subnet.Masked()}, nil
}

// setup records the host's state and writes the conflist into confDir
// (podman's network_config_dir) with host-local's records under dir.
func (n *podmanNet) setup(ctx context.Context, confDir, dir string) error {
	if !n.subnet.Addr().Is4() || n.subnet.Bits() > 30 {
		return fmt.Errorf("podman network: subnet %v: want an IPv4 prefix", n.subnet)
	}
	n.created = missingPaths(cniCache, filepath.Join(cniCache, "results"), filepath.Join(cniCache, "networks"), "/run/netns")
	for _, ipt := range iptablesFamilies {
		d, err := ipt.dump(ctx)
		if err != nil {
			return fmt.Errorf("podman network: %w", err)
		}
		n.before = append(n.before, d)
	}
	n.ipam = filepath.Join(dir, "cni-ipam")
	gateway := n.subnet.Addr().Next()
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       n.name,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": n.name, "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"routes":  []any{map[string]string{"dst": "0.0.0.0/0"}},
					"ranges":  [][]any{{map[string]string{"subnet": n.subnet.String(), "gateway": gateway.String()}}},
					"dataDir": n.ipam,
				},
				"capabilities": map[string]bool{"ips": true},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
			map[string]any{"type": "firewall", "backend": ""},
			map[string]any{"type": "tuning"},
		},
	}
	b, err := json.MarshalIndent(conf, "", "   ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(confDir, n.name+".conflist"), b, 0o644)
}

// check verifies that podman took the network as written.
func (n *podmanNet) check(ctx context.Context, p *Podman) error {
	out, err := p.podman(ctx, "network", "inspect", "--format", "{{.Driver}} {{.NetworkInterface}} {{range .Subnets}}{{.Subnet}}{{end}}", n.name)
	if err != nil {
		return err
	}
	if got, want := strings.TrimSpace(out), "bridge "+n.name+" "+n.subnet.String(); got != want {
		return fmt.Errorf("podman network inspect %s: %q, want %q", n.name, got, want)
	}
	return nil
}

// close removes the bridge and what the plugins left on the host that
// was not there before setup (podman network rm has removed the conflist,
// and normally the bridge, by then).
func (n *podmanNet) close(ctx context.Context) error {
	var errs []error
	if l, err := netlink.LinkByName(n.name); err == nil {
		errs = append(errs, netlink.LinkDel(l))
	} else if !errors.As(err, &netlink.LinkNotFoundError{}) {
		errs = append(errs, err)
	}
	if n.before != nil {
		o := cniOwner{name: n.name, subnet: n.subnet}
		errs = append(errs, o.undoCNI(ctx, n.before))
	}
	// The cache's entries of this network, should a DEL have failed.
	stale, _ := filepath.Glob(filepath.Join(cniCache, "results", n.name+"-*"))
	stale = append(stale, filepath.Join(cniCache, "networks", n.name))
	for _, p := range stale {
		errs = append(errs, os.RemoveAll(p))
	}
	for _, p := range n.created {
		errs = append(errs, removeIfEmpty(p))
	}
	n.created = nil
	return errors.Join(errs...)
}

// removeIfEmpty removes the directories at and below root that hold no
// file, deepest first, unmounting each before (podman makes /run/netns a
// shared mount of its own); a directory still holding something is
// someone else's and stays.
func removeIfEmpty(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range slices.Backward(dirs) {
		if entries, err := os.ReadDir(d); err != nil || len(entries) > 0 {
			continue
		}
		if err := unmountUnder(d); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
