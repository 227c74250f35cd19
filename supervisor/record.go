package supervisor

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/supervisor/oci"
)

// State is a container's lifecycle state.
type State string

const (
	StateCreating   State = "creating" // being created; cleaned up at start-up if the daemon died
	StateCreated    State = "created"
	StateRunning    State = "running"
	StateStopped    State = "stopped"
	StateRestarting State = "restarting" // a restart policy is starting it again
	StateRemoving   State = "removing"   // being deleted; finished at start-up if the daemon died
)

// CreateRequest is what a container is created from: the image, its
// name and what the supervisor does with it, and the choices that shape its
// OCI configuration (oci.Config, embedded: records keep their JSON keys).
type CreateRequest struct {
	Image         string `json:"image"`
	Name          string `json:"name,omitempty"`
	RestartPolicy string `json:"restartPolicy,omitempty"`
	AutoRemove    bool   `json:"autoRemove,omitempty"`
	// OpenStdin: without a terminal, the init's stdin is a pipe its shim
	// holds, written by attached clients (else /dev/null).
	OpenStdin bool `json:"openStdin,omitempty"`
	// Ports are published ports, as the Raind CLI writes them
	// (HOST:CONTAINER[:tcp|udp]) or Docker ([IP:]HOST:CONTAINER[/proto]).
	Ports []string `json:"ports,omitempty"`
	oci.Config
}

// Validate checks what can be checked without the image; every create
// request goes through it, once.
func (r *CreateRequest) Validate() error {
	if strings.TrimSpace(r.Image) == "" {
		return fmt.Errorf("image is required: %w", errdefs.ErrInvalidArgument)
	}
	if r.Name != "" {
		if err := names.ValidName(r.Name); err != nil {
			return err
		}
	}
	p, err := parseRestartPolicy(r.RestartPolicy)
	if err != nil {
		return err
	}
	if r.AutoRemove && p.name != "no" {
		return fmt.Errorf("autoRemove and restartPolicy %q conflict: %w", r.RestartPolicy, errdefs.ErrInvalidArgument)
	}
	return r.Config.Validate()
}

// Container is a container's record.
type Container struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	Image         string         `json:"image"`   // canonical reference
	ImageID       string         `json:"imageId"` // config digest
	ImageDigest   string         `json:"imageDigest"`
	Request       CreateRequest  `json:"request"`
	Args          []string       `json:"args"` // the effective command line
	State         State          `json:"state"`
	Pid           int            `json:"pid,omitempty"`
	ShimPid       int            `json:"shimPid,omitempty"`
	ShimAddress   string         `json:"shimAddress,omitempty"`
	Bundle        string         `json:"bundle"`
	RootfsMounts  []rootfs.Mount `json:"rootfsMounts,omitempty"` // prepared once, reused by every run
	ExitCode      *int           `json:"exitCode,omitempty"`     // nil: never exited, or unknown
	OOMKilled     bool           `json:"oomKilled,omitempty"`
	RestartCount  int            `json:"restartCount"`
	Backoff       int            `json:"backoff,omitempty"`       // quick restarts in a row: the next back-off is 100 ms << Backoff
	StopRequested bool           `json:"stopRequested,omitempty"` // stopped by a user: no restart
	CreatingAt    time.Time      `json:"creatingAt"`
	CreatedAt     time.Time      `json:"createdAt,omitzero"`
	StartedAt     time.Time      `json:"startedAt,omitzero"`
	StoppedAt     time.Time      `json:"stoppedAt,omitzero"`
	// Endpoint is the container's place on its network while it has one
	// (created or running on a bridge network); nil otherwise.
	Endpoint *Endpoint `json:"endpoint,omitempty"`
}

// Endpoint is a container's attachment to a network.
type Endpoint struct {
	Network string          `json:"network"`
	IP      netip.Addr      `json:"ip"`
	Prefix  netip.Prefix    `json:"prefix"` // the network's subnet
	Gateway netip.Addr      `json:"gateway"`
	MAC     string          `json:"mac,omitempty"`
	Ports   []PublishedPort `json:"ports,omitempty"`
	// Bridge and Veth: the host's side (the veth's host end is the one a
	// runtime that makes it itself, Droplet, must name so).
	Bridge string `json:"bridge,omitempty"`
	Veth   string `json:"veth,omitempty"`
}

// PublishedPort is a container port reachable from the host.
type PublishedPort struct {
	HostIP        netip.Addr `json:"hostIp"` // unspecified: all the host's addresses
	HostPort      uint16     `json:"hostPort"`
	ContainerPort uint16     `json:"containerPort"`
	Protocol      string     `json:"protocol"` // tcp or udp
}

// ShortID is the 12-digit form of the id.
func (c *Container) ShortID() string { return names.ShortID(c.ID) }

// RootfsPath is where the host reaches c's root filesystem. Its shim
// mounts it on bundle/rootfs in a mount namespace of its own (the host's
// mount table does not grow with the containers), so from the host it is
// seen through the shim's root, /proc/SHIMPID/root/BUNDLE/rootfs, while
// the shim lives; bundle/rootfs otherwise.
func (c *Container) RootfsPath() string {
	if c.ShimPid > 0 {
		return "/proc/" + strconv.Itoa(c.ShimPid) + "/root" + filepath.Join(c.Bundle, "rootfs")
	}
	return filepath.Join(c.Bundle, "rootfs")
}

var bucketContainers = []byte("containers")

// clone returns a copy of c that shares no memory with it.
func (c *Container) clone() *Container {
	d := *c
	d.Request.Entrypoint = slices.Clone(c.Request.Entrypoint) // nil stays nil, [] stays []
	d.Request.Command = slices.Clone(c.Request.Command)
	d.Request.Env = slices.Clone(c.Request.Env)
	d.Request.Mounts = slices.Clone(c.Request.Mounts)
	d.Request.Labels = maps.Clone(c.Request.Labels)
	d.Request.Ports = slices.Clone(c.Request.Ports)
	if c.Endpoint != nil {
		e := *c.Endpoint
		e.Ports = slices.Clone(e.Ports)
		d.Endpoint = &e
	}
	d.Args = slices.Clone(c.Args)
	d.RootfsMounts = slices.Clone(c.RootfsMounts)
	for i := range d.RootfsMounts {
		d.RootfsMounts[i].Options = slices.Clone(d.RootfsMounts[i].Options)
	}
	if c.ExitCode != nil {
		code := *c.ExitCode
		d.ExitCode = &code
	}
	return &d
}

// records is the bbolt store of container records, keyed by id, with a
// copy of every record in memory: reads (every listing, every lookup by
// name or id prefix) decode nothing. This process is the file's only
// writer (bbolt locks it), so the copy stays true.
//
// Nothing a request does costs O(records) copies: a lookup by id or name
// is a map read and copies one record, and a listing shares a sorted
// snapshot that is built once per change (see snapshot). The cached
// records themselves are never modified: a write replaces its record.
type records struct {
	db *bolt.DB

	mu     sync.RWMutex
	cache  map[string]*Container // by id; writes hold mu across the bbolt update
	byName map[string]string     // name → id
	gen    uint64                // counts the writes

	// snap is the sorted list of the cached records at generation gen,
	// nil after a write until a reader builds it again.
	snap atomic.Pointer[Snapshot]
}

// Snapshot is every container record at one moment, ordered by id, with
// the generation of the records it was taken at: two snapshots of the same
// generation hold the same records. Its records are shared by every reader
// and must not be modified (clone one to change it).
type Snapshot struct {
	Gen        uint64
	Containers []*Container
}

// load fills the cache from the file.
func (r *records) load() error {
	cache, byName := map[string]*Container{}, map[string]string{}
	err := r.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContainers).ForEach(func(_, v []byte) error {
			var c Container
			if err := json.Unmarshal(v, &c); err != nil {
				return err
			}
			cache[c.ID] = &c
			byName[c.Name] = c.ID
			return nil
		})
	})
	if err == nil {
		r.mu.Lock()
		r.cache, r.byName = cache, byName
		r.changed()
		r.mu.Unlock()
	}
	return err
}

// changed records a write; the caller holds mu.
func (r *records) changed() {
	r.gen++
	r.snap.Store(nil)
}

// set caches a copy of c; the caller holds mu.
func (r *records) set(c *Container) {
	if old := r.cache[c.ID]; old != nil && old.Name != c.Name && r.byName[old.Name] == c.ID {
		delete(r.byName, old.Name)
	}
	r.cache[c.ID] = c.clone()
	r.byName[c.Name] = c.ID
	r.changed()
}

func (r *records) put(c *Container) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketContainers).Put([]byte(c.ID), b) }); err != nil {
		return err
	}
	r.set(c)
	return nil
}

// get returns a copy of the record of id.
func (r *records) get(id string) (*Container, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := r.cache[id]
	if c == nil {
		return nil, fmt.Errorf("no such container: %s: %w", id, errdefs.ErrNotFound)
	}
	return c.clone(), nil
}

func (r *records) delete(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketContainers).Delete([]byte(id)) }); err != nil {
		return err
	}
	if old := r.cache[id]; old != nil && r.byName[old.Name] == id {
		delete(r.byName, old.Name)
	}
	delete(r.cache, id)
	r.changed()
	return nil
}

// snapshot returns the shared, sorted list of the records (read only): a
// listing copies nothing, and sorts once per change rather than once per
// request.
func (r *records) snapshot() Snapshot {
	if s := r.snap.Load(); s != nil {
		return *s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s := r.snap.Load(); s != nil { // built by another reader meanwhile
		return *s
	}
	s := &Snapshot{Gen: r.gen, Containers: make([]*Container, 0, len(r.cache))}
	for _, c := range r.cache {
		s.Containers = append(s.Containers, c)
	}
	slices.SortFunc(s.Containers, func(a, b *Container) int { return strings.Compare(a.ID, b.ID) })
	// Stored under the read lock: no write (which clears it) can come
	// between the build and the store, and readers racing here store
	// equal snapshots.
	r.snap.Store(s)
	return *s
}

// all returns copies of every record, ordered by id.
func (r *records) all() ([]*Container, error) {
	shared := r.snapshot().Containers
	out := make([]*Container, len(shared))
	for i, c := range shared {
		out[i] = c.clone()
	}
	return out, nil
}

// insert adds a new record, refusing a name that another container has.
func (r *records) insert(c *Container) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.byName[c.Name]; ok {
		return fmt.Errorf("container name %q is already in use by %s: %w", c.Name, names.ShortID(id), errdefs.ErrConflict)
	}
	if err := r.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketContainers).Put([]byte(c.ID), b) }); err != nil {
		return err
	}
	r.set(c)
	return nil
}

// resolve returns a copy of the record ref names: a full id or a name by
// map lookup, else a unique id prefix (≥ 4) by a scan that copies nothing.
func (r *records) resolve(ref string) (*Container, error) {
	if ref == "" {
		return nil, fmt.Errorf("no container given: %w", errdefs.ErrInvalidArgument)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if c := r.cache[ref]; c != nil {
		return c.clone(), nil
	}
	if id, ok := r.byName[ref]; ok {
		return r.cache[id].clone(), nil
	}
	var (
		found *Container
		n     int
	)
	if len(ref) >= 4 {
		for id, c := range r.cache {
			if strings.HasPrefix(id, ref) {
				found, n = c, n+1
			}
		}
	}
	switch n {
	case 1:
		return found.clone(), nil
	case 0:
		return nil, fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
	}
	return nil, fmt.Errorf("container %s is ambiguous (%d matches): %w", ref, n, errdefs.ErrInvalidArgument)
}

// restartPolicy is a parsed restart policy.
type restartPolicy struct {
	name string // "no", "on-failure", "always", "unless-stopped"
	max  int    // on-failure's maximum retries; 0 unlimited
}

func parseRestartPolicy(s string) (restartPolicy, error) {
	name, maxs, hasMax := strings.Cut(s, ":")
	p := restartPolicy{name: name}
	switch name {
	case "", "no":
		p.name = "no"
	case "always", "unless-stopped":
	case "on-failure":
		if hasMax {
			n, err := strconv.Atoi(maxs)
			if err != nil || n < 0 {
				return p, fmt.Errorf("restartPolicy %q: the maximum retry count must be a number ≥ 0: %w", s, errdefs.ErrInvalidArgument)
			}
			p.max = n
		}
		return p, nil
	default:
		return p, fmt.Errorf("restartPolicy %q: want no, on-failure[:max], always or unless-stopped: %w", s, errdefs.ErrInvalidArgument)
	}
	if hasMax {
		return p, fmt.Errorf("restartPolicy %q: only on-failure takes a maximum: %w", s, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// shouldRestart tells whether a container that exited with code restarts.
func (p restartPolicy) shouldRestart(code int, restarts int, stopRequested bool) bool {
	if stopRequested {
		return false
	}
	switch p.name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return code != 0 && (p.max == 0 || restarts < p.max)
	}
	return false
}
