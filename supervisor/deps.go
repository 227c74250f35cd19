package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/rootfs"
	"github.com/raind/condenser/shim/api"
	"github.com/raind/condenser/shim/client"
)

// The supervisor's view of the rest of the daemon: small interfaces it
// owns, so that its state machine is tested with fakes (fake_test.go). The
// daemon passes the real ones (StoreImages, *rootfs.Manager, ShimManager).

// Images finds the image a container is created from.
type Images interface {
	// Image returns ref's image, pulling it when it is absent and pull
	// is set; absent and not pulled wraps errdefs.ErrNotFound.
	Image(ctx context.Context, ref string, pull bool) (Image, error)
}

// Image is what a container needs of its image.
type Image struct {
	Name   string    // canonical reference
	ID     string    // config digest
	Digest string    // what the name resolved to
	Config v1.Config // Entrypoint, Cmd, Env, User, WorkingDir, …
	Layers []string  // the unpacked layer directories, lowest first
}

// Rootfs prepares and removes containers' root filesystems
// (*rootfs.Manager).
type Rootfs interface {
	Prepare(ctx context.Context, id string, layers []string, o rootfs.Options) ([]rootfs.Mount, error)
	Remove(ctx context.Context, id string) error
}

// Shims starts and reaches the containers' shims, the only door to the
// runtime: the supervisor never runs a runtime binary itself.
type Shims interface {
	// Address is where the shim of bundle serves, known before it is
	// launched: the record says it first, so that a daemon killed during
	// a launch leaves nothing it cannot find.
	Address(id, bundle string) string
	// Launch starts the shim of container id for bundle and returns its
	// address.
	Launch(ctx context.Context, id, bundle string) (address string, err error)
	// Dial connects to the shim at address; a shim that is gone wraps
	// errdefs.ErrUnavailable.
	Dial(ctx context.Context, address string) (Shim, error)
	// Cleanup is the out-of-band clean-up of a container whose shim is
	// gone or must go (`condenser-shim delete`): it kills a shim that
	// lingers, deletes the runtime's container, unmounts and removes the
	// cgroups. It returns the exit status the shim left, nil when none.
	Cleanup(ctx context.Context, id, bundle string) (*client.Exit, error)
	// Attach attaches to the standard streams of a process of the
	// container whose bundle is bundle, through its shim's io.sock (which
	// outlives the daemon).
	Attach(ctx context.Context, bundle string, req api.AttachRequest) (Stream, error)
}

// Networks connects containers to networks: the daemon passes an adapter
// over supervisor/network and supervisor/network/nat; nil runs without
// networking (a container has loopback only, or the host's network).
type Networks interface {
	List(ctx context.Context) ([]Network, error)
	// Get returns network name (raind0, host, none, user-defined, CNI);
	// unknown is errdefs.ErrNotFound.
	Get(ctx context.Context, name string) (Network, error)
	Create(ctx context.Context, cfg NetworkConfig) (Network, error)
	Remove(ctx context.Context, name string) error
	// ParsePorts parses published-port specs (errdefs.ErrInvalidArgument).
	ParsePorts(specs []string) ([]PublishedPort, error)
	// Namespace makes container id's network namespace and returns its
	// path, for the OCI spec.
	Namespace(ctx context.Context, id string) (path string, err error)
	// Connect connects the namespace to its network and publishes its
	// ports (a taken host port is errdefs.ErrConflict).
	Connect(ctx context.Context, id string, r ConnectRequest) (*Endpoint, error)
	// Disconnect undoes Namespace and Connect; idempotent, and it cleans
	// up whatever a crash left of them.
	Disconnect(ctx context.Context, id string) error
	// Reconcile disconnects every container that keep rejects, and what
	// belongs to no container.
	Reconcile(ctx context.Context, keep func(id string) bool) error
}

// Stream is a client attached to a process's standard streams
// (*client.Stream): reads and writes carry internal/frame frames; Close
// detaches.
type Stream interface {
	io.ReadWriteCloser
	// CloseWrite says no more frames come (the process's stdin stays
	// open: that is a CloseStdin frame).
	CloseWrite() error
	// Terminal tells whether the process has a terminal.
	Terminal() bool
}

// Shim is one connected shim (*client.Client).
type Shim interface {
	Connect(ctx context.Context) (client.Info, error)
	Create(ctx context.Context, o client.CreateOptions) (pid int, err error)
	Start(ctx context.Context) (pid int, err error)
	State(ctx context.Context) (client.State, error)
	Kill(ctx context.Context, sig syscall.Signal, all bool) error
	Wait(ctx context.Context) (client.Exit, error)
	Delete(ctx context.Context) (client.Exit, error)
	Stats(ctx context.Context) (client.Stats, error)
	Exec(ctx context.Context, o client.ExecOptions) (pid int, err error)
	ExecState(ctx context.Context, id string) (client.ExecProcess, error)
	ListExecs(ctx context.Context) ([]client.ExecProcess, error)
	Resize(ctx context.Context, exec string, rows, cols uint16) error
	Shutdown(ctx context.Context, now bool) error
	Close() error
}

var (
	_ Rootfs = (*rootfs.Manager)(nil)
	_ Shim   = (*client.Client)(nil)
	_ Stream = (*client.Stream)(nil)
)

// StoreImages adapts the image store to Images.
func StoreImages(s *imagestore.Store) Images { return storeImages{s} }

type storeImages struct{ s *imagestore.Store }

func (i storeImages) Image(ctx context.Context, ref string, pull bool) (Image, error) {
	img, err := i.s.Inspect(ctx, ref)
	if errors.Is(err, errdefs.ErrNotFound) && pull {
		img, err = i.s.Pull(ctx, ref, imagestore.PullOptions{})
	}
	if err != nil {
		return Image{}, err
	}
	cfg, err := i.s.Config(ctx, img)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: its configuration: %w", ref, err)
	}
	return Image{Name: img.Name, ID: img.ID, Digest: img.Digest, Config: cfg.Config, Layers: i.s.LayerDirs(img)}, nil
}

// ShimManager runs condenser-shim for the containers of one runtime.
type ShimManager struct {
	Binary      string // condenser-shim
	Runtime     string // runc, crun, droplet or a path
	RuntimeRoot string // the runtime's state directory
}

var _ Shims = (*ShimManager)(nil)

func (m *ShimManager) opts(id, bundle string) client.Options {
	return client.Options{Binary: m.Binary, ID: id, Bundle: bundle, Runtime: m.Runtime, RuntimeRoot: m.RuntimeRoot}
}

func (m *ShimManager) Address(id, bundle string) string { return "unix://" + client.Socket(bundle) }

func (m *ShimManager) Launch(ctx context.Context, id, bundle string) (string, error) {
	return client.Launch(ctx, m.opts(id, bundle))
}

func (m *ShimManager) Dial(ctx context.Context, address string) (Shim, error) {
	c, err := client.Dial(ctx, address)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (m *ShimManager) Cleanup(ctx context.Context, id, bundle string) (*client.Exit, error) {
	return client.Cleanup(ctx, m.opts(id, bundle))
}

func (m *ShimManager) Attach(ctx context.Context, bundle string, req api.AttachRequest) (Stream, error) {
	st, err := client.Attach(ctx, bundle, req)
	if err != nil {
		return nil, err
	}
	return st, nil
}
