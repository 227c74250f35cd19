package supervisor

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
)

// Rename gives container ref the name newName. The name is checked as at
// create (names.ValidName) and taken under the records' lock, so that
// two renames or a create cannot both get it; the old name is free once
// the new one is recorded. The peers on its user-defined network see the
// new name in their /etc/hosts.
func (s *Supervisor) Rename(ctx context.Context, ref, newName string) (*Container, error) {
	if err := names.ValidName(newName); err != nil {
		return nil, err
	}
	c, unlock, err := s.locked(ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if c.Name == newName {
		return nil, fmt.Errorf("container %s is already named %q: %w", c.ShortID(), newName, errdefs.ErrInvalidArgument)
	}
	if c.State == StateRemoving || c.State == StateCreating {
		return nil, fmt.Errorf("container %s is %s: %w", c.Name, c.State, errdefs.ErrConflict)
	}
	c.Name = newName
	if err := s.recs.rename(c); err != nil {
		return nil, err
	}
	s.renameMember(c.ID, newName)
	s.events.publish(Event{Type: "container", Action: "rename", ID: c.ID, Name: newName})
	return c, nil
}

// rename writes c's record under its new name, refusing a name another
// container has; the old name is released in the same step (set).
func (r *records) rename(c *Container) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.byName[c.Name]; ok && id != c.ID {
		return fmt.Errorf("container name %q is already in use by %s: %w", c.Name, names.ShortID(id), errdefs.ErrConflict)
	}
	if err := r.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketContainers).Put([]byte(c.ID), b) }); err != nil {
		return fmt.Errorf("container %s: write its record: %w", c.Name, err)
	}
	r.set(c)
	return nil
}

// renameMember renames container id among its networks' members and
// rewrites the /etc/hosts files that name it. A failure there is logged:
// the rename itself is done.
func (s *Supervisor) renameMember(id, name string) {
	s.hostsMu.Lock()
	defer s.hostsMu.Unlock()
	for network, members := range s.members {
		m, ok := members[id]
		if !ok {
			continue
		}
		m.name = name
		members[id] = m
		var err error
		if resolvesNames(network) {
			err = s.writeNetworkHosts(network)
		} else {
			err = s.writeHosts(network, id)
		}
		if err != nil {
			s.log.Warn("rename: rewrite /etc/hosts", "id", id, "network", network, "error", err)
		}
	}
}
