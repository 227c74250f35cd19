package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/raind/condenser/internal/atomicfile"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

// AttachRequest says what to attach a container to.
type AttachRequest struct {
	// Network is a bridge network (raind0, a user-defined one) or a CNI
	// network; "" is raind0. host and none have no attachment.
	Network string
	// Name and Hostname are the container's, for the peers' /etc/hosts.
	Name     string
	Hostname string
	// External: the runtime makes the namespace and the veth itself
	// (Droplet, onto raind0): Attach ensures the bridge and allocates the
	// address, and the Attachment says what the runtime must set up
	// (Veth, the host side's name; IP, Prefix, Gateway). Bridge networks
	// only.
	External bool
}

// Attachment is a container's place on a network.
type Attachment struct {
	ID       string `json:"id"` // the container's
	Network  string `json:"network"`
	Name     string `json:"name,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	// IP is the container's address, Prefix the same with the subnet's
	// length (10.166.0.2/24: Prefix.Masked() is the subnet), Gateway its
	// default route's next hop.
	IP      netip.Addr   `json:"ip"`
	Prefix  netip.Prefix `json:"prefix"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	// MAC is the container's eth0's (none when External).
	MAC string `json:"mac,omitempty"`
	// Bridge and Veth are the host's side: the bridge the container's
	// veth is a port of, and the host end of that veth.
	Bridge string `json:"bridge,omitempty"`
	Veth   string `json:"veth,omitempty"`
	// Namespace is the network namespace's path (none when External).
	Namespace string `json:"namespace,omitempty"`
	External  bool   `json:"external,omitempty"`
}

// record is an attachment's file, <state>/attachments/<id>.json.
type record struct {
	Version int    `json:"version"`
	Kind    string `json:"kind"` // KindBridge or KindCNI
	// Pending: a CNI attachment under way (written before the plugins
	// run, so that a crash in the middle leaves what DEL needs).
	Pending bool `json:"pending,omitempty"`
	Attachment
}

func (m *Manager) recordFile(id string) string {
	return filepath.Join(m.state, "attachments", id+".json")
}

func (m *Manager) writeRecord(r *record) error {
	r.Version = 1
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(m.recordFile(r.ID), b, 0o600, false)
}

func (m *Manager) removeRecord(id string) error {
	if err := os.Remove(m.recordFile(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// loadRecords reads the attachments' files. One that cannot be read is
// left to Reconcile, which removes it.
func (m *Manager) loadRecords() error {
	dir := filepath.Join(m.state, "attachments")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || names.ValidID(id) != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("network: %w", err)
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil || r.ID != id {
			m.log.Warn("network: an attachment's file cannot be read; Reconcile removes it", "file", filepath.Join(dir, e.Name()), "error", err)
			continue
		}
		m.records[id] = &r
	}
	return nil
}

// lockID serializes the calls about container id and returns the unlock.
func (m *Manager) lockID(id string) func() {
	m.mu.Lock()
	l := m.ids[id]
	if l == nil {
		l = &idLock{}
		m.ids[id] = l
	}
	l.refs++
	m.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.ids, id)
		}
		m.mu.Unlock()
	}
}

// Attachment returns container id's attachment; none wraps
// errdefs.ErrNotFound.
func (m *Manager) Attachment(id string) (Attachment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.records[id]; ok && !r.Pending {
		return r.Attachment, nil
	}
	return Attachment{}, fmt.Errorf("attachment of container %s: %w", names.ShortID(id), errdefs.ErrNotFound)
}

// Peers returns the attachments of network, by address: the containers
// a user-defined network's /etc/hosts names.
func (m *Manager) Peers(network string) []Attachment {
	if network == "" {
		network = Default
	}
	m.mu.Lock()
	var out []Attachment
	for _, r := range m.records {
		if r.Network == network && !r.Pending {
			out = append(out, r.Attachment)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Attachment) int { return a.IP.Compare(b.IP) })
	return out
}
