package docker

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/raind/condenser/internal/errdefs"
	"github.com/raind/condenser/shim/client"
	"github.com/raind/condenser/supervisor"
)

// statsInterval is the time between two samples of a stream, and between
// the two samples of a non-streamed answer (whose CPU percentage needs a
// previous one), as in Docker.
const statsInterval = time.Second

// containerStats answers one sample (?stream=false; with ?one-shot=true
// at once, without the previous CPU sample) or a sample a second, as JSON
// lines, until the client goes or the container stops.
func (s *server) containerStats(w http.ResponseWriter, r *http.Request) error {
	stream := r.URL.Query().Get("stream") == "" || boolQuery(r, "stream")
	oneShot := boolQuery(r, "one-shot")
	if oneShot && stream {
		return invalid("cannot have stream=true and one-shot=true")
	}
	c, err := s.container(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	var prev *container.StatsResponse
	tick := time.NewTicker(statsInterval)
	defer tick.Stop()
	for first := true; ; first = false {
		st, alive, err := s.statsSample(ctx, c.ID, prev)
		if err != nil {
			return noSuch("container", r.PathValue("id"), err)
		}
		switch {
		case !stream && !oneShot && first && alive:
			// Take the second sample: Docker's answer has precpu_stats.
		case !stream:
			return writeJSON(w, http.StatusOK, st)
		default:
			if first {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
			}
			if err := json.NewEncoder(w).Encode(st); err != nil {
				return err
			}
			flush(w)
			if !alive {
				return nil
			}
		}
		prev = &st
		select {
		case <-tick.C:
		case <-ctx.Done():
			if !stream && r.Context().Err() == nil {
				return writeJSON(w, http.StatusOK, st) // shutting down
			}
			return nil
		}
	}
}

// statsSample is a sample of container id after prev (nil: the first);
// alive is false when the container is not running (the sample is then
// empty, as Docker's).
func (s *server) statsSample(ctx context.Context, id string, prev *container.StatsResponse) (container.StatsResponse, bool, error) {
	raw, c, err := s.Containers.Stats(ctx, id)
	if c == nil && err != nil {
		return container.StatsResponse{}, false, err
	}
	st := container.StatsResponse{ID: c.ID, Name: "/" + c.Name, OSType: "linux"}
	if prev != nil {
		st.PreRead, st.PreCPUStats = prev.Read, prev.CPUStats
	}
	if err != nil {
		if errdefs.Kind(err) == errdefs.ErrConflict || errdefs.Kind(err) == errdefs.ErrUnavailable {
			return st, false, nil // not running: Docker's zero sample
		}
		return st, false, err
	}
	st.Read = time.Now().UTC()
	fillStats(&st, raw, c, "/proc")
	return st, true, nil
}

// fillStats fills st from the shim's cgroup statistics and the host's
// (system CPU time, CPUs, memory; the container's interfaces).
func fillStats(st *container.StatsResponse, raw client.Stats, c *supervisor.Container, proc string) {
	sys, cpus := systemCPU(proc)
	st.CPUStats = container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: raw.CPUUsageNanos}, SystemUsage: sys, OnlineCPUs: cpus}
	limit := raw.MemoryLimit
	// An unlimited cgroup reports a huge limit; Docker shows the host's
	// memory instead.
	if total := hostMemory(proc); total > 0 && (limit == 0 || limit > total) {
		limit = total
	}
	st.MemoryStats = container.MemoryStats{Usage: raw.MemoryUsage, MaxUsage: raw.MemoryMaxUsage, Limit: limit,
		Stats: map[string]uint64{"cache": raw.MemoryCache, "oom_kill": raw.OOMKills}}
	st.PidsStats = container.PidsStats{Current: raw.PidsCurrent, Limit: raw.PidsLimit}
	st.BlkioStats.IoServiceBytesRecursive = []container.BlkioStatEntry{
		{Op: "read", Value: raw.BlkioReadBytes}, {Op: "write", Value: raw.BlkioWriteBytes},
	}
	if c.Pid > 0 && c.Request.Network != "host" {
		st.Networks = netStats(filepath.Join(proc, strconv.Itoa(c.Pid), "net", "dev"))
	}
}

// systemCPU is the host's CPU time in nanoseconds (the sum of the "cpu"
// line of /proc/stat) and its number of online CPUs.
func systemCPU(proc string) (uint64, uint32) {
	b, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return 0, 0
	}
	var total uint64
	var cpus uint32
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "cpu":
			for _, v := range f[1:] {
				n, _ := strconv.ParseUint(v, 10, 64)
				total += n
			}
		case len(f) > 0 && strings.HasPrefix(f[0], "cpu"):
			cpus++
		}
	}
	return total * uint64(time.Second/clockTicks), cpus
}

// hostMemory is the host's memory in bytes.
func hostMemory(proc string) uint64 {
	b, err := os.ReadFile(filepath.Join(proc, "meminfo"))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// netStats reads a /proc/PID/net/dev: every interface but lo.
func netStats(path string) map[string]container.NetworkStats {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]container.NetworkStats{}
	for line := range strings.Lines(string(b)) {
		name, rest, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" || strings.Contains(name, "|") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			continue
		}
		n := make([]uint64, 16)
		for i := range n {
			n[i], _ = strconv.ParseUint(f[i], 10, 64)
		}
		out[name] = container.NetworkStats{RxBytes: n[0], RxPackets: n[1], RxErrors: n[2], RxDropped: n[3],
			TxBytes: n[8], TxPackets: n[9], TxErrors: n[10], TxDropped: n[11]}
	}
	return out
}
