package docker

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/raind/condenser/imagestore"
	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/internal/names"
	"github.com/raind/condenser/supervisor"
	"github.com/raind/condenser/supervisor/oci"
)

// imageLookup is how create tells a missing image (Docker's 404, on which
// the CLI pulls, with progress, and retries) before the supervisor would
// pull it silently: the image store (*imagestore.Store) in Deps.Images.
type imageLookup interface {
	Inspect(ctx context.Context, ref string) (imagestore.Image, error)
}

func (s *server) createContainer(w http.ResponseWriter, r *http.Request) error {
	if s.Containers == nil {
		return errNoContainers
	}
	var body container.CreateRequest
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Config == nil {
		return invalid("config cannot be empty in order to create a container")
	}
	if err := checkPlatform(r.URL.Query().Get("platform")); err != nil {
		return err
	}
	name := strings.TrimPrefix(r.URL.Query().Get("name"), "/")
	if name != "" {
		if err := names.ValidName(name); err != nil {
			return invalid("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
		}
	}
	req, err := createRequest(body)
	if err != nil {
		return err
	}
	req.Name = name
	if il, ok := s.Images.(imageLookup); ok {
		if _, err := il.Inspect(r.Context(), req.Image); errdefs.Kind(err) == errdefs.ErrNotFound {
			return &httpError{status: http.StatusNotFound, msg: "No such image: " + familiarWithTag(req.Image), err: err}
		} else if err != nil && errdefs.Kind(err) != errdefs.ErrInvalidArgument {
			return err
		}
	}
	if err := s.volumeMounts(r.Context(), body, &req); err != nil {
		return err
	}
	c, err := s.Containers.Create(r.Context(), req)
	if err != nil {
		if errdefs.Kind(err) == errdefs.ErrConflict && name != "" {
			return s.nameConflict(r.Context(), name, err)
		}
		if errdefs.Kind(err) == errdefs.ErrNotFound && strings.Contains(err.Error(), "network") {
			return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("network %s not found", req.Network), err: err}
		}
		return err
	}
	return writeJSON(w, http.StatusCreated, container.CreateResponse{ID: c.ID, Warnings: []string{}})
}

// familiarWithTag writes an image reference as Docker's messages do:
// "busybox" is "busybox:latest".
func familiarWithTag(ref string) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	if i := strings.LastIndexByte(ref, '/'); !strings.Contains(ref[i+1:], ":") {
		return ref + ":latest"
	}
	return ref
}

// checkPlatform accepts the daemon's own platform only: the image store
// keeps one platform per name, the host's.
func checkPlatform(p string) error {
	if p == "" {
		return nil
	}
	parts := strings.Split(p, "/")
	if parts[0] != runtime.GOOS || (len(parts) > 1 && parts[1] != runtime.GOARCH) {
		return fmt.Errorf("platform %q: this daemon runs %s/%s containers only: %w", p, runtime.GOOS, runtime.GOARCH, errdefs.ErrNotImplemented)
	}
	return nil
}

// createRequest maps a Docker create request onto the supervisor's. What
// it cannot honour, when set, is refused (501) rather than ignored;
// the defaults the CLI always sends pass. Volumes (named and anonymous)
// are added by volumeMounts.
func createRequest(b container.CreateRequest) (supervisor.CreateRequest, error) {
	cfg := b.Config
	hc := b.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	if err := unsupported(cfg, hc, b.NetworkingConfig); err != nil {
		return supervisor.CreateRequest{}, err
	}
	req := supervisor.CreateRequest{
		Image:      cfg.Image,
		AutoRemove: hc.AutoRemove,
		OpenStdin:  cfg.OpenStdin,
		Config: oci.Config{
			Entrypoint: cfg.Entrypoint, Command: cfg.Cmd, Env: cfg.Env, WorkingDir: cfg.WorkingDir, User: cfg.User,
			Hostname: cfg.Hostname, Labels: cfg.Labels, ReadOnly: hc.ReadonlyRootfs, Tty: cfg.Tty,
			Memory: hc.Memory, MemoryReservation: hc.MemoryReservation, MemorySwap: hc.MemorySwap,
		},
	}
	if strings.TrimSpace(req.Image) == "" {
		return req, invalid("no image given: Config.Image is required")
	}
	if hc.CPUShares < 0 {
		return req, invalid("invalid CPU shares %d", hc.CPUShares)
	}
	req.CPUShares = uint64(hc.CPUShares)
	switch {
	case hc.NanoCPUs != 0 && (hc.CPUQuota != 0 || hc.CPUPeriod != 0):
		return req, invalid("conflicting options: Nano CPUs and CPU Period/Quota cannot both be set")
	case hc.NanoCPUs < 0 || hc.CPUQuota < 0 || hc.CPUPeriod < 0:
		return req, invalid("CPU limits cannot be negative")
	case hc.NanoCPUs > 0:
		req.CPUs = float64(hc.NanoCPUs) / 1e9
	case hc.CPUQuota > 0:
		period := hc.CPUPeriod
		if period == 0 {
			period = 100000
		}
		req.CPUs = float64(hc.CPUQuota) / float64(period)
	case hc.CPUPeriod > 0:
		return req, fmt.Errorf("a CPU period without a quota: %w", errdefs.ErrNotImplemented)
	}
	if hc.PidsLimit != nil && *hc.PidsLimit > 0 {
		req.PidsLimit = *hc.PidsLimit
	}
	switch p := hc.RestartPolicy; p.Name {
	case "", container.RestartPolicyDisabled:
	case container.RestartPolicyOnFailure:
		req.RestartPolicy = "on-failure"
		if p.MaximumRetryCount > 0 {
			req.RestartPolicy += ":" + strconv.Itoa(p.MaximumRetryCount)
		}
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		req.RestartPolicy = string(p.Name)
	default:
		return req, invalid("invalid restart policy %q", p.Name)
	}
	if hc.AutoRemove && req.RestartPolicy != "" {
		return req, invalid("conflicting options: cannot specify both --restart and --rm")
	}
	var err error
	if req.Network, err = networkMode(string(hc.NetworkMode)); err != nil {
		return req, err
	}
	if req.Ports, err = portSpecs(hc.PortBindings); err != nil {
		return req, err
	}
	return req, nil
}

// networkMode maps a NetworkMode onto the supervisor's network: Docker's
// default bridge is raind0.
func networkMode(m string) (string, error) {
	switch {
	case m == "" || m == "default" || m == "bridge" || m == "raind0":
		return "", nil
	case m == "host" || m == "none":
		return m, nil
	case strings.HasPrefix(m, "container:"):
		return "", fmt.Errorf("network mode %q: sharing another container's network is not supported: %w", m, errdefs.ErrNotImplemented)
	}
	return m, nil
}

// portSpecs writes PortBindings as Docker's [IP:]HOST:CONTAINER/PROTO,
// sorted.
func portSpecs(pm network.PortMap) ([]string, error) {
	var out []string
	for p, bindings := range pm {
		if !p.IsValid() {
			return nil, invalid("invalid port %q", p.String())
		}
		proto := string(p.Proto())
		for _, b := range bindings {
			host := b.HostPort
			if host == "" {
				return nil, fmt.Errorf("port %s: random host ports are not supported: publish it as HOST:%d: %w", p, p.Num(), errdefs.ErrNotImplemented)
			}
			if strings.Contains(host, "-") {
				return nil, fmt.Errorf("port %s: host port ranges (%s) are not supported: %w", p, host, errdefs.ErrNotImplemented)
			}
			spec := host + ":" + strconv.Itoa(int(p.Num())) + "/" + proto
			if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
				spec = b.HostIP.String() + ":" + spec
			}
			out = append(out, spec)
		}
	}
	slices.Sort(out)
	return out, nil
}

// unsupported refuses the options the supervisor cannot honour when they
// are set to anything but the defaults the CLI sends.
func unsupported(cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig) error {
	var opts []string
	set := func(on bool, name string) {
		if on {
			opts = append(opts, name)
		}
	}
	set(cfg.Domainname != "", "Domainname (--domainname)")
	set(cfg.Healthcheck != nil && len(cfg.Healthcheck.Test) > 0 && cfg.Healthcheck.Test[0] != "NONE", "Healthcheck (--health-cmd)")
	set(cfg.StopSignal != "" && !isTerm(cfg.StopSignal), "StopSignal other than SIGTERM (--stop-signal)")
	set(cfg.StopTimeout != nil, "StopTimeout (--stop-timeout)")
	set(cfg.NetworkDisabled, "NetworkDisabled")
	set(len(cfg.Shell) > 0, "Shell")
	set(hc.Privileged, "Privileged (--privileged)")
	set(len(hc.CapAdd) > 0, "CapAdd (--cap-add)")
	set(len(hc.CapDrop) > 0, "CapDrop (--cap-drop)")
	set(len(hc.Devices) > 0, "Devices (--device)")
	set(len(hc.DeviceRequests) > 0, "DeviceRequests (--gpus)")
	set(len(hc.DeviceCgroupRules) > 0, "DeviceCgroupRules (--device-cgroup-rule)")
	set(hc.ShmSize != 0, "ShmSize (--shm-size)")
	set(len(hc.SecurityOpt) > 0, "SecurityOpt (--security-opt)")
	set(len(hc.Sysctls) > 0, "Sysctls (--sysctl)")
	set(len(hc.Tmpfs) > 0, "Tmpfs (--tmpfs)")
	set(len(hc.ExtraHosts) > 0, "ExtraHosts (--add-host)")
	set(len(hc.DNS) > 0, "Dns (--dns)")
	set(len(hc.DNSOptions) > 0, "DnsOptions (--dns-option)")
	set(len(hc.DNSSearch) > 0, "DnsSearch (--dns-search)")
	set(len(hc.GroupAdd) > 0, "GroupAdd (--group-add)")
	set(len(hc.Links) > 0, "Links (--link)")
	set(len(hc.VolumesFrom) > 0, "VolumesFrom (--volumes-from)")
	set(hc.VolumeDriver != "" && hc.VolumeDriver != "local", "VolumeDriver (--volume-driver)")
	set(hc.IpcMode != "" && hc.IpcMode != "private" && hc.IpcMode != "shareable", "IpcMode (--ipc)")
	set(hc.PidMode != "", "PidMode (--pid)")
	set(hc.UTSMode != "", "UTSMode (--uts)")
	set(hc.UsernsMode != "", "UsernsMode (--userns)")
	set(hc.CgroupnsMode != "" && hc.CgroupnsMode != "private", "CgroupnsMode (--cgroupns)")
	set(hc.Cgroup != "", "Cgroup")
	set(hc.CgroupParent != "", "CgroupParent (--cgroup-parent)")
	set(hc.OomScoreAdj != 0, "OomScoreAdj (--oom-score-adj)")
	set(hc.OomKillDisable != nil && *hc.OomKillDisable, "OomKillDisable (--oom-kill-disable)")
	set(hc.MemorySwappiness != nil && *hc.MemorySwappiness != -1, "MemorySwappiness (--memory-swappiness)")
	set(hc.PublishAllPorts, "PublishAllPorts (-P)")
	set(hc.Runtime != "" && hc.Runtime != "runc", "Runtime (--runtime)")
	set(hc.Init != nil && *hc.Init, "Init (--init)")
	set(hc.Isolation != "" && hc.Isolation != "default", "Isolation (--isolation)")
	set(len(hc.StorageOpt) > 0, "StorageOpt (--storage-opt)")
	set(len(hc.Ulimits) > 0, "Ulimits (--ulimit)")
	set(hc.CpusetCpus != "", "CpusetCpus (--cpuset-cpus)")
	set(hc.CpusetMems != "", "CpusetMems (--cpuset-mems)")
	set(hc.CPURealtimePeriod != 0 || hc.CPURealtimeRuntime != 0, "CpuRealtimePeriod/Runtime")
	set(hc.BlkioWeight != 0 || len(hc.BlkioWeightDevice) > 0 || len(hc.BlkioDeviceReadBps) > 0 || len(hc.BlkioDeviceWriteBps) > 0 ||
		len(hc.BlkioDeviceReadIOps) > 0 || len(hc.BlkioDeviceWriteIOps) > 0, "Blkio limits (--blkio-weight, --device-read-bps, …)")
	set(hc.CPUCount != 0 || hc.CPUPercent != 0 || hc.IOMaximumIOps != 0 || hc.IOMaximumBandwidth != 0, "Windows resource limits")
	set(hc.MaskedPaths != nil || hc.ReadonlyPaths != nil, "MaskedPaths/ReadonlyPaths")
	set(hc.Umask != nil, "Umask")
	set(len(hc.Annotations) > 0, "Annotations (--annotation)")
	set(hc.ContainerIDFile != "", "ContainerIDFile")
	set(hc.LogConfig.Type != "" && hc.LogConfig.Type != "json-file", "LogConfig "+hc.LogConfig.Type+" (--log-driver: json-file only)")
	set(len(hc.LogConfig.Config) > 0, "LogConfig options (--log-opt)")
	if nc != nil {
		for name, ep := range nc.EndpointsConfig {
			if ep == nil {
				continue
			}
			set(ep.IPAMConfig != nil && (ep.IPAMConfig.IPv4Address.IsValid() || ep.IPAMConfig.IPv6Address.IsValid() || len(ep.IPAMConfig.LinkLocalIPs) > 0), "a fixed address on network "+name+" (--ip)")
			set(len(ep.Aliases) > 0, "network aliases on "+name+" (--network-alias)")
			set(len(ep.Links) > 0, "links on "+name)
			set(len(ep.MacAddress) > 0, "MacAddress (--mac-address)")
			set(len(ep.DriverOpts) > 0, "driver options on "+name)
		}
		if len(nc.EndpointsConfig) > 1 {
			opts = append(opts, "more than one network at create")
		}
	}
	if len(opts) > 0 {
		return fmt.Errorf("not supported by Condenser: %s: %w", strings.Join(opts, ", "), errdefs.ErrNotImplemented)
	}
	return nil
}

func isTerm(s string) bool {
	sig, err := parseSignal(s)
	return err == nil && sig == syscall.SIGTERM
}

// volumeMounts adds the request's Binds, Mounts and anonymous volumes
// (Config.Volumes) to req's bind mounts: host paths as they are, named
// volumes by their directory (created on first use, as docker run -v
// does), anonymous ones as new volumes with a random name.
func (s *server) volumeMounts(ctx context.Context, b container.CreateRequest, req *supervisor.CreateRequest) error {
	hc := b.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	targets := map[string]bool{}
	add := func(src, dst string, ro bool) error {
		if !filepath.IsAbs(dst) {
			return invalid("invalid mount: the destination %q is not an absolute path", dst)
		}
		dst = filepath.Clean(dst)
		if targets[dst] {
			return invalid("duplicate mount point: %s", dst)
		}
		targets[dst] = true
		m := src + ":" + dst
		if ro {
			m += ":ro"
		}
		req.Mounts = append(req.Mounts, m)
		return nil
	}
	for _, bind := range hc.Binds {
		src, dst, ro, err := parseBind(bind)
		if err != nil {
			return err
		}
		if dst == "" { // "/data": an anonymous volume
			if src, err = s.volume(ctx, "", bind); err != nil {
				return err
			}
			if err := add(src, bind, false); err != nil {
				return err
			}
			continue
		}
		if filepath.IsAbs(src) {
			// Docker creates a missing host directory of a -v bind (not
			// of a --mount one).
			if _, err := os.Stat(src); os.IsNotExist(err) {
				if err := os.MkdirAll(src, 0o755); err != nil {
					return fmt.Errorf("create the host directory of %q: %w", bind, err)
				}
			}
		} else if src, err = s.volume(ctx, src, bind); err != nil {
			return err
		}
		if err := add(src, dst, ro); err != nil {
			return err
		}
	}
	for _, m := range hc.Mounts {
		src := m.Source
		switch m.Type {
		case mount.TypeBind:
			if !filepath.IsAbs(src) {
				return invalid("invalid mount config for type \"bind\": the source %q is not an absolute path", src)
			}
			if _, err := os.Stat(src); err != nil {
				return invalid("invalid mount config for type \"bind\": bind source path does not exist: %s", src)
			}
			if o := m.BindOptions; o != nil && (o.Propagation != "" && o.Propagation != mount.PropagationRPrivate ||
				o.NonRecursive || o.CreateMountpoint || o.ReadOnlyNonRecursive || o.ReadOnlyForceRecursive) {
				return fmt.Errorf("mount %s: bind options other than the default are not supported: %w", m.Target, errdefs.ErrNotImplemented)
			}
		case mount.TypeVolume:
			if o := m.VolumeOptions; o != nil && (o.DriverConfig != nil && o.DriverConfig.Name != "" && o.DriverConfig.Name != "local" || o.Subpath != "") {
				return fmt.Errorf("mount %s: volume drivers and subpaths are not supported: %w", m.Target, errdefs.ErrNotImplemented)
			}
			var labels map[string]string
			if m.VolumeOptions != nil {
				labels = m.VolumeOptions.Labels
			}
			var err error
			if src, err = s.volumeWithLabels(ctx, src, m.Target, labels); err != nil {
				return err
			}
		default:
			return fmt.Errorf("mount %s: mounts of type %q are not supported (bind and volume are): %w", m.Target, m.Type, errdefs.ErrNotImplemented)
		}
		if err := add(src, m.Target, m.ReadOnly); err != nil {
			return err
		}
	}
	anon := make([]string, 0, len(b.Config.Volumes))
	for dst := range b.Config.Volumes {
		if !targets[filepath.Clean(dst)] {
			anon = append(anon, dst)
		}
	}
	slices.Sort(anon)
	for _, dst := range anon {
		src, err := s.volume(ctx, "", dst)
		if err != nil {
			return err
		}
		if err := add(src, dst, false); err != nil {
			return err
		}
	}
	return nil
}

// parseBind reads a Binds entry: SRC:DST[:OPTIONS] or DST alone (an
// anonymous volume; dst is then ""). Options are ro, rw, the SELinux z and
// Z (no-op here), nocopy, consistency hints, and rprivate propagation; others
// are refused.
func parseBind(bind string) (src, dst string, ro bool, err error) {
	parts := strings.Split(bind, ":")
	switch len(parts) {
	case 1:
		if !filepath.IsAbs(parts[0]) {
			return "", "", false, invalid("invalid volume specification: %q", bind)
		}
		return parts[0], "", false, nil
	case 2, 3:
	default:
		return "", "", false, invalid("invalid volume specification: %q", bind)
	}
	src, dst = parts[0], parts[1]
	if src == "" || dst == "" {
		return "", "", false, invalid("invalid volume specification: %q", bind)
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				ro = true
			case "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated", "rprivate", "private", "":
			default:
				return "", "", false, fmt.Errorf("volume %q: option %q is not supported (ro, rw, z, Z, nocopy are): %w", bind, o, errdefs.ErrNotImplemented)
			}
		}
	}
	return src, dst, ro, nil
}

// anonymousVolumeLabel is the label of the volumes made for a container's
// anonymous volumes (-v /dir, an image's VOLUME), as Docker names it.
const anonymousVolumeLabel = "com.docker.volume.anonymous"

// volume returns the directory of the named volume name (a new anonymous
// one when name is ""), creating it on first use.
func (s *server) volume(ctx context.Context, name, spec string) (string, error) {
	return s.volumeWithLabels(ctx, name, spec, nil)
}

func (s *server) volumeWithLabels(ctx context.Context, name, spec string, labels map[string]string) (string, error) {
	if s.Volumes == nil {
		return "", fmt.Errorf("%s: named volumes are not available in this daemon: bind-mount a host directory (an absolute path) instead: %w", spec, errdefs.ErrNotImplemented)
	}
	if name == "" {
		// Docker's mark of an anonymous volume: rm -v removes it.
		name, labels = names.NewID(), map[string]string{anonymousVolumeLabel: ""}
	}
	v, err := s.Volumes.Create(ctx, name, labels)
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	return v.Mountpoint, nil
}
