package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	bolt "go.etcd.io/bbolt"

	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/supervisor/oci"
)

// Config configures a Supervisor.
type Config struct {
	Root   string // --root: containers/<id>/ (upper, work, log, etc files), containers.db
	State  string // --state (tmpfs): shims/<id>/ bundles
	Images Images
	Rootfs Rootfs
	// Shims starts and reaches the shims; nil: a ShimManager running
	// ShimBinary with Runtime, its state under State/runtime.
	Shims       Shims
	Runtime     string // runtime binary or path
	ShimBinary  string // condenser-shim
	CgroupV2    bool
	Logger      *slog.Logger
	StopTimeout time.Duration // default grace period of stop (10 s)
	// SpareShim keeps a shim launched ahead for the next container, off
	// the start path (see spare.go).
	SpareShim bool
	// CgroupParent (--cgroup-parent) is the cgroup under which each
	// container gets its own, a cgroupfs path (oci.ValidCgroupParent); "":
	// oci.CgroupParent.
	CgroupParent string
	// Networks connects containers to networks; nil: none (loopback only,
	// or the host's network).
	Networks Networks
	// WarmCgroups is called, and must return at once, when the runtime is
	// about to move a process into a cgroup (a container's create, an
	// exec): see internal/cgwarm. nil: nothing.
	WarmCgroups func()
}

// Supervisor owns the containers: their records, their shims and their
// lifecycle. Requests on one container are serialized by its lock, held
// from the moment its record exists; different containers proceed in
// parallel.
type Supervisor struct {
	cfg  Config
	log  *slog.Logger
	recs *records
	db   *bolt.DB

	mu    sync.Mutex
	locks map[string]*sync.Mutex   // per container
	shims map[string]Shim          // connected shims, by id
	runs  map[string]chan struct{} // closed when the current run ends

	spare       *spare        // a shim launched for the next container
	spareFilled chan struct{} // while a spare is being launched: closed when it is

	// members of the user-defined networks, for their /etc/hosts (see
	// networks.go); hostsMu serializes their rewrites.
	hostsMu sync.Mutex
	members map[string]map[string]member // network → id → member

	events *hub
	ctx    context.Context // lives as long as the supervisor
	cancel context.CancelFunc
	wg     sync.WaitGroup // monitors, restarts, the spare's launches
}

// Open opens the container records and reconnects to every live shim,
// reconciling what happened while the daemon was away.
func Open(ctx context.Context, cfg Config) (*Supervisor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = oci.CgroupParent
	}
	if err := oci.ValidCgroupParent(cfg.CgroupParent); err != nil {
		return nil, err
	}
	if cfg.Shims == nil {
		cfg.Shims = &ShimManager{Binary: cfg.ShimBinary, Runtime: cfg.Runtime, RuntimeRoot: filepath.Join(cfg.State, "runtime")}
	}
	for _, d := range []string{filepath.Join(cfg.Root, "containers"), filepath.Join(cfg.State, "shims"), filepath.Join(cfg.State, "runtime")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(filepath.Join(cfg.Root, "containers.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open container records: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucketContainers); return err }); err != nil {
		db.Close()
		return nil, err
	}
	recs := &records{db: db}
	if err := recs.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("read container records: %w", err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{cfg: cfg, log: cfg.Logger, recs: recs, db: db,
		locks: map[string]*sync.Mutex{}, shims: map[string]Shim{}, runs: map[string]chan struct{}{},
		events: newHub(), ctx: sctx, cancel: cancel, members: map[string]map[string]member{}}
	all, err := s.recs.all()
	if err != nil {
		s.Close()
		return nil, err
	}
	orphans := s.orphans(all)
	s.reconnect(ctx, all)
	s.sweep(orphans)
	s.reconcileNetworks(ctx)
	s.resume()
	return s, nil
}

// Close disconnects from the shims (containers keep running) and closes the
// records.
func (s *Supervisor) Close() error {
	s.cancel()
	s.mu.Lock()
	for _, c := range s.shims {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.closeSpare()
	return s.db.Close()
}

func (s *Supervisor) lock(id string) func() {
	s.mu.Lock()
	l := s.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[id] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// locked resolves ref, takes the container's lock and reads the record
// again under it; the caller calls unlock.
func (s *Supervisor) locked(ref string) (c *Container, unlock func(), err error) {
	if c, err = s.get(ref); err != nil {
		return nil, nil, err
	}
	unlock = s.lock(c.ID)
	if c, err = s.recs.get(c.ID); err != nil {
		unlock()
		return nil, nil, err
	}
	return c, unlock, nil
}

// get returns a copy of the record ref names: a map lookup, not a scan
// of copies of every record (a start among 1000 containers costs what it
// does among 10).
func (s *Supervisor) get(ref string) (*Container, error) { return s.recs.resolve(ref) }

// List returns a copy of every container record, ordered by id.
func (s *Supervisor) List(ctx context.Context) ([]*Container, error) { return s.recs.all() }

// Snapshot returns every container record, ordered by id, without copying
// them: the records are shared and must not be modified. Its generation
// changes whenever a record does, so that a reader can keep what it
// derives from a snapshot (a listing's encoded summaries) until then.
func (s *Supervisor) Snapshot() Snapshot { return s.recs.snapshot() }

// Get returns one container by id, id prefix or name.
func (s *Supervisor) Get(ctx context.Context, ref string) (*Container, error) { return s.get(ref) }

// ImageUsers lists the containers created from an image (for image removal).
func (s *Supervisor) ImageUsers(ctx context.Context, imageID string) ([]string, error) {
	var out []string
	for _, c := range s.recs.snapshot().Containers {
		if c.ImageID == imageID {
			out = append(out, c.Name)
		}
	}
	return out, nil
}

func (s *Supervisor) bundle(id string) string { return filepath.Join(s.cfg.State, "shims", id) }
func (s *Supervisor) containerDir(id string) string {
	return filepath.Join(s.cfg.Root, "containers", id)
}

// LogPath is a container's json-file log.
func (s *Supervisor) LogPath(c *Container) string {
	return filepath.Join(s.containerDir(c.ID), c.ID+"-json.log")
}

// generateSpec writes c's /etc files and returns its OCI configuration,
// from its request and its image.
func (s *Supervisor) generateSpec(c *Container, img Image) (*specs.Spec, error) {
	etc, err := s.writeEtcFiles(c)
	if err != nil {
		return nil, err
	}
	return oci.Generate(&img.Config, oci.Request{
		ID: c.ID, Name: c.Name, CgroupParent: s.cfg.CgroupParent, Config: c.Request.Config, CgroupV2: s.cfg.CgroupV2, Seccomp: true, Etc: etc,
	}, func(p string) ([]byte, error) { return rootfs.ReadFile(img.Layers, p) })
}

// writeEtcFiles writes c's /etc files (at create, and again at each start
// of the stopped container).
func (s *Supervisor) writeEtcFiles(c *Container) (oci.EtcFiles, error) {
	hostname := c.Request.Hostname
	if hostname == "" {
		hostname = c.ShortID()
	}
	return oci.WriteEtcFiles(filepath.Join(s.containerDir(c.ID), "etc"), hostname, c.Request.Network == "host")
}
