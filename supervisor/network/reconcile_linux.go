package network

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/raind/condenser/internal/names"
)

// Reconcile makes what is on the host match what should be, at daemon
// start: it keeps the attachments of the containers keep says to keep
// (nil keeps none) and removes everything else this Manager's state owns —
// the other attachments (DEL for CNI ones), and whatever has no record at
// all: namespaces under <state>/netns, veths whose alias is this state's,
// addresses under <state>/ipam, CNI attachments in libcni's cache (GC),
// the bridges it created for networks that no longer exist. A kept
// attachment's address is taken again if its file is missing.
//
// It runs alone: Attach, Detach and the others wait for it. An error says
// what could not be removed; the rest is removed all the same.
func (m *Manager) Reconcile(ctx context.Context, keep func(id string) bool) error {
	m.op.Lock()
	defer m.op.Unlock()
	if keep == nil {
		keep = func(string) bool { return false }
	}
	var errs []error
	m.mu.Lock()
	all := m.records
	m.mu.Unlock()
	kept := map[string]*record{}
	for id, r := range all {
		if !r.Pending && keep(id) {
			kept[id] = r
			continue
		}
		if r.Kind == KindCNI {
			if err := m.delCNI(ctx, r); err != nil {
				// Kept for another try; its namespace stays for DEL.
				errs = append(errs, fmt.Errorf("container %s: %w", names.ShortID(id), err))
				kept[id] = r
				continue
			}
		}
	}

	// Records.
	dir := filepath.Join(m.state, "attachments")
	ents, err := os.ReadDir(dir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && kept[id] != nil {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	m.mu.Lock()
	m.records = kept
	m.mu.Unlock()

	// Namespaces.
	ents, err = os.ReadDir(m.netnsDir())
	if err != nil {
		errs = append(errs, err)
	}
	removed := 0
	for _, e := range ents {
		if r := kept[e.Name()]; r != nil && !r.External {
			continue
		}
		if err := removeNamespace(filepath.Join(m.netnsDir(), e.Name())); err != nil {
			errs = append(errs, err)
		}
		removed++
	}

	// Veths, and bridges of networks gone.
	links, err := m.linkList()
	if err != nil {
		errs = append(errs, err)
	}
	ports := map[int]int{}
	for _, l := range links {
		ports[l.Attrs().MasterIndex]++
	}
	veths := 0
	for _, l := range links {
		alias := l.Attrs().Alias
		if id, ok := m.vethOwner(alias); ok && l.Type() == "veth" && kept[id] == nil {
			if err := m.h.LinkDel(l); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete veth %s: %w", l.Attrs().Name, err))
			}
			veths++
		}
	}
	m.mu.Lock()
	networks := map[string]Network{}
	for name, n := range m.networks {
		networks[name] = n
	}
	m.mu.Unlock()
	for _, l := range links {
		network, ok := m.bridgeOwner(l.Attrs().Alias)
		if _, exists := networks[network]; !ok || l.Type() != "bridge" || exists || network == Default {
			continue
		}
		if err := m.deleteBridge(network, l.Attrs().Name); err != nil {
			errs = append(errs, err)
		}
	}

	// Addresses.
	pools, err := os.ReadDir(filepath.Join(m.state, "ipam"))
	if err != nil {
		errs = append(errs, err)
	}
	freed := 0
	for _, d := range pools {
		p := pool{dir: filepath.Join(m.state, "ipam", d.Name())}
		n, err := p.sweep(func(a netip.Addr, id string) bool {
			r := kept[id]
			return r != nil && r.Kind == KindBridge && r.Network == d.Name() && r.IP == a
		})
		freed += n
		if err != nil {
			errs = append(errs, err)
		}
		_, user := networks[d.Name()]
		if !user && d.Name() != Default {
			os.Remove(p.dir) // when empty
		}
	}
	var valid []types.GCAttachment
	for id, r := range kept {
		switch r.Kind {
		case KindBridge:
			p := pool{dir: filepath.Join(m.state, "ipam", r.Network)}
			if used, err := p.list(); err != nil {
				errs = append(errs, err)
			} else if used[r.IP] != id {
				if err := p.claim(r.IP, id); err != nil {
					errs = append(errs, err)
				}
			}
		case KindCNI:
			valid = append(valid, types.GCAttachment{ContainerID: id, IfName: "eth0"})
		}
	}
	if err := m.gcCNI(ctx, valid); err != nil {
		errs = append(errs, err)
	}
	m.log.Info("networks reconciled", "kept", len(kept), "records", len(all)-len(kept),
		"namespaces", removed, "veths", veths, "addresses", freed)
	return errors.Join(errs...)
}
