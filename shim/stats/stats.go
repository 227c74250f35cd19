// Package stats reads a container's cgroup — resource usage and OOM kills —
// for the shim. It supports cgroup v1 and v2, chosen at run time from the
// host's layout (detected as cgroups.Mode does): the hybrid layout (v1
// controllers plus a cgroup2 "unified" mount) is treated as v1, because
// that is where the controllers the shim reads (cpuacct, memory, pids,
// blkio) live. It reads the cgroup files itself (fs.go): Load only finds
// the cgroup's directories, and each Stats reads the dozen files it
// reports.
//
// The cgroup path is the OCI config's linux.cgroupsPath, e.g.
// "/condenser/<id>": under v1 it is the same path in every controller
// hierarchy (/sys/fs/cgroup/<controller>/condenser/<id>), under v2 the path
// below /sys/fs/cgroup.
package stats

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/raind/condenser/internal/errdefs"
)

// Stats is one sample of a container cgroup's counters. A value the kernel
// does not provide for this cgroup (controller not mounted or not enabled,
// file absent on this kernel) is 0.
type Stats struct {
	// CPUUsageNanos is the total CPU time of the cgroup's tasks
	// (v1 cpuacct.usage; v2 cpu.stat usage_usec × 1000).
	CPUUsageNanos uint64

	// MemoryUsage is the raw charged memory, page cache included
	// (v1 memory.usage_in_bytes; v2 memory.current). Nothing is subtracted:
	// a "working set" in the docker sense is MemoryUsage minus the inactive
	// file cache, and MemoryCache is given so callers can judge.
	MemoryUsage uint64
	// MemoryCache is the page cache charged to the cgroup and its
	// descendants (v1 memory.stat total_cache; v2 memory.stat file).
	MemoryCache uint64
	// MemoryLimit is the cgroup's own memory limit in bytes, 0 when unlimited
	// (v1 memory.limit_in_bytes; v2 memory.max).
	MemoryLimit uint64
	// MemoryMaxUsage is the peak usage: v1 memory.max_usage_in_bytes, v2
	// memory.peak when the kernel has it (5.19+), else 0.
	MemoryMaxUsage uint64

	// PidsCurrent is the number of tasks (threads) in the cgroup.
	PidsCurrent uint64
	// PidsLimit is pids.max, 0 when unlimited.
	PidsLimit uint64

	// BlkioReadBytes and BlkioWriteBytes are summed over all devices
	// (v1 blkio io_service_bytes_recursive, or blkio.throttle.io_service_bytes
	// when the CFQ/BFQ counters are absent or count nothing; v2 io.stat
	// rbytes/wbytes).
	BlkioReadBytes  uint64
	BlkioWriteBytes uint64

	// OOMKills is the number of processes the kernel OOM killer has killed
	// in the cgroup (v1 memory.oom_control oom_kill; v2 memory.events
	// oom_kill, which counts the cgroup's descendants too).
	OOMKills uint64
}

// Cgroup is one container's cgroup, v1 or v2. It is safe for concurrent use
// (it only reads files).
type Cgroup struct {
	path string
	v2   bool

	// v1: dirs1 are the cgroup's directories in the v1 hierarchies it was
	// found in when loaded; the others are those of the controllers read,
	// "" when the cgroup is not in that hierarchy.
	dirs1                               []string
	memDir1, cpuDir1, pidsDir1, blkDir1 string

	// v2
	dir2 string
}

// Load opens the existing cgroup at path (e.g. "/condenser/abc"), a clean
// absolute path relative to the cgroup root. The error wraps
// errdefs.ErrNotFound when the cgroup does not exist,
// errdefs.ErrInvalidArgument for a malformed path and errdefs.ErrUnavailable
// when the host has no cgroup file system.
func Load(path string) (*Cgroup, error) {
	switch m := hostMode(); m {
	case modeUnified:
		return loadV2(defaultV2Mountpoint, path)
	case modeLegacy, modeHybrid:
		if err := checkPath(path); err != nil {
			return nil, err
		}
		root, err := v1Root()
		if err != nil {
			return nil, fmt.Errorf("load cgroup %s: %w", path, err)
		}
		return loadV1(root, path)
	default:
		return nil, fmt.Errorf("load cgroup %s: no cgroup file system mounted (mode %d): %w", path, m, errdefs.ErrUnavailable)
	}
}

// checkPath accepts what cgroup2.VerifyGroupPath does, but the root.
func checkPath(path string) error {
	if !strings.HasPrefix(path, "/") || filepath.Clean(path) != path || path == "/" ||
		strings.HasPrefix(path, "/sys/fs/cgroup") {
		return fmt.Errorf("load cgroup %q: path must be a clean absolute path below the cgroup root: %w", path, errdefs.ErrInvalidArgument)
	}
	return nil
}

// loadV1 loads the cgroup at path in the v1 hierarchies below root.
func loadV1(root, path string) (*Cgroup, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	c := &Cgroup{path: path}
	for _, h := range v1Dirs(root, path) {
		if _, err := os.Lstat(h.dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("load cgroup %s: %w", path, err)
		}
		c.dirs1 = append(c.dirs1, h.dir)
		switch h.name {
		case "memory":
			c.memDir1 = h.dir
		case "cpuacct":
			c.cpuDir1 = h.dir
		case "pids":
			c.pidsDir1 = h.dir
		case "blkio":
			c.blkDir1 = h.dir
		}
	}
	if len(c.dirs1) == 0 {
		return nil, fmt.Errorf("load cgroup %s: %w", path, errdefs.ErrNotFound)
	}
	return c, nil
}

func loadV2(mountpoint, path string) (*Cgroup, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	dir := filepath.Join(mountpoint, path)
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("load cgroup %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("load cgroup %s: %w", path, err)
	}
	return &Cgroup{path: path, v2: true, dir2: dir}, nil
}

// V2 reports whether the cgroup is a cgroup v2 (unified hierarchy) one.
func (c *Cgroup) V2() bool { return c.v2 }

// Path is the cgroup path Load was given.
func (c *Cgroup) Path() string { return c.path }

// exists reports whether the cgroup's directories are all still there.
func (c *Cgroup) exists() bool {
	dirs := c.dirs1
	if c.V2() {
		dirs = []string{c.dir2}
	}
	for _, d := range dirs {
		if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

func (c *Cgroup) errDeleted() error {
	return fmt.Errorf("cgroup %s: deleted: %w", c.path, errdefs.ErrNotFound)
}

// unlimited normalizes the kernel's "no limit" values to 0: v2 "max" (read
// as MaxUint64) and v1's PAGE_COUNTER_MAX × page size
// (9223372036854771712 on x86-64), or anything else beyond 2^62 bytes.
func unlimited(v uint64) uint64 {
	if v >= 1<<62 {
		return 0
	}
	return v
}

// Stats samples the cgroup's counters. The error wraps errdefs.ErrNotFound
// when the cgroup has been removed.
func (c *Cgroup) Stats() (*Stats, error) {
	var (
		st  *Stats
		err error
	)
	if c.V2() {
		st, err = c.statsV2()
	} else {
		st, err = c.statsV1()
	}
	// A cgroup removed under us shows as missing files (ignored or not):
	// report that as such rather than as zeros or as an I/O error.
	if !c.exists() {
		return nil, c.errDeleted()
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: stats: %w", c.path, err)
	}
	return st, nil
}

// sampler reads counters into a Stats, keeping the first error: a file
// this kernel does not have leaves its counters at zero (readFile), and
// deletion is checked by the caller.
type sampler struct {
	err error
}

func (s *sampler) uint(dir, name string) uint64 {
	v, err := readUint(dir, name)
	if s.err == nil {
		s.err = err
	}
	return v
}

func (s *sampler) key(dir, name, key string) uint64 {
	v, _, err := readKey(dir, name, key)
	if s.err == nil {
		s.err = err
	}
	return v
}

func (c *Cgroup) statsV1() (*Stats, error) {
	var s sampler
	st := &Stats{
		CPUUsageNanos:  s.uint(c.cpuDir1, "cpuacct.usage"),
		MemoryUsage:    s.uint(c.memDir1, "memory.usage_in_bytes"),
		MemoryCache:    s.key(c.memDir1, "memory.stat", "total_cache"),
		MemoryLimit:    unlimited(s.uint(c.memDir1, "memory.limit_in_bytes")),
		MemoryMaxUsage: s.uint(c.memDir1, "memory.max_usage_in_bytes"),
		OOMKills:       s.key(c.memDir1, "memory.oom_control", "oom_kill"),
		PidsCurrent:    s.uint(c.pidsDir1, "pids.current"),
		PidsLimit:      unlimited(s.uint(c.pidsDir1, "pids.max")),
	}
	if s.err != nil {
		return nil, s.err
	}
	if c.blkDir1 != "" {
		// The CFQ/BFQ counters when they count anything, else the
		// throttling layer's (which sees every device).
		var err error
		st.BlkioReadBytes, st.BlkioWriteBytes, err = blkioV1(filepath.Join(c.blkDir1, "blkio.io_service_bytes_recursive"))
		if err == nil && st.BlkioReadBytes == 0 && st.BlkioWriteBytes == 0 {
			st.BlkioReadBytes, st.BlkioWriteBytes, err = blkioV1(filepath.Join(c.blkDir1, "blkio.throttle.io_service_bytes"))
		}
		if err != nil {
			return nil, err
		}
	}
	return st, nil
}

// blkioV1 sums the Read and Write lines ("MAJ:MIN Op value") of a v1 blkio
// bytes file; a missing file is zeros.
func blkioV1(path string) (read, write uint64, err error) {
	b, err := readFile(path)
	if err != nil {
		return 0, 0, err
	}
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) != 3 {
			continue // "Total N"
		}
		v, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		switch strings.ToLower(f[1]) {
		case "read":
			read += v
		case "write":
			write += v
		}
	}
	return read, write, nil
}

func (c *Cgroup) statsV2() (*Stats, error) {
	var s sampler
	st := &Stats{
		CPUUsageNanos:  s.key(c.dir2, "cpu.stat", "usage_usec") * 1000,
		MemoryUsage:    s.uint(c.dir2, "memory.current"),
		MemoryCache:    s.key(c.dir2, "memory.stat", "file"),
		MemoryLimit:    unlimited(s.uint(c.dir2, "memory.max")),
		MemoryMaxUsage: s.uint(c.dir2, "memory.peak"),
		OOMKills:       s.key(c.dir2, "memory.events", "oom_kill"),
		PidsCurrent:    s.uint(c.dir2, "pids.current"),
		PidsLimit:      unlimited(s.uint(c.dir2, "pids.max")),
	}
	if s.err != nil {
		return nil, s.err
	}
	// io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N ..." per device.
	b, err := readFile(filepath.Join(c.dir2, "io.stat"))
	if err != nil {
		return nil, err
	}
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || (k != "rbytes" && k != "wbytes") {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("io.stat: %w", err)
			}
			if k == "rbytes" {
				st.BlkioReadBytes += n
			} else {
				st.BlkioWriteBytes += n
			}
		}
	}
	return st, nil
}

// Pids returns the ids of the processes in the cgroup and its descendants,
// sorted. The error wraps errdefs.ErrNotFound when the cgroup has been
// removed.
func (c *Cgroup) Pids() ([]int, error) {
	// Every v1 hierarchy holds the same processes; prefer pids, then
	// memory, which runc always joins.
	dir := c.dir2
	if !c.V2() {
		switch {
		case c.pidsDir1 != "":
			dir = c.pidsDir1
		case c.memDir1 != "":
			dir = c.memDir1
		default:
			dir = c.dirs1[0]
		}
	}
	pids, err := readProcs(dir, nil)
	if err != nil {
		if !c.exists() {
			return nil, c.errDeleted()
		}
		return nil, fmt.Errorf("cgroup %s: pids: %w", c.path, err)
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

// OOMKills reads the cgroup's oom_kill counter alone: the number of its
// processes the kernel's OOM killer has killed so far (Stats.OOMKills; 0
// on v1 kernels older than 4.13, which have no counter). The kernel counts
// a kill when it picks the victim, before the victim is gone. The error
// wraps errdefs.ErrUnavailable when the cgroup has no memory controller,
// errdefs.ErrNotFound when it has been removed.
func (c *Cgroup) OOMKills() (uint64, error) {
	if c.v2 {
		return c.oomKillV2()
	}
	if c.memDir1 == "" {
		return 0, fmt.Errorf("cgroup %s: oom kills: no memory controller: %w", c.path, errdefs.ErrUnavailable)
	}
	n, _, err := readOOMKillV1(c.memDir1)
	if err != nil && !c.exists() {
		return 0, c.errDeleted()
	}
	return n, err
}

// readOOMKillV1 reads oom_kill from memory.oom_control; counted is false on
// kernels without that counter (before 4.13).
func readOOMKillV1(memDir string) (n uint64, counted bool, err error) {
	f, err := os.Open(filepath.Join(memDir, "memory.oom_control"))
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == "oom_kill" {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, true, err
		}
	}
	return 0, false, sc.Err()
}

// oomKillV2 reads oom_kill from memory.events.
func (c *Cgroup) oomKillV2() (uint64, error) {
	n, found, err := readKey(c.dir2, "memory.events", "oom_kill")
	if err != nil {
		return 0, err
	}
	if !found {
		if !c.exists() {
			return 0, c.errDeleted()
		}
		return 0, fmt.Errorf("memory.events: no oom_kill: %w", errdefs.ErrUnavailable)
	}
	return n, nil
}
