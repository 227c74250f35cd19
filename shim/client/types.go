package client

import (
	"time"

	"github.com/raind/condenser/rootfs"
)

// The domain types of the shim API as the daemon sees them: no protobuf.

// Status is the state of the container a shim serves.
type Status string

const (
	StatusUnknown Status = "unknown" // no container created yet
	StatusCreated Status = "created"
	StatusRunning Status = "running"
	StatusStopped Status = "stopped"
)

// Exit is a container's exit status.
type Exit struct {
	Pid       int
	ExitCode  int // 128+n for signal n
	ExitedAt  time.Time
	OOMKilled bool
}

// State is what a shim tells of its container.
type State struct {
	Status Status
	Pid    int
	Exit   Exit // set when Status is StatusStopped
}

// Info identifies a shim.
type Info struct {
	ShimPid int
	TaskPid int
	Version string
}

// CreateOptions describe the container a shim creates.
type CreateOptions struct {
	Rootfs      []rootfs.Mount // mounted by the shim (runc, crun) or passed to the runtime (Droplet)
	LogPath     string         // the json-file log
	LogMaxSize  int64          // bytes per file; 0: the default
	LogMaxFiles int            // 0: the default
	// Terminal: the init gets a pseudo-terminal held by the shim (the
	// bundle's config.json must say process.terminal too).
	Terminal bool
	// Stdin: without a terminal, the init's stdin is a pipe the shim
	// holds, written by attached clients (else /dev/null).
	Stdin bool
}

// ExecOptions describe a process to start in a running container.
type ExecOptions struct {
	ID string // [0-9a-f]{64}, unique in the container
	// Process is the OCI runtime-spec Process to run, as JSON.
	Process  []byte
	Terminal bool // a pseudo-terminal (Process says terminal too)
	Stdin    bool // without a terminal: a stdin pipe written by attached clients
	// Detach: nobody is expected to attach: without a terminal the
	// process's streams are /dev/null; with one it keeps its terminal, its
	// output not held. Otherwise the output is held (64 KiB, then the
	// process waits) until a client attaches.
	Detach bool
}

// ExecProcess is what a shim tells of an exec process.
type ExecProcess struct {
	ID       string
	Pid      int
	Terminal bool
	Status   Status // StatusRunning or StatusStopped
	ExitCode int    // set when Status is StatusStopped
	ExitedAt time.Time
}

// Stats are a container's cgroup statistics.
type Stats struct {
	CPUUsageNanos   uint64
	MemoryUsage     uint64
	MemoryCache     uint64
	MemoryLimit     uint64
	MemoryMaxUsage  uint64
	PidsCurrent     uint64
	PidsLimit       uint64
	BlkioReadBytes  uint64
	BlkioWriteBytes uint64
	OOMKills        uint64
}

// Options say which container a shim serves and how it runs it: what
// Launch passes to `condenser-shim start` and Cleanup to
// `condenser-shim delete`.
type Options struct {
	Binary      string // condenser-shim
	ID          string
	Bundle      string // the bundle directory
	Runtime     string // runtime binary (runc, crun, droplet) or path
	RuntimeRoot string // the runtime's state directory (--root; Droplet's RAIND_ROOT_DIR)
}
