// Package bench measures Condenser, side by side with bare runc and with
// the peers (Podman, containerd), on the workloads of docs/benchmarks.md.
// `make bench` and `make bench-peers` run it (BenchmarkTable) and print one
// table.
package bench

import (
	"context"
	"errors"
	"time"
)

// ErrNotApplicable is returned by an Engine for a workload it has no
// equivalent of (Podman has no daemon to restart).
var ErrNotApplicable = errors.New("not applicable")

// Images are the references an Engine works with, all in the local
// plain-HTTP registry at Registry (host:port).
type Images struct {
	Registry string
	Small    string // full reference of a busybox image: `true`, `sleep`
	Large    string // full reference of the ≥100 MB multi-layer image
}

// Engine is a container engine under measurement. Every method blocks
// until the engine has done the work; containers run the Small image.
type Engine interface {
	Name() string
	// Setup starts the engine with all of its state under dir.
	Setup(ctx context.Context, dir string, img Images) error
	// Close removes every container and image and stops the engine;
	// nothing it made may outlive it (processes, mounts, cgroups, files).
	Close(ctx context.Context) error

	// Pull pulls and unpacks ref; RemoveImage removes it and its layers so
	// that the next Pull is cold.
	Pull(ctx context.Context, ref string) error
	RemoveImage(ctx context.Context, ref string) error

	// RunTrue creates, starts and waits for a container running `true`,
	// the way a user of the engine would, and removes it afterwards. It
	// returns the time from the create request until the exit is known
	// (removal not included).
	RunTrue(ctx context.Context) (time.Duration, error)
	// StartDetached creates and starts a container named name running
	// `sleep 3600` and returns once it is running.
	StartDetached(ctx context.Context, name string) error
	// RemoveAll removes every container, stopping it first.
	RemoveAll(ctx context.Context) error
	// Monitors lists the per-container monitor processes (shims, conmon).
	Monitors(ctx context.Context) ([]int, error)
	// DaemonPID is the engine's daemon, 0 when it has none.
	DaemonPID() int
	// Restart kills the daemon with SIGKILL and starts it again; it returns
	// the time until its API answers and until every running container
	// is reported running again.
	Restart(ctx context.Context, running int) (answer, reconnected time.Duration, err error)
	// List lists the containers once, as a client of the engine's API would.
	List(ctx context.Context) error
}

// NetworkRunner is an Engine that can run a container on a bridge network
// of its own (row 8): an address on a bridge, outbound NAT.
type NetworkRunner interface {
	// RunTrueNetworked is RunTrue with the container on that network. It
	// returns ErrNotApplicable when the engine was set up without one.
	RunTrueNetworked(ctx context.Context) (time.Duration, error)
}
