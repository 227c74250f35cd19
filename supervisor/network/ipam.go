package network

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/raind/condenser/internal/errdefs"
)

// pool hands out the addresses of one network: one file per address in
// dir (<state>/ipam/<network>/<ip>), holding the id of the container that
// has it. A file is made whole under a temporary name and linked to the
// address's name, which fails when the name exists: two allocations, in
// this process or another, never get the same address, and no file is ever
// seen empty.
type pool struct {
	dir     string
	subnet  netip.Prefix // masked
	gateway netip.Addr   // never handed out
}

// allocate gives id the lowest free address of the subnet (its network and
// broadcast addresses and the gateway excluded). All taken wraps
// errdefs.ErrResourceExhausted.
func (p pool) allocate(id string) (netip.Addr, error) {
	used, err := p.taken()
	if err != nil {
		return netip.Addr{}, err
	}
	tmp, err := p.temp(id)
	if err != nil {
		return netip.Addr{}, err
	}
	defer os.Remove(tmp)
	last := broadcast(p.subnet)
	for a := p.subnet.Addr().Next(); a.IsValid() && a.Less(last); a = a.Next() {
		if _, ok := used[a]; ok || a == p.gateway {
			continue
		}
		err := os.Link(tmp, filepath.Join(p.dir, a.String()))
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return netip.Addr{}, fmt.Errorf("allocate an address in %s: %w", p.subnet, err)
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address left in %s: %w", p.subnet, errdefs.ErrResourceExhausted)
}

// claim records that id has a, whether or not a file says so already
// (Reconcile: a kept attachment's address must stay taken).
func (p pool) claim(a netip.Addr, id string) error {
	tmp, err := p.temp(id)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Rename(tmp, filepath.Join(p.dir, a.String()))
}

// temp writes id to a new temporary file in the pool's directory.
func (p pool) temp(id string) (string, error) {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return "", err
	}
	var r [6]byte
	rand.Read(r[:])
	name := filepath.Join(p.dir, ".tmp-"+hex.EncodeToString(r[:]))
	if err := os.WriteFile(name, []byte(id), 0o600); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// release frees a if id has it. A missing file is no error.
func (p pool) release(a netip.Addr, id string) error {
	name := filepath.Join(p.dir, a.String())
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if string(b) != id {
		return nil
	}
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// taken returns the taken addresses.
func (p pool) taken() (map[netip.Addr]struct{}, error) {
	ents, err := os.ReadDir(p.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	used := make(map[netip.Addr]struct{}, len(ents))
	for _, e := range ents {
		if a, err := netip.ParseAddr(e.Name()); err == nil {
			used[a] = struct{}{}
		}
	}
	return used, nil
}

// list returns the taken addresses and their holders. Temporary files and
// names that are no address are skipped; a missing directory is an empty
// pool.
func (p pool) list() (map[netip.Addr]string, error) {
	ents, err := os.ReadDir(p.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[netip.Addr]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	used := make(map[netip.Addr]string, len(ents))
	for _, e := range ents {
		a, err := netip.ParseAddr(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.dir, e.Name()))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		used[a] = string(b)
	}
	return used, nil
}

// sweep removes the pool's files that keep does not hold — addresses whose
// holder is not kept, and temporary files — and returns how many.
func (p pool) sweep(keep func(a netip.Addr, id string) bool) (int, error) {
	ents, err := os.ReadDir(p.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range ents {
		name := filepath.Join(p.dir, e.Name())
		if a, err := netip.ParseAddr(e.Name()); err == nil && !strings.HasPrefix(e.Name(), ".") {
			b, err := os.ReadFile(name)
			if err == nil && keep(a, string(b)) {
				continue
			}
		}
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
