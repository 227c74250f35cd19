// Package api holds the wire types of the Raind v1 contract
// (../shared/api/raind-v1.md): the request bodies, the envelope, and the data
// of every response and stream line. The server (rest/) and every client
// (cmd/condenserctl, tests, scripts in Go) import this package and nothing else of
// the server's.
//
// JSON keys are the contract's, spelled as the Raind CLI reads them (statedAt
// included); they must not change. Times are RFC 3339; a zero time.Time means
// "not yet" and is sent as the zero time, which is what the Raind CLI decodes
// into its time.Time fields.
package api

import "time"

// Version is the version of the contract, the prefix of every route
// (/v1/…) and the apiVersion of GET /v1/version.
const Version = "v1"

// Envelope wraps every JSON response (not the streams, not the plain-text
// logs, not _ping).
type Envelope struct {
	Status  string `json:"status"` // StatusSuccess or StatusFail
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// The two values of Envelope.Status.
const (
	StatusSuccess = "success"
	StatusFail    = "fail"
)

// CreateContainerRequest is the body of POST /v1/containers.
type CreateContainerRequest struct {
	Image   string   `json:"image"`
	Command []string `json:"command,omitempty"` // empty: the image's Cmd
	Env     []string `json:"env,omitempty"`     // KEY=VALUE
	Mount   []string `json:"mount,omitempty"`   // /host:/ctr[:ro]
	// Port publishes container ports on the host: the Raind CLI's
	// HOST:CONTAINER[:tcp|udp] or Docker's [IP:]HOST:CONTAINER[/tcp|udp]
	// (the backend checks them: a malformed one is 400, a host port taken
	// 409).
	Port []string `json:"port,omitempty"`
	// Network is a network's name: "raind0" (the default bridge), "host",
	// "none" or a user-defined network (GET /v1/networks); "" is the
	// daemon's default.
	Network string `json:"network,omitempty"`
	// Tty gives the container's process a pseudo-terminal, held by its
	// shim: its output goes to the log and to attached clients.
	Tty  bool   `json:"tty,omitempty"`
	Name string `json:"name,omitempty"` // empty: the backend picks one

	// Extensions.

	// Entrypoint replaces the image's entrypoint: nil (absent or null)
	// keeps the image's, an empty list clears it.
	Entrypoint    []string          `json:"entrypoint"`
	Workdir       string            `json:"workdir,omitempty"`
	User          string            `json:"user,omitempty"`
	Hostname      string            `json:"hostname,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	RestartPolicy string            `json:"restartPolicy,omitempty"` // no, on-failure[:N], always, unless-stopped
	Resources     *Resources        `json:"resources,omitempty"`     // nil: no limits
	ReadOnly      bool              `json:"readOnly,omitempty"`
	AutoRemove    bool              `json:"autoRemove,omitempty"`
	// OpenStdin (Docker's -i): without a terminal, the process's stdin is
	// a pipe that attached clients write to (else /dev/null); with one,
	// attached clients always type into it.
	OpenStdin bool `json:"openStdin,omitempty"`
}

// Resources are a container's limits; a zero field means "no limit".
type Resources struct {
	Memory int64   `json:"memory,omitempty"` // bytes
	CPUs   float64 `json:"cpus,omitempty"`   // 1.5 = one and a half CPUs
	Pids   int64   `json:"pids,omitempty"`   // maximum number of tasks
}

// StartContainerRequest is the optional body of POST …/actions/start. The
// Raind CLI always sends Tty (true with -t); it is accepted and has no
// effect: the terminal is chosen at create.
type StartContainerRequest struct {
	Tty bool `json:"tty"`
}

// ExecRequest is the body of POST /v1/containers/{id}/actions/exec (the
// Raind contract: Command and Tty) and of POST /v1/containers/{id}/execs
// (Condenser's: all of it).
type ExecRequest struct {
	Command []string `json:"command"`
	Tty     bool     `json:"tty"`

	// Extensions.

	// Stdin: without a terminal, the process's stdin is a pipe written by
	// attached clients (else /dev/null).
	Stdin bool `json:"stdin,omitempty"`
	// Env entries KEY=VALUE, over the container's.
	Env []string `json:"env,omitempty"`
	// User as at create ("" the container's), Workdir absolute ("" the
	// container's).
	User    string `json:"user,omitempty"`
	Workdir string `json:"workdir,omitempty"`
	// ConsoleSize is the terminal's size when the process starts, [rows,
	// cols] (Docker's ConsoleSize, [height, width]); ignored without Tty.
	ConsoleSize *[2]uint16 `json:"consoleSize,omitempty"`
	// Detach: the process has no standard streams (its output is
	// discarded) and nobody attaches to it. Default: false on
	// POST …/execs (the output is held until a client attaches to
	// GET …/execs/{exec}/stdio); on POST …/actions/exec, !Tty (the Raind
	// CLI attaches only with a terminal).
	Detach *bool `json:"detach,omitempty"`
}

// ExecInfo is an exec process: an element of GET …/execs, the data of
// GET …/execs/{exec}.
type ExecInfo struct {
	ID          string `json:"id"`
	ContainerID string `json:"containerId"`
	Pid         int    `json:"pid"`
	Tty         bool   `json:"tty"`
	Running     bool   `json:"running"`
	// ExitCode is nil (null) while it runs.
	ExitCode *int      `json:"exitCode"`
	ExitedAt time.Time `json:"exitedAt"`
}

// RemoveImageRequest is the body of DELETE /v1/images.
type RemoveImageRequest struct {
	Image string `json:"image"`
}

// PullImageRequest is the body of POST /v1/images; OS and Arch default to
// the host's.
type PullImageRequest struct {
	Image string `json:"image"`
	OS    string `json:"os,omitempty"`
	Arch  string `json:"arch,omitempty"`
}

// IDResponse is the data of create, start, stop, kill, restart and delete.
type IDResponse struct {
	ID string `json:"id"`
}

// WaitResponse is the data of POST …/actions/wait.
type WaitResponse struct {
	ExitCode int `json:"exitCode"`
}

// ImageResponse is the data of DELETE /v1/images.
type ImageResponse struct {
	Image string `json:"image"`
}

// ImagesFSResponse is the data of GET /v1/images/fs.
type ImagesFSResponse struct {
	UsedBytes int64 `json:"usedBytes"`
}

// Forward is one published port of a container.
type Forward struct {
	Source      int    `json:"source"`      // host port
	Destination int    `json:"destination"` // container port
	Protocol    string `json:"protocol"`    // tcp or udp
	// HostIP (extension) is the host address the port is published on;
	// absent when it is published on all of them, as it usually is.
	HostIP string `json:"hostIp,omitempty"`
}

// ContainerSummary is one element of GET /v1/containers.
type ContainerSummary struct {
	ContainerID     string    `json:"containerId"` // 64 hex
	Name            string    `json:"name"`
	State           string    `json:"state"` // creating, created, running, stopped, removing
	Pid             int       `json:"pid"`   // 0 unless running
	ImageRepository string    `json:"imageRepository"`
	ImageReference  string    `json:"imageReference"` // tag or digest
	Command         []string  `json:"command"`
	Address         string    `json:"address"`
	Forwards        []Forward `json:"forwards"`
	CreatingAt      time.Time `json:"creatingAt"`
	CreatedAt       time.Time `json:"createdAt"`
	StartedAt       time.Time `json:"statedAt"` // sic: the Raind CLI's key
	StoppedAt       time.Time `json:"stoppedAt"`
}

// ContainerDetail is the data of GET /v1/containers/{id}: the summary's keys
// and more.
type ContainerDetail struct {
	ContainerSummary
	// ExitCode is the last run's exit status (128+n for signal n); nil
	// (absent) until the container first exits; ExitUnknown when it
	// stopped but its status is lost (its shim died), which Error explains.
	ExitCode *int `json:"exitCode,omitempty"`
	// Error says why a stopped container's exit status is unknown, as
	// Docker's State.Error; empty otherwise.
	Error        string          `json:"error,omitempty"`
	OOMKilled    bool            `json:"oomKilled"`
	RestartCount int             `json:"restartCount"`
	ShimPid      int             `json:"shimPid"`
	Bundle       string          `json:"bundle"`
	Rootfs       string          `json:"rootfs"`
	Config       ContainerConfig `json:"config"`
	ImageDigest  string          `json:"imageDigest"`
	// NetworkSettings (extension) is the container's place on its
	// network while it has one (created or running on a bridge network);
	// absent otherwise.
	NetworkSettings *NetworkSettings `json:"networkSettings,omitempty"`
}

// NetworkSettings is a container's attachment to a network, in
// GET /v1/containers/{id}.
type NetworkSettings struct {
	Network   string        `json:"network"`
	Address   string        `json:"address"`   // the container's IPv4 address
	PrefixLen int           `json:"prefixLen"` // of the network's subnet
	Gateway   string        `json:"gateway"`
	MAC       string        `json:"mac"`
	Ports     []PortBinding `json:"ports"` // [] when none is published
}

// PortBinding is one published port of a container.
type PortBinding struct {
	HostIP        string `json:"hostIp"` // 0.0.0.0 (or ::): all the host's addresses
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"` // tcp or udp
}

// NetworkSummary is a network: an element of GET /v1/networks, the data of
// GET /v1/networks/{name} and of POST /v1/networks.
type NetworkSummary struct {
	Name    string `json:"name"`
	Driver  string `json:"driver"` // bridge, host, null (none) or cni
	Bridge  string `json:"bridge"` // the Linux bridge; "" for host and none
	Subnet  string `json:"subnet"` // CIDR; "" for host and none
	Gateway string `json:"gateway"`
	// BuiltIn networks (raind0, host, none) cannot be removed.
	BuiltIn    bool     `json:"builtIn"`
	Containers []string `json:"containers"` // ids of the containers on it
}

// CreateNetworkRequest is the body of POST /v1/networks: a user-defined
// bridge network.
type CreateNetworkRequest struct {
	Name    string `json:"name"`
	Subnet  string `json:"subnet,omitempty"`  // CIDR; "" picks a free /24
	Gateway string `json:"gateway,omitempty"` // "" the subnet's first address
}

// NetworkResponse is the data of DELETE /v1/networks/{name}.
type NetworkResponse struct {
	Name string `json:"name"`
}

// ExitUnknown is the exit code of a container that stopped without its
// status being known: its shim was killed or crashed (and with it the
// status), or the host rebooted. Docker shows 255 in such cases; -1 cannot
// be mistaken for a process's own exit status. POST …/actions/wait answers
// it too.
const ExitUnknown = -1

// ContainerConfig is a container's effective configuration: the request
// merged with the image's config.
type ContainerConfig struct {
	Args      []string   `json:"args"` // the command line run
	Env       []string   `json:"env"`
	Workdir   string     `json:"workdir"`
	User      string     `json:"user"`
	Mounts    []Mount    `json:"mounts"`
	Resources *Resources `json:"resources"` // null: no limits

	// Extensions: the rest of the create request, as stored.
	Hostname      string            `json:"hostname,omitempty"`
	Network       string            `json:"network,omitempty"`
	Ports         []string          `json:"ports,omitempty"` // the create request's port entries
	Tty           bool              `json:"tty,omitempty"`
	OpenStdin     bool              `json:"openStdin,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	RestartPolicy string            `json:"restartPolicy,omitempty"`
	ReadOnly      bool              `json:"readOnly,omitempty"`
	AutoRemove    bool              `json:"autoRemove,omitempty"`
}

// Mount is one bind mount of a container.
type Mount struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// ContainerStats is one sample of a container's cgroup counters: the data of
// GET /v1/containers/{id}/stats and an element of GET /v1/containers/stats.
type ContainerStats struct {
	ContainerID string      `json:"containerId"`
	Name        string      `json:"name"`
	Time        time.Time   `json:"time"` // when the sample was taken
	CPU         CPUStats    `json:"cpu"`
	Memory      MemoryStats `json:"memory"`
	Pids        PidsStats   `json:"pids"`
	IO          IOStats     `json:"io"`
}

// CPUStats is cumulative CPU time.
type CPUStats struct {
	UsageNanos uint64 `json:"usageNanos"`
}

// MemoryStats is memory use in bytes. Limit 0 means unlimited.
type MemoryStats struct {
	Usage    uint64 `json:"usage"` // page cache included
	Limit    uint64 `json:"limit"`
	Cache    uint64 `json:"cache"`
	MaxUsage uint64 `json:"maxUsage"`
	OOMKills uint64 `json:"oomKills"`
}

// PidsStats counts tasks. Limit 0 means unlimited.
type PidsStats struct {
	Current uint64 `json:"current"`
	Limit   uint64 `json:"limit"`
}

// IOStats is block I/O summed over all devices.
type IOStats struct {
	ReadBytes  uint64 `json:"readBytes"`
	WriteBytes uint64 `json:"writeBytes"`
}

// LogEntry is one entry of a container's log (a docker json-file line).
type LogEntry struct {
	Log    string    `json:"log"`    // as written, normally ending in "\n"
	Stream string    `json:"stream"` // stdout or stderr
	Time   time.Time `json:"time"`
}

// PullProgress is one line of the NDJSON progress stream of a pull or an
// import.
type PullProgress struct {
	Layer   string `json:"layer"`  // sha256:…
	Status  string `json:"status"` // downloading, extracting, exists, done
	Current int64  `json:"current"`
	Total   int64  `json:"total"`
}

// PullResult is the data of POST /v1/images.
type PullResult struct {
	Image string `json:"image"` // the reference pulled, normalized
	OS    string `json:"os"`
	Arch  string `json:"arch"`
	// Extensions.
	ID     string `json:"id,omitempty"`     // config digest
	Digest string `json:"digest,omitempty"` // manifest (or index) digest
}

// ImageSummary is one element of GET /v1/images and of an import's data.
type ImageSummary struct {
	Repository string    `json:"repository"` // docker.io/library/alpine
	Reference  string    `json:"reference"`  // tag or digest
	CreatedAt  time.Time `json:"createdAt"`
	// Extensions.
	ID     string `json:"id"`     // sha256:… of the config
	Digest string `json:"digest"` // sha256:… of the manifest
	Size   int64  `json:"size"`   // bytes on disk
}

// ImageStatus is the data of GET /v1/images/status.
type ImageStatus struct {
	Repository  string    `json:"repository"`
	Reference   string    `json:"reference"`
	ID          string    `json:"id"`
	RepoTags    []string  `json:"repoTags"`
	RepoDigests []string  `json:"repoDigests"`
	SizeBytes   int64     `json:"sizeBytes"`
	CreatedAt   time.Time `json:"createdAt"`
	User        string    `json:"user"`
}

// VersionInfo is the data of GET /v1/version. The handler fills APIVersion,
// and GoVersion, OS and Arch when the backend leaves them empty.
type VersionInfo struct {
	Version    string `json:"version"`
	APIVersion string `json:"apiVersion"`
	GitCommit  string `json:"gitCommit,omitempty"`
	GoVersion  string `json:"goVersion"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

// SystemInfo is the data of GET /v1/info.
type SystemInfo struct {
	Runtime           string `json:"runtime"` // the OCI runtime binary in use
	RuntimeVersion    string `json:"runtimeVersion,omitempty"`
	CgroupMode        string `json:"cgroupMode"`    // v1, v2 or hybrid
	StorageDriver     string `json:"storageDriver"` // overlay or copy
	Root              string `json:"root"`
	State             string `json:"state"`
	Containers        int    `json:"containers"`
	ContainersRunning int    `json:"containersRunning"`
	ContainersStopped int    `json:"containersStopped"`
	Images            int    `json:"images"`
	KernelVersion     string `json:"kernelVersion,omitempty"`
	OS                string `json:"os"`
	Arch              string `json:"arch"`
	NCPU              int    `json:"ncpu"`
	MemTotal          int64  `json:"memTotal"`
}

// Event is one line of GET /v1/events.
type Event struct {
	Type       string            `json:"type"`   // container or image
	Action     string            `json:"action"` // create, start, die, stop, restart, destroy, pull, import, delete, …
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"` // e.g. exitCode, image, signal
	Time       time.Time         `json:"time"`
}
