package docker

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"

	"golang.org/x/sys/unix"

	"github.com/raind/condenser/supervisor"
)

// infoRoutes registers /info, /events and /system/df.
func (s *server) infoRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /info", s.wrap(s.info))
	m.HandleFunc("GET /events", s.wrap(s.eventsStream))
	m.HandleFunc("GET /system/df", s.wrap(s.diskUsage))
}

// containerCounts counts containers by Docker's states: created and
// restarting count as stopped, as Docker's "Stopped" is every one not
// running or paused.
func containerCounts(cs []*supervisor.Container) (total, running, stopped int) {
	for _, c := range cs {
		total++
		if c.State == supervisor.StateRunning {
			running++
		} else {
			stopped++
		}
	}
	return total, running, stopped
}

func (s *server) info(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	cs, err := s.records(ctx)
	if err != nil {
		return err
	}
	total, running, stopped := containerCounts(cs)
	images := 0
	if s.Images != nil {
		all, err := s.Images.List(ctx)
		if err != nil {
			return err
		}
		images = len(groupImages(all))
	}
	host, _ := os.Hostname()
	rt := filepath.Base(s.System.Runtime)
	if rt == "." || rt == "/" {
		rt = "runc"
	}
	// Condenser's overlay root filesystems are Docker's overlay2 (one
	// lowerdir per layer, the container's upper and work dirs): clients
	// and scripts know that name.
	driver := s.System.StorageDriver
	if driver == "" || driver == "overlayfs" || driver == "overlay" {
		driver = "overlay2"
	}
	security := []string{"name=seccomp,profile=builtin"}
	if s.System.CgroupVersion == "2" {
		security = append(security, "name=cgroupns")
	}
	info := system.Info{
		ID:                daemonID(s.System.Root),
		Containers:        total,
		ContainersRunning: running,
		ContainersStopped: stopped,
		Images:            images,
		Driver:            driver,
		DriverStatus:      [][2]string{{"Backing Filesystem", backingFS(s.System.Root)}},
		Plugins: system.PluginsInfo{
			Volume: []string{"local"}, Network: []string{"bridge", "host", "null"}, Log: []string{"json-file"},
		},
		MemoryLimit: true, SwapLimit: true, CPUCfsPeriod: true, CPUCfsQuota: true, CPUShares: true, CPUSet: true, PidsLimit: true,
		IPv4Forwarding:     ipv4Forwarding(),
		NFd:                countFDs(),
		NGoroutines:        runtime.NumGoroutine(),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		LoggingDriver:      "json-file",
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      s.System.CgroupVersion,
		KernelVersion:      s.System.KernelVersion,
		OperatingSystem:    osRelease("PRETTY_NAME", "Linux"),
		OSVersion:          osRelease("VERSION_ID", ""),
		OSType:             "linux",
		Architecture:       machineArch(),
		IndexServerAddress: "https://index.docker.io/v1/",
		NCPU:               runtime.NumCPU(),
		MemTotal:           int64(hostMemory("/proc")),
		DockerRootDir:      s.System.Root,
		Name:               host,
		Labels:             []string{},
		ServerVersion:      s.System.Version,
		Runtimes:           map[string]system.RuntimeWithStatus{rt: {Runtime: system.Runtime{Path: s.System.Runtime}}},
		DefaultRuntime:     rt,
		SecurityOptions:    security,
		Isolation:          "",
		InitBinary:         "",
		CDISpecDirs:        []string{},
		Warnings:           []string{},
	}
	return writeJSON(w, http.StatusOK, info)
}

// daemonID is a stable identity for the daemon: Docker's is a random UUID
// kept in its root; a hash of the machine and the root tells daemons apart
// as well without another file.
func daemonID(root string) string {
	machine, _ := os.ReadFile("/etc/machine-id")
	sum := sha256.Sum256(append(bytes.TrimSpace(machine), []byte("\x00"+root)...))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// backingFS names the filesystem under dir as Docker's info does.
func backingFS(dir string) string {
	var st unix.Statfs_t
	if dir == "" || unix.Statfs(dir, &st) != nil {
		return "unknown"
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		return "extfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("0x%x", st.Type)
}

// osRelease reads a key of /etc/os-release.
func osRelease(key, def string) string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return def
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && k == key {
			return strings.Trim(v, `"'`)
		}
	}
	return def
}

func ipv4Forwarding() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// machineArch is the architecture as uname names it (x86_64, aarch64),
// which is what Docker's info reports.
func machineArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

// legacyDiskUsage is /system/df as API 1.50 clients read it (1.52 replaced
// it by per-type usage objects).
type legacyDiskUsage struct {
	LayersSize int64
	Images     []image.Summary
	Containers []container.Summary
	Volumes    []volume.Volume
	BuildCache []struct{}
}

func (s *server) diskUsage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	cs, err := s.records(ctx)
	if err != nil {
		return err
	}
	out := legacyDiskUsage{Images: []image.Summary{}, Containers: []container.Summary{}, Volumes: []volume.Volume{}, BuildCache: []struct{}{}}
	users := map[string]int64{}
	for _, c := range cs {
		users[c.ImageID]++
	}
	if s.Images != nil {
		all, err := s.Images.List(ctx)
		if err != nil {
			return err
		}
		layers := map[string]bool{}
		for _, recs := range groupImages(all) {
			img := recs[0]
			tags, digests := imageNames(recs)
			for _, l := range img.Layers {
				if !layers[l.DiffID] {
					layers[l.DiffID] = true
					out.LayersSize += max(l.Unpacked, 0)
				}
			}
			out.Images = append(out.Images, image.Summary{
				ID: img.ID, RepoTags: tags, RepoDigests: digests, Created: img.Created.Unix(), Size: img.Size,
				SharedSize: -1, Containers: users[img.ID], Labels: map[string]string{},
			})
		}
	}
	for _, c := range cs {
		state := container.StateExited
		switch c.State {
		case supervisor.StateRunning:
			state = container.StateRunning
		case supervisor.StateCreated, supervisor.StateCreating:
			state = container.StateCreated
		case supervisor.StateRestarting:
			state = container.StateRestarting
		case supervisor.StateRemoving:
			state = container.StateRemoving
		}
		out.Containers = append(out.Containers, container.Summary{
			ID: c.ID, Names: []string{"/" + c.Name}, Image: familiarImage(c.Image), ImageID: c.ImageID,
			Command: strings.Join(c.Args, " "), Created: c.CreatingAt.Unix(), State: state, Status: string(c.State),
			Labels: c.Request.Labels,
		})
	}
	if s.Volumes != nil {
		vs, err := s.Volumes.List(ctx)
		if err != nil {
			return err
		}
		for _, v := range vs {
			dv := dockerVolume(v)
			size := int64(-1)
			if sz, ok := s.Volumes.(volumeSizer); ok {
				if n, err := sz.Size(ctx, v.Name); err == nil {
					size = n
				}
			}
			dv.UsageData = &volume.UsageData{RefCount: int64(len(volumeUsers(v, cs))), Size: size}
			out.Volumes = append(out.Volumes, dv)
		}
	}
	return writeJSON(w, http.StatusOK, out)
}
